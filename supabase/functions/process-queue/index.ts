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
      // Sends in flight per run. Against a real Twilio, whose answers take a
      // while, this bounds a run's throughput; and more in flight means more sends
      // marked in each start_sending. In the lab, a 20,000-text drain (4 runs at
      // once, 0 ms answers, first drain after a restart, 3 runs each taking turns)
      // made 327-419 marks at 32 and 231-267 at 48, and sent 3201.8, 3842.7 and
      // 3218.3/s at 32 against 4320.6, 3730.5 and 3264.8/s at 48 (the earlier 16
      // made 663-731 marks a drain). Twilio refuses what exceeds an account's
      // concurrency with 429, which is retried.
      concurrency: 48,
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
