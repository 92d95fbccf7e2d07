import { voiceConfigFromEnv } from "../../../shared/calls/dispatch.ts";
import { claudeFromEnv } from "../../../shared/claude/client.ts";
import { createCompleter } from "../../../shared/claude/complete.ts";
import { loadConfig } from "../../../shared/config.ts";
import { deliveryConfigFromEnv } from "../../../shared/delivery/config.ts";
import { SendStarter } from "../../../shared/delivery/processor.ts";
import { connect } from "../../../shared/db.ts";
import { logInfo } from "../../../shared/log.ts";
import {
  createTwilioHttp,
  lookUpSentMessage,
  sendSms,
  twilioConfigFromEnv,
  unknownReconcileAfterSecondsFromEnv,
} from "../../../shared/twilio/client.ts";
import { createProcessQueueHandler } from "./handler.ts";
import { runProcessQueue } from "./run.ts";

const env = Deno.env.toObject();
const config = loadConfig(env);
const twilio = twilioConfigFromEnv(env);
const claude = claudeFromEnv(env);
const voice = voiceConfigFromEnv(env);
const reconcileAfterSeconds = unknownReconcileAfterSecondsFromEnv(env);
const { renderMaxSegments } = deliveryConfigFromEnv(env);
const sql = connect(config.SUPABASE_DB_URL, 4);
// One for the process, so the runs it serves at once mark their sends together,
// on a connection of its own, so a mark never waits behind a claim.
const starter = new SendStarter(connect(config.SUPABASE_DB_URL, 1));
const twilioHttp = createTwilioHttp();
const functionsUrl = `${config.SUPABASE_URL ?? ""}/functions/v1`;

Deno.serve(createProcessQueueHandler({
  secret: config.ORCHESTRATOR_SECRET,
  run: (req) =>
    runProcessQueue({
      sql,
      now: () => Date.now(),
      log: (message, fields) => logInfo("process-queue", message, fields),
      // Sends in flight per run (it bounds calls dispatched and reconciliation
      // lookups too, which come in batches of 20 and 50). Against a real Twilio,
      // whose answers take a while, this bounds a run's throughput; and more in
      // flight means more sends marked in each start_sending. A 20,000-text drain (4 runs at once, 0 ms
      // answers) made 663-731 marks at 16 and 327-419 at 32 in the lab, and ran
      // 10-35% faster. 48 made fewer marks still (231-267), but `npm run bench`,
      // taking turns, drained no faster (32: 3204.98, 3731.37, 3622.55/s; 48:
      // 3637.02, 3527.97, 3103.48/s). An account's concurrency limit is commonly
      // given as 100 requests (Twilio's docs name no figure): 32 leaves room for
      // three runs at once, and a 429 beyond it is retried.
      concurrency: 32,
      leaseSeconds: 120,
      calls: voice
        ? {
          ...voice,
          fetch,
          random: Math.random,
          log: (message, fields) => logInfo("process-queue", message, fields),
        }
        : null,
      reconcile: twilio
        ? {
          afterSeconds: reconcileAfterSeconds,
          lookUp: (sms) => lookUpSentMessage(twilio, sms, { fetch: twilioHttp.fetch }),
        }
        : null,
      delivery: twilio
        ? {
          starter,
          sendSms: (msg) => sendSms(twilio, msg, { fetch: twilioHttp.fetch }),
          complete: claude.client ? createCompleter(claude.client, "process-queue") : null,
          renderModel: claude.renderModel,
          renderMaxSegments,
          statusCallbackUrl: (id) => `${functionsUrl}/twilio-status?message_id=${id}`,
          fromNumber: twilio.from ?? twilio.messagingServiceSid ?? "",
          random: Math.random,
          log: (message, fields) => logInfo("process-queue", message, fields),
        }
        : null,
    }, req),
}));
