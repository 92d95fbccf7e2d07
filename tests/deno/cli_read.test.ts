// The operator CLI's reading commands, run as a subprocess against the test
// stack: usage errors, an unreachable database, status, user, why and the lists.
import assert from "node:assert/strict";
import { createUser, db, stack, stackTest } from "./helpers.ts";
import {
  catcher,
  deliveryUser,
  enqueue,
  processQueue,
  processUntilSettled,
  soleProcessorTest,
} from "./delivery_helpers.ts";
import { assertCleanFailure, cli, cliJson } from "./cli_helpers.ts";

const sql = db;

stackTest("bad usage exits 2 with the reason and the usage, never a stack trace", async () => {
  for (
    const [args, reason] of [
      [["frobnicate"], /unknown command frobnicate/],
      [["why"], /why: argument needs exactly one message id/],
      [["why", "not-a-uuid"], /why: argument must be a uuid/],
      [["user", "12345"], /must be a user id \(uuid\) or an E\.164 phone number/],
      [["queue", "--limit", "0"], /queue: --limit/],
      [["queue", "--since", "yesterday"], /--since must be a duration/],
      [["status", "--bogus"], /unknown option --bogus/],
      [["status", "extra"], /status: argument takes no arguments/],
      [["export", crypto.randomUUID(), "--format", "pdf"], /--format/],
      [["doctor", "--limit", "3"], /doctor: does not take --limit/],
    ] as [string[], RegExp][]
  ) {
    const r = await cli(args);
    assertCleanFailure(r, 2, reason);
    assert.match(r.stderr, /npx orchestrator <command>/);
  }
  const help = await cli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Exit codes: 0 ok, 1 failed/);
});

stackTest("an unreachable database exits 1 with a clear message", async () => {
  const closed = "postgresql://postgres:postgres@127.0.0.1:9/postgres";
  for (const args of [["status"], ["doctor"], ["user", "+12015550100"], ["tail"]]) {
    const r = await cli(args, { dbUrl: closed });
    assertCleanFailure(r, 1, /cannot reach the database at 127\.0\.0\.1:9\/postgres/);
    assert.doesNotMatch(r.stderr, /postgres:postgres/, "the password is never printed");
  }
  const json = await cli(["status", "--json"], { dbUrl: closed });
  assert.equal(json.code, 1);
  assert.match(JSON.parse(json.stdout).error, /cannot reach the database/);
});

stackTest("the database comes from SUPABASE_DB_URL when --db-url is not given", async () => {
  const r = await cli(["status", "--json"], { dbUrl: null, env: { SUPABASE_DB_URL: stack.dbUrl } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(typeof JSON.parse(r.stdout).queued, "number");
});

stackTest("status counts the queue by status and priority, and says what ran", async () => {
  const user = await createUser(sql());
  await sql()`update public.users set quiet_hours_start = '00:00', quiet_hours_end = '00:00' where id = ${user.id}`;
  const later = new Date(Date.now() + 3_600_000);
  await enqueue({ userId: user.id, text: "later high", priority: "high", scheduledFor: later });
  await enqueue({ userId: user.id, text: "later low", priority: "low", scheduledFor: later });
  const s = await cliJson<{
    queued: number;
    queue: { status: string; priority: string; count: number }[];
    sent_1h: number;
    routines_due: number | null;
    cron: { job_present: boolean };
    net: { responses_1h: number };
    claude_cost_month_usd: number;
    processor_runs: unknown[];
  }>(["status"]);
  assert.ok(s.queued >= 2);
  const high = s.queue.find((q) => q.status === "queued" && q.priority === "high");
  assert.ok(high && high.count >= 1);
  assert.equal(s.cron.job_present, true);
  assert.equal(typeof s.claude_cost_month_usd, "number");
  assert.ok(Array.isArray(s.processor_runs));

  const text = await cli(["status"]);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /^Queue +queued \d+ \(.*high \d+/m);
  assert.match(text.stdout, /^Claude cost +today \$/m);
  assert.ok(!text.stdout.includes("\x1b["), "no colour when piped");
});

stackTest(
  "user shows the profile with the phone masked, and why each queued message waits",
  async () => {
    const user = await createUser(sql(), { timezone: "Europe/Chisinau" });
    const id = await enqueue({
      userId: user.id,
      text: "tomorrow",
      scheduledFor: new Date(Date.now() + 86_400_000),
    });
    await sql()`
    update public.users set insights = ${
      JSON.stringify({
        items: [{
          key: "coffee",
          value: "takes it black",
          category: "preference",
          first_seen: "2026-11-30T10:00:00Z",
          last_seen: "2026-11-30T10:00:00Z",
          sources: ["interaction:x"],
        }],
      })
    }::text::jsonb where id = ${user.id}`;
    const u = await cliJson<{
      phone_number: string;
      timezone: string;
      local_time: string;
      memory: { key: string; sources: string[] }[];
      queue: { id: string; waiting_because: string }[];
    }>(["user", user.phone_number]);
    assert.notEqual(u.phone_number, user.phone_number);
    assert.equal(u.phone_number.slice(-4), user.phone_number.slice(-4));
    assert.equal(u.timezone, "Europe/Chisinau");
    assert.deepEqual(u.memory.map((m) => [m.key, m.sources]), [["coffee", ["interaction:x"]]]);
    const queued = u.queue.find((q) => q.id === id)!;
    assert.match(queued.waiting_because, /^scheduled for \d{4}-\d{2}-\d{2} \d{2}:\d{2}/);

    const revealed = await cliJson<{ phone_number: string }>(["user", user.id, "--reveal"]);
    assert.equal(revealed.phone_number, user.phone_number);
    const text = await cli(["user", user.id]);
    assert.match(text.stdout, /^Time zone +Europe\/Chisinau, local time /m);
    assert.match(text.stdout, /takes it black/);
    assert.doesNotMatch(text.stdout, new RegExp(user.phone_number.replace("+", "\\+")));

    assertCleanFailure(await cli(["user", "+12015559999"]), 1, /unknown user \+12015559999/);
  },
);

/** Wall-clock time in a zone as the operator views print it. */
function localTime(at: Date, timeZone: string): string {
  return new Intl.DateTimeFormat("sv-SE", {
    timeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  }).format(at);
}

/** Quiet hours from an hour ago to an hour from now, in the zone's wall-clock time. */
function quietAroundNow(timeZone: string): [string, string] {
  const hhmm = (at: Date) => localTime(at, timeZone).slice(11, 16);
  return [hhmm(new Date(Date.now() - 3_600_000)), hhmm(new Date(Date.now() + 3_600_000))];
}

soleProcessorTest(
  "why: deferred for quiet hours, then sent, then delivered by the callback, in local time",
  async () => {
    const tz = "Asia/Tokyo";
    const user = await deliveryUser(sql(), { timezone: tz });
    const [start, end] = quietAroundNow(tz);
    await sql()`update public.users set quiet_hours_start = ${start}, quiet_hours_end = ${end} where id = ${user.id}`;
    const id = await enqueue({ userId: user.id, text: "Good morning from the queue" });
    await processQueue({ time_budget_ms: 5_000 });
    const [waiting] = await sql()<{ status: string; wait_reason: string }[]>`
    select status, wait_reason from public.message_queue where id = ${id}`;
    assert.deepEqual(waiting, { status: "queued", wait_reason: "quiet_hours" });

    // The quiet hours end early (the user changed them); the message is due again.
    await sql()`update public.users set quiet_hours_start = '00:00', quiet_hours_end = '00:00' where id = ${user.id}`;
    await sql()`update public.message_queue set next_attempt_at = now() where id = ${id}`;
    assert.equal((await processUntilSettled(id)).status, "sent");
    const [caught] = await catcher.messages(user.phone_number);
    const res = await catcher.status({
      url: caught.statusCallback!,
      sid: caught.sid,
      status: "delivered",
    });
    assert.equal(res.status, 200);

    const why = await cliJson<{
      message: { status: string; twilio_sid: string; timezone: string };
      history: {
        at: string;
        local_at: string;
        state: string;
        reason: string | null;
        next_eligible_at: string | null;
        next_eligible_local: string | null;
        twilio_sid: string | null;
      }[];
    }>(["why", id]);
    assert.equal(why.message.status, "delivered");
    assert.equal(why.message.twilio_sid, caught.sid);
    const states = why.history.map((h) => `${h.state}${h.reason ? `:${h.reason}` : ""}`);
    const order = ["deferred:quiet_hours", "sent", "delivered:status callback"].map((s) =>
      states.indexOf(s)
    );
    assert.ok(order.every((i) => i >= 0), `history has every step: ${states.join(", ")}`);
    assert.deepEqual([...order].sort((a, b) => a - b), order, `in order: ${states.join(", ")}`);
    assert.equal(states[0], "queued:medium");
    for (const h of why.history) assert.equal(h.local_at, localTime(new Date(h.at), tz));
    const deferral = why.history[order[0]];
    assert.equal(deferral.next_eligible_local, localTime(new Date(deferral.next_eligible_at!), tz));
    assert.equal(
      deferral.next_eligible_local!.slice(11, 16),
      end,
      "eligible at the local end of quiet hours",
    );
    assert.equal(why.history[order[1]].twilio_sid, caught.sid);

    const text = await cli(["why", id]);
    assert.match(text.stdout, /History \(local time, Asia\/Tokyo\)/);
    assert.match(text.stdout, /deferred +quiet_hours/);
    assertCleanFailure(await cli(["why", crypto.randomUUID()]), 1, /unknown message/);
  },
);

stackTest("queue, calls and analyses filter by user, status, since and limit", async () => {
  const user = await createUser(sql());
  const other = await createUser(sql());
  const later = new Date(Date.now() + 3_600_000);
  const ids = [];
  for (const text of ["one", "two", "three"]) {
    ids.push(await enqueue({ userId: user.id, text, scheduledFor: later }));
  }
  await enqueue({ userId: other.id, text: "not theirs", scheduledFor: later });

  const mine = await cliJson<{ id: string; user_id: string; waiting_because: string }[]>([
    "queue",
    "--user",
    user.id,
  ]);
  assert.deepEqual(mine.map((m) => m.id).sort(), [...ids].sort());
  assert.ok(mine.every((m) => m.waiting_because.startsWith("scheduled for")));
  assert.equal(
    (await cliJson<unknown[]>(["queue", "--user", user.phone_number, "--limit", "2"])).length,
    2,
  );
  await sql()`select public.cancel_message(${ids[0]})`;
  const cancelled = await cliJson<{ id: string }[]>([
    "queue",
    "--user",
    user.id,
    "--status",
    "cancelled",
  ]);
  assert.deepEqual(cancelled.map((m) => m.id), [ids[0]]);
  assert.deepEqual(await cliJson(["queue", "--user", user.id, "--since", "2099-01-01"]), []);
  assert.equal(
    (await cliJson<unknown[]>(["queue", "--user", user.id, "--since", "10m"])).length,
    2,
  );

  const [{ call }] = await sql()<{ call: string }[]>`
    select public.schedule_call(${user.id}, 'checkin', now() + interval '2 hours', null::text, null::text) as call`;
  const listed = await cliJson<{ id: string; status: string; scheduled_local: string }[]>([
    "calls",
    "--user",
    user.id,
    "--status",
    "pending",
  ]);
  assert.deepEqual(listed.map((c) => [c.id, c.status]), [[call, "pending"]]);

  const [{ interaction }] = await sql()<{ interaction: string }[]>`
    insert into public.interactions (user_id, channel, transcript, analysis_status, analysis_error)
    values (${user.id}, 'voice', 'hello', 'failed', 'model overloaded') returning id as interaction`;
  const failed = await cliJson<{ interaction_id: string; status: string; error: string }[]>([
    "analyses",
    "--user",
    user.id,
    "--status",
    "failed",
  ]);
  assert.deepEqual(failed.map((a) => [a.interaction_id, a.status, a.error]), [[
    interaction,
    "failed",
    "model overloaded",
  ]]);
  assert.deepEqual(await cliJson(["analyses", "--user", user.id, "--status", "done"]), []);
  assertCleanFailure(await cli(["queue", "--user", crypto.randomUUID()]), 1, /unknown user/);
});
