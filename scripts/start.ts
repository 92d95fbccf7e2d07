// npm start: the whole product on this machine, in the foreground.
import { join } from "node:path";
import { DEV_SECRET, FUNCTION_ENV_KEYS, loadLocalEnv, pick } from "./local/env.ts";
import { repoRoot, startStack } from "./local/stack.ts";

const root = repoRoot();
const env = await loadLocalEnv(root);
const log = (line: string) => console.log(line);
const started = performance.now();

// Registered before anything starts, so Ctrl-C during startup still cleans up.
const stopRequested = Promise.withResolvers<void>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => stopRequested.resolve());
}

const secret = env.ORCHESTRATOR_SECRET || DEV_SECRET;
if (!env.ORCHESTRATOR_SECRET) {
  log(`ORCHESTRATOR_SECRET is not set: using the development default "${DEV_SECRET}"`);
}

const useRealTwilio = Boolean(env.TWILIO_ACCOUNT_SID && env.TWILIO_AUTH_TOKEN);
const useRealClaude = Boolean(env.ANTHROPIC_API_KEY || env.ANTHROPIC_BASE_URL);
const useRealVoice = Boolean(env.VOICE_DISPATCH_URL);

const starting = startStack({
  root,
  dir: join(root, ".local/db"),
  pgPort: 54322,
  apiPort: 54321,
  functionPort: (i) => 54420 + i,
  durable: true,
  secret,
  functionEnv: pick(env, FUNCTION_ENV_KEYS),
  fakes: {
    smsCatcherPort: useRealTwilio ? undefined : 54330,
    scriptedClaudePort: useRealClaude ? undefined : 54331,
    voiceCatcherPort: useRealVoice ? undefined : 54332,
  },
  log,
});
const first = await Promise.race([starting, stopRequested.promise.then(() => null)]);
if (!first) {
  log("\nstopping...");
  await starting.then((stack) => stack.stop(), () => {});
  Deno.exit(130);
}
const stack = first;

const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`
Ready in ${seconds}s${stack.createdCluster ? " (new database)" : " (existing data kept)"}.
  Postgres 15 + pg_cron   ${stack.dbUrl}
  Edge functions (Deno)   ${stack.apiUrl}/functions/v1/<name>: ${stack.functions.join(", ")}
  pg_net stand-in         local dispatcher, responses in net._http_response
  Vault stand-in          project_url, orchestrator_secret
  pg_cron                 process-queue every minute
  Twilio                  ${
  stack.fakes.smsCatcherUrl
    ? `local SMS catcher at ${stack.fakes.smsCatcherUrl} (GET /__catcher/messages)`
    : "real Twilio (TWILIO_ACCOUNT_SID is set)"
}
  Claude                  ${
  stack.fakes.scriptedClaudeUrl
    ? `SCRIPTED MODEL at ${stack.fakes.scriptedClaudeUrl}, not Claude (set ANTHROPIC_API_KEY)`
    : "Anthropic API (ANTHROPIC_API_KEY is set)"
}
  Voice system            ${
  stack.fakes.voiceCatcherUrl
    ? `local stand-in at ${stack.fakes.voiceCatcherUrl} (GET /__voice/calls)`
    : "VOICE_DISPATCH_URL"
}
Ctrl-C stops everything; npm run reset wipes the data.`);

await stopRequested.promise;
log("\nstopping...");
await stack.stop();
log("stopped.");
Deno.exit(0);
