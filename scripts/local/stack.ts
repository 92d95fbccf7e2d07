// The whole product on one machine: Postgres with pg_cron, the Supabase
// baseline, migrations, the pg_net stand-in, and the edge functions.
import { join } from "node:path";
import { connect, type Sql } from "../../shared/db.ts";
import { applyBaseline, pushMigrations, seedVault } from "./database.ts";
import { FUNCTION_ENV_KEYS } from "./env.ts";
import { serveFunctions } from "./functions.ts";
import { startNetDispatcher } from "./net_dispatcher.ts";
import { startScriptedClaude } from "./scripted_claude.ts";
import { startSmsCatcher } from "./sms_catcher.ts";
import { startVoiceCatcher } from "./voice_catcher.ts";
import { freePort } from "./process.ts";
import { type DebianPackage, ensurePackages, RUNTIME_PACKAGES } from "./packages.ts";
import {
  type ClusterOptions,
  dbUrl,
  ensureCluster,
  startCluster,
  stopCluster,
} from "./postgres.ts";

export interface StackOptions {
  root: string;
  dir: string;
  pgPort: number;
  apiPort: number;
  functionPort: (index: number) => number;
  durable: boolean;
  secret: string;
  /** Extra environment for the edge functions (Twilio, Anthropic, ...). */
  functionEnv: Record<string, string>;
  extraPackages?: DebianPackage[];
  /** Local stand-ins for Twilio and Claude, on these ports (0 = any free one). */
  fakes: { smsCatcherPort?: number; scriptedClaudePort?: number; voiceCatcherPort?: number };
  /** The gateway's /__stack control API (kill a function process): throw-away stacks only. */
  functionControl?: boolean;
  log: (line: string) => void;
}

/** The local stand-ins that run, and the environment that points the functions at them. */
export interface Fakes {
  smsCatcherUrl?: string;
  scriptedClaudeUrl?: string;
  voiceCatcherUrl?: string;
}

export interface Stack {
  dbUrl: string;
  apiUrl: string;
  functions: string[];
  /** The control API's base URL (`/__stack`), when the stack has one. */
  controlUrl?: string;
  createdCluster: boolean;
  fakes: Fakes;
  sql: Sql;
  stop(): Promise<void>;
}

export async function startStack(o: StackOptions): Promise<Stack> {
  await ensurePackages([...RUNTIME_PACKAGES, ...(o.extraPackages ?? [])], o.log);
  const cluster: ClusterOptions = { dir: o.dir, port: o.pgPort, durable: o.durable };
  const createdCluster = await ensureCluster(cluster);
  const startedServer = await startCluster(cluster);
  const url = dbUrl(o.pgPort);
  const apiUrl = `http://127.0.0.1:${o.apiPort}`;
  const sql = connect(url, 8);
  const cleanups: (() => Promise<void>)[] = [
    async () => {
      await sql.end({ timeout: 5 });
    },
  ];
  if (startedServer) cleanups.push(() => stopCluster(cluster));
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((err) => o.log(`stop: ${err instanceof Error ? err.message : err}`));
    }
  };

  try {
    await applyBaseline(sql, o.root);
    await pushMigrations(o.root, url);
    await seedVault(sql, { project_url: apiUrl, orchestrator_secret: o.secret });
    const fakes: Fakes = {};
    const fakeEnv: Record<string, string> = {};
    if (o.fakes.smsCatcherPort !== undefined) {
      const catcher = await startSmsCatcher({ port: o.fakes.smsCatcherPort });
      cleanups.push(() => catcher.stop());
      fakes.smsCatcherUrl = catcher.url;
      Object.assign(fakeEnv, {
        TWILIO_ACCOUNT_SID: catcher.accountSid,
        TWILIO_AUTH_TOKEN: catcher.authToken,
        TWILIO_FROM_NUMBER: "+12015550100",
        TWILIO_MESSAGING_SERVICE_SID: "",
        TWILIO_API_BASE_URL: catcher.url,
      });
    }
    if (o.fakes.scriptedClaudePort !== undefined) {
      const claude = await startScriptedClaude({ port: o.fakes.scriptedClaudePort });
      cleanups.push(() => claude.stop());
      fakes.scriptedClaudeUrl = claude.url;
      Object.assign(fakeEnv, { ANTHROPIC_API_KEY: "", ANTHROPIC_BASE_URL: claude.url });
    }
    if (o.fakes.voiceCatcherPort !== undefined) {
      const voice = startVoiceCatcher({
        port: o.fakes.voiceCatcherPort,
        secret: `local-voice-${crypto.randomUUID()}`,
      });
      cleanups.push(() => voice.stop());
      fakes.voiceCatcherUrl = voice.url;
      Object.assign(fakeEnv, {
        VOICE_DISPATCH_URL: `${voice.url}/calls`,
        VOICE_DISPATCH_SECRET: voice.secret,
      });
    }
    const functions = await serveFunctions({
      root: o.root,
      apiPort: o.apiPort,
      functionPort: o.functionPort,
      controlApi: o.functionControl,
      log: o.log,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: Deno.env.get("HOME") ?? "/tmp",
        ...o.functionEnv,
        ...fakeEnv,
        SUPABASE_URL: apiUrl,
        SUPABASE_DB_URL: url,
        ORCHESTRATOR_SECRET: o.secret,
      },
    });
    cleanups.push(() => functions.stop());
    // Only once the functions listen, so no queued request meets a closed port.
    const dispatcher = await startNetDispatcher(sql, o.log);
    cleanups.push(() => dispatcher.stop());
    return {
      dbUrl: url,
      apiUrl,
      functions: functions.names,
      controlUrl: o.functionControl ? `${apiUrl}/__stack` : undefined,
      createdCluster,
      fakes,
      sql,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

export const repoRoot = () => join(new URL(".", import.meta.url).pathname, "../..");

/**
 * A stack in a temporary folder on free ports, for the tests, the bench and the
 * demo; it never touches the development stack, and stop() removes it. Unless
 * told otherwise, the functions reach only the local stand-ins. Its gateway
 * has the control API, so tests can kill a function process.
 */
export async function startThrowawayStack(o: {
  name: string;
  secret: string;
  functionEnv?: Record<string, string>;
  fakes?: StackOptions["fakes"];
  extraPackages?: DebianPackage[];
  log: (line: string) => void;
}): Promise<Stack> {
  const dir = await Deno.makeTempDir({ prefix: `orchestrator-${o.name}-` });
  const removeDir = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  try {
    const stack = await startStack({
      root: repoRoot(),
      dir,
      pgPort: freePort(),
      apiPort: freePort(),
      functionPort: () => freePort(),
      durable: false,
      secret: o.secret,
      functionEnv: o.functionEnv ?? Object.fromEntries(FUNCTION_ENV_KEYS.map((k) => [k, ""])),
      extraPackages: o.extraPackages,
      fakes: o.fakes ?? { smsCatcherPort: 0, scriptedClaudePort: 0 },
      functionControl: true,
      log: o.log,
    });
    return { ...stack, stop: () => stack.stop().finally(removeDir) };
  } catch (err) {
    await removeDir();
    throw err;
  }
}
