// The Twilio webhooks at their HTTP boundary, without a database: what they accept, what they
// refuse, and the TwiML they answer with.
import assert from "node:assert/strict";
import type { Sql } from "../../../shared/db.ts";
import { twilioSignature } from "../../../shared/twilio/signature.ts";
import { createTwilioStatusHandler } from "../../../supabase/functions/twilio-status/handler.ts";
import { twiml } from "../../../supabase/functions/twilio-inbound/twiml.ts";

const TOKEN = "test-auth-token";
const FUNCTIONS_URL = "https://project.example.com/functions/v1";
const MESSAGE_ID = "6f1c7a52-3b0e-4a57-9a43-1d7c6a1f2b90";
const SID = "SM0123456789abcdef0123456789abcdef";

const messageOf = async (reply: string) => {
  const text = await twiml(reply).text();
  const match =
    /^<\?xml version="1\.0" encoding="UTF-8"\?><Response><Message>(.*)<\/Message><\/Response>$/s
      .exec(text);
  assert.ok(match, text);
  return match[1];
};

Deno.test("TwiML keeps a carriage return as a character reference", async () => {
  assert.equal(await messageOf("line one\r\nline two"), "line one&#13;\nline two");
});

Deno.test("TwiML drops the characters XML forbids and escapes markup", async () => {
  const controls = "\u0000\u0001\u0008\u000B\u000C\u000E\u001F\uFFFE\uFFFF";
  // Unpaired surrogates: a high one followed by "!", a low one with nothing before it.
  assert.equal(await messageOf(`ok${controls}\uD800!\uDFFF`), "ok!");
  // Tab and line feed are allowed, and so is a character outside the BMP (a surrogate pair).
  assert.equal(await messageOf("a\tb\nc 📅"), "a\tb\nc 📅");
  assert.equal(await messageOf(`<b> & "q" 'a'`), "&lt;b&gt; &amp; &quot;q&quot; &apos;a&apos;");
});

Deno.test("TwiML with no reply is an empty Response", async () => {
  const res = twiml(null);
  assert.match(res.headers.get("content-type") ?? "", /^text\/xml/);
  assert.equal(await res.text(), '<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
});

function statusHandler() {
  const calls: unknown[][] = [];
  const sql = ((_strings: TemplateStringsArray, ...values: unknown[]) => {
    calls.push(values);
    return Promise.resolve([{ result: { found: true, status: values[2] } }]);
  }) as unknown as Sql;
  return {
    calls,
    handler: createTwilioStatusHandler({ sql, authToken: TOKEN, functionsUrl: FUNCTIONS_URL }),
  };
}

function statusCallback(fields: Record<string, string>, signWith = TOKEN): Request {
  const query = `?message_id=${MESSAGE_ID}`;
  const params = new URLSearchParams(fields);
  return new Request(`http://127.0.0.1:9/twilio-status${query}`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": twilioSignature(
        signWith,
        `${FUNCTIONS_URL}/twilio-status${query}`,
        params,
      ),
    },
    body: params,
  });
}

const CALLBACK = { MessageSid: SID, SmsSid: SID, AccountSid: "AC_local_catcher" };

Deno.test("every outbound status Twilio sends is accepted, partially_delivered included", async () => {
  const statuses = [
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
  ];
  const { calls, handler } = statusHandler();
  for (const status of statuses) {
    const res = await handler(statusCallback({ ...CALLBACK, MessageStatus: status }));
    assert.equal(res.status, 200, `${status}: ${await res.clone().text()}`);
    assert.deepEqual(await res.json(), { ok: true, found: true, status });
  }
  assert.deepEqual(calls.map((values) => values[2]), statuses);
  assert.deepEqual(calls[0], [MESSAGE_ID, SID, "accepted", null]);
});

Deno.test("a status callback with an unknown status or a forged signature changes nothing", async () => {
  const { calls, handler } = statusHandler();
  const unknown = await handler(statusCallback({ ...CALLBACK, MessageStatus: "exploded" }));
  assert.equal(unknown.status, 400);
  await unknown.body?.cancel();
  const forged = await handler(statusCallback({ ...CALLBACK, MessageStatus: "delivered" }, "x"));
  assert.equal(forged.status, 403);
  await forged.body?.cancel();
  assert.equal(calls.length, 0);
});
