import { claudeFromEnv } from "../../../shared/claude/client.ts";
import { loadConfig } from "../../../shared/config.ts";
import { connect } from "../../../shared/db.ts";
import { logInfo } from "../../../shared/log.ts";
import { createAnalyzeHandler } from "./handler.ts";
import { analyzeInteraction } from "./run.ts";

const env = Deno.env.toObject();
const config = loadConfig(env);
const claude = claudeFromEnv(env);
const client = claude.client;
const sql = connect(config.SUPABASE_DB_URL, 4);

Deno.serve(createAnalyzeHandler({
  secret: config.ORCHESTRATOR_SECRET,
  analyze: client
    ? (interactionId) =>
      analyzeInteraction({
        sql,
        createMessage: (params, options) => client.messages.create(params, options),
        model: claude.analysisModel,
        now: () => Date.now(),
        // An edge function lives at most 150 s.
        leaseSeconds: 180,
        log: (message, fields) => logInfo("analyze-interaction", message, fields),
      }, interactionId)
    : null,
}));
