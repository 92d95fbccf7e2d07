import { z } from "zod";
import type { Sql } from "../../../shared/db.ts";
import { handle, json, parseWith } from "../../../shared/http.ts";
import { readTwilioWebhook } from "../../../shared/twilio/webhook.ts";

const statusCallback = z.object({
  message_id: z.uuid(),
  MessageSid: z.string().regex(/^(SM|MM)[0-9a-fA-F]{32}$/, "must be a Twilio message SID"),
  // Every status of Twilio's Message resource (MessageStatus in twilio 6.3.1) but the inbound-only
  // "receiving" and "received".
  MessageStatus: z.enum([
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "partially_delivered",
    "read",
    "undelivered",
    "failed",
    "canceled",
  ]),
  ErrorCode: z.string().regex(/^\d{1,6}$/).optional(),
});

/** Twilio status callbacks: the final word on what happened to a message we sent. */
export function createTwilioStatusHandler(deps: {
  sql: Sql;
  authToken: string;
  functionsUrl: string;
}) {
  return handle(async (req) => {
    const form = await readTwilioWebhook(req, deps);
    const messageId = new URL(req.url).searchParams.get("message_id");
    const cb = parseWith(statusCallback, { ...form, message_id: messageId });
    const [{ result }] = await deps.sql<{ result: { found: boolean; status?: string } }[]>`
      select public.apply_twilio_status(${cb.message_id}, ${cb.MessageSid}, ${cb.MessageStatus},
                                        ${cb.ErrorCode ?? null}) as result`;
    return json({ ok: true, ...result });
  });
}
