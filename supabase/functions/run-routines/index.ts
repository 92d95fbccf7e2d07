// Routines run here, on their own per-minute pg_cron job, not inside
// process-queue: a routine waits on Claude and on outside endpoints, and must
// never eat the time process-queue has to deliver texts.
import { claudeFromEnv } from "../../../shared/claude/client.ts";
import { createCompleter } from "../../../shared/claude/complete.ts";
import { loadConfig } from "../../../shared/config.ts";
import { connect } from "../../../shared/db.ts";
import { logInfo } from "../../../shared/log.ts";
import { httpConfigFromEnv } from "../../../shared/routines/http.ts";
import { runRoutines } from "../../../shared/routines/runner.ts";
import { createRunRoutinesHandler } from "./handler.ts";

const env = Deno.env.toObject();
const config = loadConfig(env);
const claude = claudeFromEnv(env);
const http = httpConfigFromEnv(env);
// Eight connections: a run is mostly short transactions, and 32 run at once.
const sql = connect(config.SUPABASE_DB_URL, 8);

Deno.serve(createRunRoutinesHandler({
  secret: config.ORCHESTRATOR_SECRET,
  clock: () => performance.now(),
  run: (opts) =>
    runRoutines({
      sql,
      complete: claude.client ? createCompleter(claude.client, "run-routines") : null,
      model: claude.analysisModel,
      http,
      fetch,
      now: () => Date.now(),
      clock: () => performance.now(),
      log: (message, fields) => logInfo("run-routines", message, fields),
    }, { ...opts, concurrency: 32, leaseSeconds: 120 }),
}));
