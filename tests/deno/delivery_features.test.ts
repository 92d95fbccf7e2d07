// Issue 11 end to end: the fast lane, SMS-native text, snooze, every deferral
// reason on record once, and refusals at the limits.
import assert from "node:assert/strict";
import { db, stackTest, waitFor } from "./helpers.ts";
import {
  catcher,
  deliveryUser,
  enqueue,
  processQueue,
  scripted,
  soleProcessorTest,
  statusOf,
} from "./delivery_helpers.ts";

stackTest("fast lane: an urgent message goes out with no cron and no manual run", async () => {
  const sql = db();
  await sql`update cron.job set active = false where jobname = 'process-queue'`;
  try {
    const user = await deliveryUser(sql);
    const id = await enqueue({ userId: user.id, priority: "urgent", text: "smoke alarm at home" });
    const [caught] = await waitFor(
      "the fast lane to deliver",
      async () => {
        const m = await catcher.messages(user.phone_number);
        return m.length ? m : null;
      },
    );
    assert.equal(caught.body, "smoke alarm at home");
    await waitFor("the send to be recorded", async () => (await statusOf(id)).status === "sent");
    const [run] = await sql`select source from public.processor_runs
                             where summary ->> 'sent' is not null order by id desc limit 1`;
    assert.equal(run.source, "fast_lane");
  } finally {
    await sql`update cron.job set active = true where jobname = 'process-queue'`;
  }
});

soleProcessorTest("a render with curly quotes goes out as GSM-7 in one segment", async () => {
  const user = await deliveryUser(db());
  const marker = `curly-${crypto.randomUUID()}`;
  await scripted.script([{
    kind: "text",
    match: marker,
    text: "You\u2019re set \u2014 \u201cdinner at 7\u201d is booked\u2026",
  }]);
  const id = await enqueue({ userId: user.id, data: { booking: marker } });
  await processQueue();
  assert.equal((await statusOf(id)).status, "sent");
  const [caught] = await catcher.messages(user.phone_number);
  assert.equal(caught.body, 'You\'re set - "dinner at 7" is booked...');
  const [row] = await db()`select encoding, segments from public.messages
                            where message_queue_id = ${id}`;
  assert.deepEqual([row.encoding, row.segments], ["GSM-7", 1]);
});

soleProcessorTest("a render over the segment maximum is asked again, then failed", async () => {
  const user = await deliveryUser(db());
  const marker = `long-${crypto.randomUUID()}`;
  const long = "All good here. ".repeat(30);
  await scripted.script([
    { kind: "text", match: marker, text: long },
    { kind: "text", match: marker, text: long },
  ]);
  const id = await enqueue({ userId: user.id, data: { news: marker } });
  await processQueue();
  const row = await statusOf(id);
  assert.equal(row.status, "failed");
  assert.match(row.status_reason!, /segments twice, over the maximum of 2/);
  assert.equal((await catcher.messages(user.phone_number)).length, 0, "never sent");
  const [event] = await db()`select kind, reason from public.delivery_events
                              where message_id = ${id}`;
  assert.deepEqual([event.kind, event.reason], ["failed", "render_too_long"]);
});

stackTest("a final message over 1,600 characters is refused at enqueue", async () => {
  const user = await deliveryUser(db());
  await assert.rejects(
    () => enqueue({ userId: user.id, text: "x".repeat(2000) }),
    (err: { code?: string; message?: string }) =>
      err.code === "22023" && /1600 characters/.test(err.message ?? ""),
  );
  const [{ n }] = await db()`select count(*)::int as n from public.message_queue
                              where user_id = ${user.id}`;
  assert.equal(n, 0);
});

soleProcessorTest("a snoozed user gets only the urgent message", async () => {
  const sql = db();
  const user = await deliveryUser(sql);
  await sql`select public.snooze_user(${user.id}, now() + interval '2 hours', 'travelling')`;
  const low = await enqueue({ userId: user.id, priority: "low", text: "weekly digest" });
  const high = await enqueue({ userId: user.id, priority: "high", text: "call back Sam" });
  await enqueue({ userId: user.id, priority: "urgent", text: "flight moved to 6 am" });
  await processQueue();
  assert.deepEqual((await catcher.messages(user.phone_number)).map((m) => m.body), [
    "flight moved to 6 am",
  ]);
  for (const id of [low, high]) assert.equal((await statusOf(id)).status, "queued");
});

soleProcessorTest(
  "every deferral reason is on record once, with its next eligible instant",
  async () => {
    const sql = db();
    const now = new Date();
    const hhmm = (d: Date) => d.toISOString().slice(11, 16);
    const hoursFromNow = (h: number) => new Date(now.getTime() + h * 3_600_000);
    const quiet = await deliveryUser(sql, {
      quiet_hours_start: hhmm(hoursFromNow(-1)),
      quiet_hours_end: hhmm(hoursFromNow(2)),
    });
    const daily = await deliveryUser(sql, { daily_message_limit: 0 });
    const hourly = await deliveryUser(sql, { hourly_message_limit: 1 });
    // Its hour is spent: the unit leaves the window 50 minutes from now.
    await sql`insert into public.message_queue (user_id, agent_id, final_message, status, unit_kind,
                                              unit_spent_at, unit_local_date, sent_at)
            values (${hourly.id}, 'test-agent', 'earlier', 'sent', 'capped',
                    now() - interval '10 minutes', (now() at time zone 'UTC')::date, now())`;
    const preferred = await deliveryUser(sql);
    await sql`select public.set_preferred_hours(${preferred.id}, ${hhmm(hoursFromNow(2))}::time,
                                              ${hhmm(hoursFromNow(5))}::time)`;
    const snoozed = await deliveryUser(sql);
    await sql`select public.snooze_user(${snoozed.id}, now() + interval '1 hour', null)`;
    const ceiling = await deliveryUser(sql, { daily_message_limit: 0 });
    await sql`insert into public.user_message_budget (user_id, local_date, units_used, urgent_used)
            values (${ceiling.id}, (now() at time zone 'UTC')::date, 5, 5)`;
    const sequenced = await deliveryUser(sql);

    const ids = {
      quiet_hours: await enqueue({ userId: quiet.id, text: "q" }),
      daily_cap: await enqueue({ userId: daily.id, text: "d" }),
      hourly_cap: await enqueue({ userId: hourly.id, text: "h" }),
      preferred_hours: await enqueue({ userId: preferred.id, text: "p" }),
      snoozed: await enqueue({ userId: snoozed.id, text: "s" }),
      urgent_ceiling: await enqueue({ userId: ceiling.id, priority: "urgent", text: "u" }),
      sequence_wait: await enqueue({
        userId: sequenced.id,
        text: "first of two",
        sequence: { id: crypto.randomUUID(), position: 1, total: 2 },
      }),
    };
    const all = Object.values(ids);
    await processQueue();
    // Looked at again for the same reasons: nothing new is written.
    await sql`update public.message_queue set next_attempt_at = now() where id = any(${all})`;
    await processQueue();

    const events = await sql<{ message_id: string; reason: string; same: boolean }[]>`
    select e.message_id, e.reason, e.next_eligible_at = m.next_attempt_at as same
      from public.delivery_events e join public.message_queue m on m.id = e.message_id
     where e.message_id = any(${all}) and e.kind = 'deferred'`;
    for (const [reason, id] of Object.entries(ids)) {
      const mine = events.filter((e) => e.message_id === id);
      assert.deepEqual(mine.map((e) => [e.reason, e.same]), [[reason, true]], reason);
    }
  },
);
