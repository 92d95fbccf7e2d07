// Delivery end to end through HTTP: the queue RPC, process-queue, the local
// SMS catcher speaking Twilio's wire format, and the Twilio webhooks.
import assert from "node:assert/strict";
import { db, functionUrl, stackTest, waitFor } from "./helpers.ts";
import {
  catcher,
  deliveryUser,
  enqueue,
  processQueue,
  processUntilSettled,
  scripted,
  statusOf,
} from "./delivery_helpers.ts";

const sql = () => db();

stackTest("a queued message is sent once through Twilio with a status callback URL", async () => {
  const user = await deliveryUser(sql());
  const id = await enqueue({ userId: user.id, text: "Your prescription is ready." });
  assert.equal((await processUntilSettled(id)).status, "sent");
  const got = await catcher.messages(user.phone_number);
  assert.equal(got.length, 1);
  assert.equal(got[0].body, "Your prescription is ready.");
  assert.ok(got[0].statusCallback?.endsWith(`/functions/v1/twilio-status?message_id=${id}`));
  const [logged] = await sql()`
    select direction, body, twilio_sid from public.messages where message_queue_id = ${id}`;
  assert.deepEqual(logged, {
    direction: "outbound",
    body: "Your prescription is ready.",
    twilio_sid: got[0].sid,
  });
});

stackTest("the status callback moves a sent message to delivered", async () => {
  const user = await deliveryUser(sql());
  const id = await enqueue({ userId: user.id, text: "See you at 3." });
  await processUntilSettled(id);
  const [sent] = await catcher.messages(user.phone_number);
  const res = await catcher.status({
    url: sent.statusCallback!,
    sid: sent.sid,
    status: "delivered",
  });
  assert.equal(res.status, 200);
  assert.equal((await statusOf(id)).status, "delivered");
});

stackTest("STOP cancels queued messages and nothing more is sent until START", async () => {
  const user = await deliveryUser(sql());
  const later = await enqueue({
    userId: user.id,
    text: "Reminder for tomorrow",
    scheduledFor: new Date(Date.now() + 3_600_000),
  });
  const stop = await catcher.inbound({ from: user.phone_number, body: "stop" });
  assert.equal(stop.status, 200);
  assert.deepEqual(await statusOf(later), {
    status: "cancelled",
    status_reason: "user opted out of SMS",
  });
  const during = await enqueue({ userId: user.id, text: "Are you there?" });
  assert.equal((await statusOf(during)).status, "cancelled");
  await processQueue();
  assert.equal((await catcher.messages(user.phone_number)).length, 0);

  const start = await catcher.inbound({ from: user.phone_number, body: "START" });
  assert.match(start.body, /opted back in/);
  const after = await enqueue({ userId: user.id, text: "Welcome back." });
  assert.equal((await processUntilSettled(after)).status, "sent");
  assert.deepEqual((await catcher.messages(user.phone_number)).map((m) => m.body), [
    "Welcome back.",
  ]);
});

stackTest("HELP gets a help reply and other text becomes an sms interaction", async () => {
  const user = await deliveryUser(sql());
  const help = await catcher.inbound({ from: user.phone_number, body: "Help" });
  assert.match(help.body, /<Message>.*STOP.*<\/Message>/);
  const text = await catcher.inbound({ from: user.phone_number, body: "Can we move it to 5?" });
  assert.equal(text.status, 200);
  const [row] = await sql()`
    select channel, transcript from public.interactions where user_id = ${user.id}`;
  assert.deepEqual(row, { channel: "sms", transcript: "Can we move it to 5?" });
});

stackTest("a forged Twilio signature gets 403 and changes nothing", async () => {
  const user = await deliveryUser(sql());
  const id = await enqueue({
    userId: user.id,
    text: "still wanted",
    scheduledFor: new Date(Date.now() + 3_600_000),
  });
  const form = new URLSearchParams({
    MessageSid: "SM" + "0".repeat(32),
    From: user.phone_number,
    To: "+12015550100",
    Body: "STOP",
  });
  for (const name of ["twilio-inbound", "twilio-status"]) {
    const res = await fetch(functionUrl(name), {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      },
      body: form,
    });
    assert.equal(res.status, 403, name);
    await res.body?.cancel();
  }
  assert.equal((await statusOf(id)).status, "queued");
  const [{ opted }] = await sql()`
    select sms_opted_out_at is not null as opted from public.users where id = ${user.id}`;
  assert.equal(opted, false);
});

stackTest("a signed webhook with a bad field gets 400 naming it", async () => {
  const res = await catcher.inbound({ from: "not-a-number", body: "hi" });
  assert.equal(res.status, 400);
  assert.match(res.body, /From/);
});

stackTest("urgent ignores quiet hours and caps, but only five a day", async () => {
  // Quiet all day long (00:01 to 00:00), and no capped budget at all.
  const user = await deliveryUser(sql(), {
    quiet_hours_start: "00:01",
    quiet_hours_end: "00:00",
    daily_message_limit: 0,
    hourly_message_limit: 0,
  });
  const ids = [];
  // Distinct schedules: "the sixth" is the sixth in line, not a tie broken at random.
  const start = Date.now() - 60_000;
  for (let i = 1; i <= 6; i++) {
    ids.push(
      await enqueue({
        userId: user.id,
        priority: "urgent",
        text: `urgent ${i}`,
        scheduledFor: new Date(start + i * 1000),
      }),
    );
  }
  await processQueue();
  await waitFor(
    "five urgent messages",
    async () => (await catcher.messages(user.phone_number)).length === 5 || null,
  );
  const sixth = await statusOf(ids[5]);
  assert.equal(sixth.status, "queued");
  assert.match(sixth.status_reason!, /^deferred: /);
});

stackTest("a sequence goes out whole, in order, as one budget unit", async () => {
  const user = await deliveryUser(sql(), { hourly_message_limit: 1 });
  const sequenceId = crypto.randomUUID();
  const ids = [];
  for (const position of [3, 1, 2]) {
    ids.push(
      await enqueue({
        userId: user.id,
        text: `part ${position}`,
        sequence: { id: sequenceId, position, total: 3 },
      }),
    );
  }
  for (const id of ids) await processUntilSettled(id);
  assert.deepEqual((await catcher.messages(user.phone_number)).map((m) => m.body), [
    "part 1",
    "part 2",
    "part 3",
  ]);
  const [{ units }] = await sql()`
    select sum(units_used)::int as units from public.user_message_budget where user_id = ${user.id}`;
  assert.equal(units, 1);
});

stackTest("an expired message is never sent", async () => {
  const user = await deliveryUser(sql(), { hourly_message_limit: 1 });
  const first = await enqueue({ userId: user.id, text: "first" });
  await processUntilSettled(first);
  // The hourly cap holds the second back; by the time it could go, it has expired.
  const stale = await enqueue({
    userId: user.id,
    text: "only useful for a minute",
    expiresAt: new Date(Date.now() + 60_000),
  });
  await processQueue();
  assert.equal((await statusOf(stale)).status, "queued");
  await sql()`update public.message_queue set expires_at = now() - interval '1 second',
                next_attempt_at = now() where id = ${stale}`;
  assert.equal((await processUntilSettled(stale)).status, "expired");
  assert.deepEqual((await catcher.messages(user.phone_number)).map((m) => m.body), ["first"]);
});

stackTest("a newer message with the same supersede key replaces the queued one", async () => {
  const user = await deliveryUser(sql());
  const later = new Date(Date.now() + 3_600_000);
  const old = await enqueue({
    userId: user.id,
    text: "Rain at 5",
    supersedeKey: "forecast",
    scheduledFor: later,
  });
  const fresh = await enqueue({ userId: user.id, text: "Sunny all day", supersedeKey: "forecast" });
  assert.equal((await statusOf(old)).status, "superseded");
  assert.equal((await processUntilSettled(fresh)).status, "sent");
  assert.deepEqual((await catcher.messages(user.phone_number)).map((m) => m.body), [
    "Sunny all day",
  ]);
});

stackTest("message_data is rendered to prose by the model before sending", async () => {
  const user = await deliveryUser(sql());
  const id = await enqueue({
    userId: user.id,
    data: { reminder: "Dentist", when: "tomorrow 9:00" },
  });
  await processUntilSettled(id);
  const [sent] = await catcher.messages(user.phone_number);
  assert.ok(sent.body.length > 0);
  assert.doesNotMatch(sent.body, /[{}]|"reminder"/);
  const [log] = await sql()`
    select action, model, input_tokens + cache_write_tokens + cache_read_tokens > 0 as counted
      from public.agent_actions_log where user_id = ${user.id}`;
  assert.equal(log.action, "render_message");
  assert.equal(log.counted, true);
});

stackTest("a render that fails never sends raw JSON: it retries, then fails", async () => {
  const user = await deliveryUser(sql());
  // Five answers that are not prose (the SDK's own retry would repeat a 500,
  // so bad text is what makes each attempt fail exactly once).
  await scripted.script(
    Array.from(
      { length: 5 },
      () => ({ kind: "text", text: '{"reminder": "Dentist"}', match: "RENDER_SMS" }),
    ),
  );
  const id = await enqueue({ userId: user.id, data: { reminder: "Dentist" } });
  await processQueue();
  const first = await statusOf(id);
  assert.equal(first.status, "queued");
  assert.match(first.status_reason!, /not plain SMS prose/);
  // Each retry waits for its backoff; skip the wait instead of sleeping.
  for (let attempt = 2; attempt <= 5; attempt++) {
    await sql()`update public.message_queue set next_attempt_at = now() where id = ${id}`;
    await processQueue();
  }
  const last = await statusOf(id);
  assert.equal(last.status, "failed");
  assert.match(last.status_reason!, /rendering failed 5 times/);
  assert.equal((await catcher.messages(user.phone_number)).length, 0);
});

stackTest("the freshness check supersedes a message that no longer makes sense", async () => {
  const user = await deliveryUser(sql());
  await scripted.script([
    {
      kind: "text",
      text: '{"still_relevant": false, "reason": "the user already rescheduled"}',
      match: "FRESHNESS_CHECK",
    },
  ]);
  const id = await enqueue({ userId: user.id, text: "Don't forget 3pm!", freshContext: true });
  const settled = await processUntilSettled(id);
  assert.equal(settled.status, "superseded");
  assert.match(settled.status_reason!, /already rescheduled/);
  assert.equal((await catcher.messages(user.phone_number)).length, 0);
});

stackTest("Twilio 429 is retried later; 21610 opts the user out", async () => {
  const user = await deliveryUser(sql());
  await catcher.behaviour({
    failNext: [{
      httpStatus: 429,
      code: 20429,
      message: "Too Many Requests",
      to: user.phone_number,
    }],
  });
  const id = await enqueue({ userId: user.id, text: "try again" });
  await processQueue();
  const waiting = await statusOf(id);
  assert.equal(waiting.status, "queued");
  assert.match(waiting.status_reason!, /429/);
  await sql()`update public.message_queue set next_attempt_at = now() where id = ${id}`;
  assert.equal((await processUntilSettled(id)).status, "sent");

  const other = await deliveryUser(sql());
  await catcher.behaviour({
    failNext: [{
      httpStatus: 400,
      code: 21610,
      message: "Attempt to send to unsubscribed recipient",
      to: other.phone_number,
    }],
  });
  const refused = await enqueue({ userId: other.id, text: "hello" });
  assert.equal((await processUntilSettled(refused)).status, "failed");
  const [{ opted }] = await sql()`
    select sms_opted_out_at is not null as opted from public.users where id = ${other.id}`;
  assert.equal(opted, true);
});
