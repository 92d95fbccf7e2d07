// Scheduled calls end to end against the database: dispatchDueCalls hands due
// calls to a recording server playing the voice system, and the outcomes,
// retries, recurrence across DST and completion land in scheduled_calls.
import assert from "node:assert/strict";
import {
  type CallDispatchDeps,
  type CallDispatchOptions,
  dispatchDueCalls,
  voiceConfigFromEnv,
} from "../../shared/calls/dispatch.ts";
import { CALL_LIMITS } from "../../shared/time/rrule.ts";
import { planRecurrences } from "../../shared/calls/recurrence.ts";
import { createUser, db, recordingServer, stackTest, waitFor } from "./helpers.ts";
import { loadRRuleCorpus, mismatch } from "./rrule_corpus.ts";

const sql = () => db();
const VOICE_SECRET = "voice-dispatch-secret-for-tests";

type Server = ReturnType<typeof recordingServer>;

/** What one process-queue run does for calls: plan new series, then dispatch what is due. */
async function dispatch(
  server: Server,
  over: Partial<CallDispatchDeps & CallDispatchOptions> = {},
) {
  const { deadline, batchSize, concurrency, timeoutMs, ...deps } = over;
  await planRecurrences({ sql: sql(), log: () => {} }, batchSize ?? 10);
  return await dispatchDueCalls({
    sql: sql(),
    fetch,
    voiceUrl: `${server.url}/calls`,
    voiceSecret: VOICE_SECRET,
    now: Date.now,
    random: () => 0.5,
    log: () => {},
    ...deps,
  }, {
    deadline: deadline ?? Date.now() + 60_000,
    batchSize: batchSize ?? 10,
    concurrency: concurrency ?? 4,
    timeoutMs: timeoutMs ?? 10_000,
  });
}

/** A call scheduled through the RPC, then made due now. */
async function dueCall(
  userId: string,
  fields: { instructions?: string; rrule?: string } = {},
): Promise<string> {
  const [{ id }] = await sql()<{ id: string }[]>`
    select public.schedule_call(${userId}, 'checkin', now() + interval '1 hour',
      ${fields.instructions ?? null}::text, ${fields.rrule ?? null}::text) as id`;
  await sql()`update public.scheduled_calls set next_attempt_at = now() where id = ${id}`;
  return id;
}

async function callRow(id: string) {
  const [row] = await sql()<
    {
      status: string;
      attempts: number;
      next_attempt_at: Date;
      dispatched_at: Date | null;
      completed_at: Date | null;
      last_error: string | null;
    }[]
  >`
    select status, attempts, next_attempt_at, dispatched_at, completed_at, last_error
      from public.scheduled_calls where id = ${id}`;
  return row;
}

const requestsFor = (server: Server, id: string) =>
  server.received.filter((r) => r.headers.get("idempotency-key") === id);

Deno.test("voiceConfigFromEnv: unset is null; a URL needs a secret of 16 characters", () => {
  assert.equal(voiceConfigFromEnv({}), null);
  assert.equal(voiceConfigFromEnv({ VOICE_DISPATCH_URL: "", VOICE_DISPATCH_SECRET: "x" }), null);
  assert.deepEqual(
    voiceConfigFromEnv({
      VOICE_DISPATCH_URL: "https://voice.example.com/dispatch",
      VOICE_DISPATCH_SECRET: VOICE_SECRET,
    }),
    { voiceUrl: "https://voice.example.com/dispatch", voiceSecret: VOICE_SECRET },
  );
  assert.throws(
    () => voiceConfigFromEnv({ VOICE_DISPATCH_URL: "https://voice.example.com/dispatch" }),
    /VOICE_DISPATCH_SECRET is required when VOICE_DISPATCH_URL is set/,
  );
  assert.throws(
    () =>
      voiceConfigFromEnv({
        VOICE_DISPATCH_URL: "https://voice.example.com/dispatch",
        VOICE_DISPATCH_SECRET: "short-secret",
      }),
    (err: Error) =>
      /VOICE_DISPATCH_SECRET must be at least 16 characters/.test(err.message) &&
      !err.message.includes("short-secret"),
  );
  assert.throws(
    () =>
      voiceConfigFromEnv({ VOICE_DISPATCH_URL: "ftp://x", VOICE_DISPATCH_SECRET: VOICE_SECRET }),
    /VOICE_DISPATCH_URL must be an http\(s\) URL/,
  );
});

stackTest(
  "a due call is POSTed with the secret, the call, the user and a brief; 2xx dispatches it",
  async () => {
    const user = await createUser(sql(), { timezone: "Europe/Chisinau" });
    await sql()`
    insert into public.commitments (user_id, description, status)
    values (${user.id}, 'Book the dentist', 'open')`;
    await sql()`
    insert into public.user_sessions (user_id, context_summary)
    values (${user.id}, 'Training for a 10k in spring.')`;
    const id = await dueCall(user.id, { instructions: "Ask how the long run went." });
    const server = recordingServer(() => new Response("accepted", { status: 202 }));
    try {
      const summary = await dispatch(server);
      assert.ok(summary.dispatched >= 1);
      const [req] = requestsFor(server, id);
      assert.equal(req.method, "POST");
      assert.equal(new URL(req.url).pathname, "/calls");
      assert.equal(req.headers.get("authorization"), `Bearer ${VOICE_SECRET}`);
      assert.equal(req.headers.get("content-type"), "application/json");
      const body = JSON.parse(req.body);
      assert.equal(body.call.id, id);
      assert.equal(body.call.call_type, "checkin");
      assert.equal(body.call.custom_instructions, "Ask how the long run went.");
      assert.equal(body.call.attempt, 1);
      assert.deepEqual(body.user, {
        id: user.id,
        phone_number: user.phone_number,
        timezone: "Europe/Chisinau",
      });
      assert.deepEqual(
        body.brief.open_commitments.map((c: { description: string }) => c.description),
        [
          "Book the dentist",
        ],
      );
      assert.equal(body.brief.session_summary, "Training for a 10k in spring.");
      assert.deepEqual(body.brief.insights, {});
      assert.deepEqual(body.brief.recent_interactions, []);

      const row = await callRow(id);
      assert.equal(row.status, "dispatched");
      assert.ok(row.dispatched_at);
      assert.equal(row.attempts, 1);
      assert.equal(requestsFor(server, id).length, 1);
    } finally {
      await server.close();
    }
  },
);

stackTest("the voice system's interaction carrying the call id completes the call", async () => {
  const user = await createUser(sql());
  const id = await dueCall(user.id);
  const server = recordingServer(() => new Response(null, { status: 204 }));
  try {
    await dispatch(server);
  } finally {
    await server.close();
  }
  assert.equal((await callRow(id)).status, "dispatched");
  // 'skipped' keeps this interaction out of analysis, which is not under test here.
  await sql()`
    insert into public.interactions (user_id, call_type, channel, transcript, scheduled_call_id,
                                     analysis_status)
    values (${user.id}, 'checkin', 'voice', 'Yes, the run went well.', ${id}, 'skipped')`;
  const row = await callRow(id);
  assert.equal(row.status, "completed");
  assert.ok(row.completed_at);
});

stackTest("a 500 is retried with backoff, then failed after 5 attempts", async () => {
  const user = await createUser(sql());
  const id = await dueCall(user.id);
  const server = recordingServer(() => new Response("voice system down", { status: 500 }));
  try {
    const started = Date.now();
    await dispatch(server, { now: () => started });
    let row = await callRow(id);
    assert.equal(row.status, "pending");
    assert.equal(row.attempts, 1);
    // random 0.5 of the first retry's 60 s ceiling.
    assert.equal(row.next_attempt_at.getTime(), started + 30_000);
    assert.equal(row.last_error, "voice system answered 500: voice system down");

    for (let attempt = 2; attempt <= 5; attempt++) {
      // The backoff is not waited out: the call is made due again.
      await sql()`update public.scheduled_calls set next_attempt_at = now() where id = ${id}`;
      await dispatch(server);
      row = await callRow(id);
      assert.equal(row.attempts, attempt);
      assert.equal(row.status, attempt < 5 ? "pending" : "failed");
    }
    assert.equal(
      row.last_error,
      "gave up after 5 attempts: voice system answered 500: voice system down",
    );
    assert.equal(requestsFor(server, id).length, 5);
    await sql()`update public.scheduled_calls set next_attempt_at = now() where id = ${id}`;
    await dispatch(server);
    assert.equal(requestsFor(server, id).length, 5, "a failed call is never handed over again");
  } finally {
    await server.close();
  }
});

stackTest("a 4xx fails at once; 408, 429 and no answer in time are retried", async () => {
  const user = await createUser(sql());
  const answers = new Map<string, number>();
  for (const status of [400, 404, 408, 429]) answers.set(await dueCall(user.id), status);
  const release = Promise.withResolvers<void>();
  const server = recordingServer(async (req) => {
    const status = answers.get(req.headers.get("idempotency-key") ?? "");
    if (status === undefined) await release.promise;
    return new Response("no", { status: status ?? 200 });
  });
  try {
    await dispatch(server);
    for (const [id, status] of answers) {
      const row = await callRow(id);
      assert.deepEqual(
        [row.status, row.attempts, row.last_error],
        [
          status === 400 || status === 404 ? "failed" : "pending",
          1,
          `voice system answered ${status}: no`,
        ],
        String(status),
      );
    }
    // A call the voice system never answers (the server holds it until the end).
    const hang = await dueCall(user.id);
    await dispatch(server, { timeoutMs: 200 });
    const row = await callRow(hang);
    assert.deepEqual(
      [row.status, row.attempts, row.last_error],
      ["pending", 1, "voice system unreachable: no response within 200 ms"],
    );
  } finally {
    release.resolve();
    await server.close();
  }
});

/** The Friday before a DST change and the Monday after, as local dates (YYYY-MM-DD). */
function weekendAround(sunday: Date) {
  const day = (offset: number) =>
    new Date(sunday.getTime() + offset * 86_400_000).toISOString().slice(0, 10);
  return { friday: day(-2), monday: day(1) };
}

/** The nth (1-based; -1 = last) Sunday of a month, as a UTC midnight. */
function sundayOf(year: number, month: number, nth: number): Date {
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const sundays = Array.from({ length: days }, (_, i) => new Date(Date.UTC(year, month - 1, i + 1)))
    .filter((d) => d.getUTCDay() === 0);
  return nth > 0 ? sundays[nth - 1] : sundays[sundays.length + nth];
}

const WEEKDAYS_0830 = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8;BYMINUTE=30";
const nextYear = new Date().getUTCFullYear() + 1;

for (
  const { tz, sunday, hours, change } of [
    // Clocks go forward on the last Sunday of March: Monday 08:30 is 71 h after Friday 08:30.
    { tz: "Europe/Chisinau", sunday: sundayOf(nextYear, 3, -1), hours: 71, change: "spring" },
    // And back on the first Sunday of November: 73 h.
    { tz: "America/New_York", sunday: sundayOf(nextYear, 11, 1), hours: 73, change: "autumn" },
  ]
) {
  stackTest(
    `a weekday 08:30 RRULE in ${tz} goes on at 08:30 local across the ${change} DST change`,
    async () => {
      const user = await createUser(sql(), { timezone: tz });
      const id = await dueCall(user.id, { rrule: WEEKDAYS_0830 });
      const { friday, monday } = weekendAround(sunday);
      // Scheduled directly, past schedule_call's 90-day window, just before the change.
      await sql()`
      update public.scheduled_calls
         set scheduled_for = (${friday}::date + time '08:30') at time zone ${tz}, next_attempt_at = now()
       where id = ${id}`;
      const server = recordingServer();
      try {
        await dispatch(server);
      } finally {
        await server.close();
      }
      assert.equal(JSON.parse(requestsFor(server, id)[0].body).call.rrule, WEEKDAYS_0830);
      assert.equal((await callRow(id)).status, "dispatched");
      const next = await sql()<{ local: string; hours: number; status: string; rrule: string }[]>`
      select (n.scheduled_for at time zone ${tz})::text as local,
             extract(epoch from n.scheduled_for - c.scheduled_for)::int / 3600 as hours,
             n.status, n.rrule
        from public.scheduled_calls n
        join public.scheduled_calls c on c.id = n.recurrence_of
       where n.recurrence_of = ${id}`;
      assert.deepEqual([...next], [{
        local: `${monday} 08:30:00`,
        hours,
        status: "pending",
        rrule: WEEKDAYS_0830,
      }]);
    },
  );
}

// --- RRULE validation and guardrails (issue 8) ---

stackTest("SQL's rrule_problem decides every case of tests/corpus/rrules.json", async () => {
  const cases = await loadRRuleCorpus();
  const rows = await sql()<{ rule: string; problem: string | null }[]>`
    select c.rule, public.rrule_problem(c.rule) as problem
      from jsonb_to_recordset(${JSON.stringify(cases)}::text::jsonb) as c(rule text)`;
  const wrong = cases.flatMap((c, i) => {
    const m = mismatch(c, rows[i].problem);
    return m === null ? [] : [`${JSON.stringify(c.rule)}: ${m}`];
  });
  assert.equal(rows.length, cases.length);
  assert.deepEqual(wrong, []);
});

stackTest("the limits in SQL are the ones the TypeScript validator uses", async () => {
  const [limits] = await sql()<{ daily_cap: number; min_gap_minutes: number }[]>`
    select * from public.call_limits()`;
  assert.deepEqual(
    { dailyCap: limits.daily_cap, minGapMinutes: limits.min_gap_minutes },
    CALL_LIMITS,
  );
});

async function scheduleError(userId: string, rrule: string) {
  try {
    await sql()`select public.schedule_call(${userId}, 'checkin', now() + interval '1 hour',
                  null, ${rrule}::text)`;
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  }
  return null;
}

// Regression (issue 8): on 8976604 both rules were accepted (288 and 12 calls a day).
stackTest(
  "schedule_call refuses a rule that recurs every 5 minutes, naming the limit",
  async () => {
    const user = await createUser(sql());
    const hours = Array.from({ length: 24 }, (_, h) => h).join(",");
    const minutes = Array.from({ length: 12 }, (_, i) => i * 5).join(",");
    assert.deepEqual(
      await scheduleError(user.id, `FREQ=DAILY;BYHOUR=${hours};BYMINUTE=${minutes}`),
      {
        code: "22023",
        message:
          "p_rrule is not accepted: the RRULE recurs as often as every 5 minutes; the minimum gap between calls is 60 minutes",
      },
    );
    assert.deepEqual(
      await scheduleError(user.id, "FREQ=DAILY;BYHOUR=0,2,4,6,8,10,12,14,16,18,20,22"),
      {
        code: "22023",
        message:
          "p_rrule is not accepted: the RRULE gives up to 12 calls in a local day; the daily call cap is 10",
      },
    );
    const [{ n }] = await sql()<{ n: number }[]>`
    select count(*)::int as n from public.scheduled_calls where user_id = ${user.id}`;
    assert.equal(n, 0, "nothing was scheduled");
  },
);

type Occurrence = { id: string; local: string; status: string; cancel_scope: string | null };
async function seriesOf(first: string, tz: string): Promise<Occurrence[]> {
  return [
    ...(await sql()<Occurrence[]>`
    select id, to_char(scheduled_for at time zone ${tz}, 'YYYY-MM-DD HH24:MI') as local, status,
           cancel_scope
      from public.scheduled_calls
     where id = ${first} or recurrence_of = ${first}
     order by scheduled_for`),
  ];
}

async function skip(id: string, reason: string): Promise<string | null> {
  const [{ next }] = await sql()<{ next: string | null }[]>`
    select public.skip_scheduled_call(${id}, ${reason}) as next`;
  return next;
}

stackTest(
  "skipping an occurrence keeps the series; cancelling any occurrence ends it",
  async () => {
    const tz = "America/New_York";
    const user = await createUser(sql(), { timezone: tz });
    const [{ id: first }] = await sql()<{ id: string }[]>`
    select public.schedule_call(${user.id}, 'checkin',
      public.local_to_instant((now() at time zone ${tz})::date + 2 + time '09:00', ${tz}),
      'Ask about the week', 'FREQ=DAILY;BYHOUR=9;BYMINUTE=0') as id`;
    const server = recordingServer();
    try {
      // Nothing is due; the run only computes the occurrence after the new one.
      await dispatch(server);
    } finally {
      await server.close();
    }
    const [start] = await seriesOf(first, tz);
    const day = (offset: number) => {
      const d = new Date(`${start.local.slice(0, 10)}T00:00:00Z`);
      return new Date(d.getTime() + offset * 86_400_000).toISOString().slice(0, 10);
    };

    const second = await skip(first, "the user is travelling");
    assert.ok(second);
    assert.equal(await skip(first, "again"), second, "skipping again answers the same");
    assert.deepEqual(
      (await seriesOf(first, tz)).map((
        { local, status, cancel_scope },
      ) => [local, status, cancel_scope]),
      [
        [`${day(0)} 09:00`, "cancelled", "occurrence"],
        [`${day(1)} 09:00`, "pending", null],
      ],
    );

    // Cancelled through the first call's id, which is no longer the pending one.
    const [{ cancelled }] = await sql()<{ cancelled: boolean }[]>`
    select public.cancel_scheduled_call(${first}, 'no more calls') as cancelled`;
    assert.equal(cancelled, true);
    const rows = await seriesOf(first, tz);
    assert.deepEqual(rows.map((r) => [r.status, r.cancel_scope]), [
      ["cancelled", "occurrence"],
      ["cancelled", "series"],
    ]);
    await assert.rejects(
      sql()`select public.skip_scheduled_call(${second}, 'too late')`,
      (err: Error & { code?: string }) => err.code === "22023" && /not pending/.test(err.message),
    );
  },
);

stackTest(
  "a dispatched occurrence's next one over the daily cap ends the series, saying why",
  async () => {
    const tz = "Europe/Chisinau";
    const user = await createUser(sql(), { timezone: tz });
    const id = await dueCall(user.id, { rrule: "FREQ=DAILY" });
    // Ten one-off calls on the local day of the next occurrence, a day after this one.
    await sql()`
    select public.schedule_call(${user.id}, 'checkin', public.local_to_instant(
        ((c.scheduled_for at time zone ${tz})::date + 1) + time '00:05' + make_interval(mins => i * 61),
        ${tz}))
      from public.scheduled_calls c, generate_series(0, 9) i
     where c.id = ${id}`;
    const server = recordingServer();
    try {
      await dispatch(server);
    } finally {
      await server.close();
    }
    const [{ status, next }] = await sql()<{ status: string; next: number }[]>`
    select status,
           (select count(*)::int from public.scheduled_calls where recurrence_of = ${id}) as next
      from public.scheduled_calls where id = ${id}`;
    assert.equal(status, "dispatched");
    assert.equal(next, 0, "no next occurrence, which would be the 11th call of its day");
    const [row] = await sql()<{ series_end_reason: string }[]>`
    select series_end_reason from public.scheduled_calls where id = ${id}`;
    assert.match(
      row.series_end_reason,
      /^the next occurrence, at .*, is over the daily cap: the user already has 10 calls on \d{4}-\d{2}-\d{2}, the most allowed in one local day$/,
    );
  },
);

// Regression (issue 8): on 8976604 a cancel naming an occurrence that had just been dispatched
// returned false and the series went on.
stackTest("a cancel racing the record of a dispatch still ends the series", async () => {
  const user = await createUser(sql(), { timezone: "Europe/Chisinau" });
  const id = await dueCall(user.id, { rrule: "FREQ=DAILY" });
  const [{ claim }] = await sql()<{ claim: { claim_token: string } }[]>`
    select public.claim_due_calls(10, 60) as claim`;
  const recorder = await sql().reserve();
  try {
    await recorder`begin`;
    await recorder`select public.complete_call_dispatch(${claim.claim_token}, ${
      JSON.stringify([{
        id,
        outcome: "dispatched",
        next_occurrence: new Date(Date.now() + 25 * 3_600_000).toISOString(),
      }])
    }::text::jsonb)`;
    // The cancel (sent now, not when awaited) waits for the recording transaction's locks.
    const cancelling = sql()<{ cancelled: boolean }[]>`
      select public.cancel_scheduled_call(${id}, 'stop calling') as cancelled`.execute();
    await waitFor("the cancel to wait for the dispatch being recorded", async () => {
      const [{ waiting }] = await sql()<{ waiting: boolean }[]>`
        select exists (select 1 from pg_stat_activity
                        where query like '%cancel_scheduled_call(%' and wait_event_type = 'Lock'
                          and pid <> pg_backend_pid()) as waiting`;
      return waiting;
    });
    await recorder`commit`;
    const [{ cancelled }] = await cancelling;
    assert.equal(cancelled, true, "the occurrence the dispatch added is the one cancelled");
  } finally {
    recorder.release();
  }
  const rows = await sql()<{ status: string; first: boolean }[]>`
    select status, id = ${id} as first from public.scheduled_calls
     where id = ${id} or recurrence_of = ${id} order by scheduled_for`;
  assert.deepEqual([...rows], [
    { status: "dispatched", first: true },
    { status: "cancelled", first: false },
  ]);
});
