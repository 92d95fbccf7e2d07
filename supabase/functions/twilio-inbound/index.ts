import { loadConfig } from "../../../shared/config.ts";
import { connect } from "../../../shared/db.ts";
import { notConfigured } from "../../../shared/http.ts";
import { twilioConfigFromEnv } from "../../../shared/twilio/client.ts";
import { createTwilioInboundHandler } from "./handler.ts";

const env = Deno.env.toObject();
const config = loadConfig(env);
const twilio = twilioConfigFromEnv(env);

Deno.serve(
  twilio
    ? createTwilioInboundHandler({
      sql: connect(config.SUPABASE_DB_URL, 2),
      authToken: twilio.authToken,
      functionsUrl: `${config.SUPABASE_URL ?? ""}/functions/v1`,
    })
    : notConfigured("Twilio (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)"),
);
