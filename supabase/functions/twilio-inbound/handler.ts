import { z } from "zod";
import type { Sql } from "../../../shared/db.ts";
import { handle, parseWith } from "../../../shared/http.ts";
import { readTwilioWebhook } from "../../../shared/twilio/webhook.ts";
import { twiml } from "./twiml.ts";

const inboundSms = z.object({
  MessageSid: z.string().regex(/^(SM|MM)[0-9a-fA-F]{32}$/, "must be a Twilio message SID"),
  From: z.string().regex(/^\+[1-9][0-9]{6,14}$/, "must be an E.164 phone number"),
  To: z.string().max(64).default(""),
  Body: z.string().max(1600).default(""),
});

export const HELP_REPLY =
  "Your assistant texts you reminders and updates. Reply STOP to opt out, START to opt back in.";
export const START_REPLY =
  "You're opted back in to texts from your assistant. Reply STOP to opt out.";

/** Twilio inbound SMS: opt-out keywords, help, and everything else becomes an interaction. */
export function createTwilioInboundHandler(deps: {
  sql: Sql;
  authToken: string;
  functionsUrl: string;
}) {
  return handle(async (req) => {
    const form = await readTwilioWebhook(req, deps);
    const sms = parseWith(inboundSms, form);
    const [{ result }] = await deps.sql<{ result: { action: string } }[]>`
      select public.record_inbound_sms(${sms.From}, ${sms.To}, ${sms.Body}, ${sms.MessageSid})
        as result`;
    // Twilio's own opt-out handling answers STOP; we only confirm what it does not.
    const reply = result.action === "help"
      ? HELP_REPLY
      : result.action === "opted_in"
      ? START_REPLY
      : null;
    return twiml(reply);
  });
}
