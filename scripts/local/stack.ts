// The whole product on one machine: Postgres with pg_cron, the Supabase
// baseline, migrations, the pg_net stand-in, and the edge functions.
import { join } from "node:path";
import { connect, type Sql } from "../../shared/db.ts";
import { applyBaseline, pushMigrations, seedVault } from "./database.ts";
import { serveFunctions } from "./functions.ts";
import { startNetDispatcher } from "./net_dispatcher.ts";
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
  log: (line: string) => void;
}

export interface Stack {
  dbUrl: string;
  apiUrl: string;
  functions: string[];
  createdCluster: boolean;
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
    const functions = await serveFunctions({
      root: o.root,
      apiPort: o.apiPort,
      functionPort: o.functionPort,
      log: o.log,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: Deno.env.get("HOME") ?? "/tmp",
        ...o.functionEnv,
        SUPABASE_URL: apiUrl,
        SUPABASE_DB_URL: url,
        ORCHESTRATOR_SECRET: o.secret,
      },
    });
    cleanups.push(() => functions.stop());
    // Only once the functions listen, so no queued request meets a closed port.
    const dispatcher = await startNetDispatcher(sql, o.log);
    cleanups.push(() => dispatcher.stop());
    return { dbUrl: url, apiUrl, functions: functions.names, createdCluster, sql, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export const repoRoot = () => join(new URL(".", import.meta.url).pathname, "../..");
