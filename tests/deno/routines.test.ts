// Routines on the real stack: run-routines executing pipelines at their RRULE
// times in the user's zone (across a DST change), delivered by process-queue;
// overlapping ticks; a run killed between steps; retries then failure; paused
// and snoozed routines; http.post's allowlist. Time is moved by setting
// next_run_at or series_start in the past, never by waiting.
import assert from "node:assert/strict";
import { db, killFunction, recordingServer, waitFor, waitFunctionBack } from "./helpers.ts";
import { catcher, deliveryUser, processUntilSettled, scripted } from "./delivery_helpers.ts";
import {
  createRoutine,
  makeDue,
  messagesOf,
  routineTest,
  runRoutinesTick,
  runsOf,
} from "./routines_helpers.ts";
import { runRoutines } from "../../shared/routines/runner.ts";
import { signature } from "../../shared/routines/http.ts";

const marker = () => `marker-${crypto.randomUUID().slice(0, 8)}`;

function briefingSteps(mark: string) {
  return [
    { id: "ctx", uses: "context.read" },
    {
      id: "plan",
      uses: "claude.generate",
      with: {
        instruction: `${mark} Write the briefing for \${user.local_date}.`,
        context: "${steps.ctx.open_commitments}",
        max_chars: 160,
      },
    },
    {
      id: "send",
      uses: "sms.queue",
      when: "length(steps.plan.text) > `0` && steps.ctx.sms_opted_out == `false`",
      with: { text: "${steps.plan.text}", priority: "low" },
    },
  ];
}

routineTest(
  "a context → Claude → SMS routine runs at 08:30 local on both sides of the DST change, is delivered, and ends with its RRULE",
  async () => {
    const user = await deliveryUser(db(), { timezone: "Europe/Chisinau" });
    const mark = marker();
    await db()`insert into public.commitments (user_id, description, due_at)
             values (${user.id}, 'Send the invoice to Ana', now() + interval '2 days')`;
    await scripted.script(["Plan one", "Plan two", "Plan three"].map((text) => ({
      kind: "text",
      text,
      match: mark,
    })));
    const id = await createRoutine(user.id, {
      steps: briefingSteps(mark),
      rrule: "FREQ=DAILY;BYHOUR=8;BYMINUTE=30;UNTIL=20261027T000000Z",
      missed: "each",
    });
    // As if created on 23 October 2026 at 08:30 EEST: the clocks go back on the 25th.
    await db()`update public.routines set series_start = '2026-10-23T05:30:00Z' where id = ${id}`;

    const summary = await runRoutinesTick();
    assert.equal(summary.succeeded >= 3, true, JSON.stringify(summary));
    const runs = await runsOf(id);
    assert.deepEqual(runs.map((r) => [r.occurrence, r.local_time, r.status]), [
      ["2026-10-24T05:30:00Z", "Sat 08:30", "succeeded"],
      ["2026-10-25T06:30:00Z", "Sun 08:30", "succeeded"],
      ["2026-10-26T06:30:00Z", "Mon 08:30", "succeeded"],
    ]);
    // Every step recorded with its input, output, duration; the model's tokens and cost.
    const first = runs[0].steps;
    assert.deepEqual(Object.keys(first).sort(), ["ctx", "plan", "send"]);
    assert.equal(first.plan.status, "succeeded");
    assert.equal(first.plan.output.text, "Plan one");
    assert.match(first.plan.input.instruction, /for 2026-10-24\.$/);
    assert.ok(
      first.plan.input_tokens > 0 && first.plan.output_tokens > 0,
      JSON.stringify(first.plan),
    );
    assert.equal(typeof first.plan.cost_usd, "number");
    assert.equal(typeof first.ctx.duration_ms, "number");
    assert.equal(first.send.input.text, "Plan one");
    // The model saw the open commitment through the context step.
    const requests = (await scripted.requests()).filter((r) =>
      JSON.stringify(r.body).includes(mark)
    );
    assert.equal(requests.length, 3);
    assert.match(JSON.stringify(requests[1].body), /Send the invoice to Ana/);
    assert.match(JSON.stringify(requests[1].body), /2026-10-25/);

    const messages = await messagesOf(user.id);
    assert.deepEqual(messages.map((m) => [m.final_message, m.priority]), [
      ["Plan one", "low"],
      ["Plan two", "low"],
      ["Plan three", "low"],
    ]);
    assert.deepEqual(
      messages.map((m) => m.idempotency_key),
      runs.map((r) => `routine:${r.id}:send`),
    );
    for (const m of messages) await processUntilSettled(m.id);
    assert.deepEqual(
      (await catcher.messages(user.phone_number)).map((m) => m.body).sort(),
      ["Plan one", "Plan three", "Plan two"],
    );
    const [routine] =
      await db()`select status, status_reason from public.routines where id = ${id}`;
    assert.deepEqual(routine, {
      status: "ended",
      status_reason: "the RRULE has no further occurrence",
    });
  },
);

routineTest(
  "missed occurrences run once, and the next occurrence is computed at the same local time",
  async () => {
    const user = await deliveryUser(db(), { timezone: "America/New_York" });
    const id = await createRoutine(user.id, {
      steps: [{
        id: "send",
        uses: "sms.queue",
        with: { text: "Good morning (${user.local_date})" },
      }],
      rrule: "FREQ=DAILY;BYHOUR=7;BYMINUTE=15",
    });
    // As if the project had been down for five days.
    await db()`update public.routines set series_start = now() - interval '5 days' where id = ${id}`;
    await runRoutinesTick();
    await runRoutinesTick();
    const runs = await runsOf(id);
    assert.equal(runs.length, 1, "one run for all the missed occurrences");
    assert.match(runs[0].local_time, / 07:15$/);
    assert.equal(runs[0].status, "succeeded");
    const [next] = await db()<{ future: boolean; local: string }[]>`
    select next_run_at > now() as future,
           to_char(next_run_at at time zone 'America/New_York', 'HH24:MI') as local
      from public.routines where id = ${id}`;
    assert.deepEqual(next, { future: true, local: "07:15" });
    assert.equal((await messagesOf(user.id)).length, 1);
  },
);

routineTest("two overlapping ticks run an occurrence once", async () => {
  const user = await deliveryUser(db());
  const mark = marker();
  await scripted.script(
    [{ kind: "delay", ms: 400, then: { kind: "text", text: "Once", match: mark } }]
      .map((s) => ({ ...s, match: mark })),
  );
  const id = await createRoutine(user.id, { steps: briefingSteps(mark), rrule: "FREQ=DAILY" });
  await makeDue(id);
  const [a, b] = await Promise.all([runRoutinesTick(), runRoutinesTick()]);
  const runs = await runsOf(id);
  assert.equal(runs.length, 1);
  assert.equal(runs[0].status, "succeeded");
  assert.equal(runs[0].claims, 1);
  assert.ok(a.claimed + b.claimed >= 1);
  assert.deepEqual((await messagesOf(user.id)).map((m) => m.final_message), ["Once"]);
});

routineTest(
  "a run killed between steps resumes after its last finished step and repeats no effect",
  async () => {
    const user = await deliveryUser(db());
    const mark = marker();
    // The first request hangs until the function is killed; the retry is answered.
    await scripted.script([
      { kind: "delay", ms: 30_000, then: { kind: "text", text: "never sent" }, match: mark },
      { kind: "text", text: "Second text", match: mark },
    ]);
    const id = await createRoutine(user.id, {
      steps: [
        { id: "first", uses: "sms.queue", with: { text: "First text" } },
        { id: "write", uses: "claude.generate", with: { instruction: `${mark} write` } },
        { id: "second", uses: "sms.queue", with: { text: "${steps.write.text}" } },
      ],
      rrule: "FREQ=DAILY",
    });
    await makeDue(id);
    const cut = runRoutinesTick().catch((err) => err);
    await waitFor("the first step recorded and the model called", async () => {
      const [run] = await runsOf(id);
      const asked = (await scripted.requests()).some((r) => JSON.stringify(r.body).includes(mark));
      return run?.steps.first?.status === "succeeded" && asked;
    });
    await killFunction("run-routines");
    assert.ok((await cut) instanceof Error, "the killed tick got no answer");
    await waitFunctionBack("run-routines");
    // Its lease lapses (as it would after 120 s); the next tick resumes it.
    await db()`update public.routine_runs set lease_until = now() - interval '1 second'
              where routine_id = ${id}`;
    await runRoutinesTick();
    const [run] = await runsOf(id);
    assert.equal(run.status, "succeeded");
    assert.equal(run.claims, 2);
    assert.deepEqual((await messagesOf(user.id)).map((m) => m.final_message), [
      "First text",
      "Second text",
    ]);
  },
);

routineTest(
  "a failing step is retried with a growing backoff, then fails the run naming the step",
  async () => {
    const user = await deliveryUser(db());
    const id = await createRoutine(user.id, {
      // The parameter is empty, and an SMS must have text: the step fails every time.
      steps: [{ id: "send", uses: "sms.queue", with: { text: "${params.greeting}" } }],
      rrule: "FREQ=DAILY",
      params: { greeting: "" },
    });
    await makeDue(id);
    const waits: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      await runRoutinesTick();
      const [row] = await db()<{ status: string; attempt: number; wait: number }[]>`
      select status, attempt, extract(epoch from next_attempt_at - now())::float8 as wait
        from public.routine_runs where routine_id = ${id}`;
      assert.equal(row.attempt, attempt);
      if (attempt < 3) {
        assert.equal(row.status, "running");
        waits.push(row.wait);
        // The backoff's time, come: the next tick retries.
        await db()`update public.routine_runs set next_attempt_at = now() where routine_id = ${id}`;
      }
    }
    assert.ok(waits[1] > waits[0], `the second backoff is longer: ${waits}`);
    const [run] = await runsOf(id);
    assert.equal(run.status, "failed");
    assert.equal(run.failed_step, "send");
    assert.equal(run.reason, "step send failed 3 times");
    assert.match(run.error!, /with\.text/);
    assert.equal(run.steps.send.status, "error");
    assert.equal((await messagesOf(user.id)).length, 0);
  },
);

routineTest("paused and snoozed routines skip their occurrences, saying why", async () => {
  const user = await deliveryUser(db());
  const steps = [{ id: "send", uses: "sms.queue", with: { text: "Should not go" } }];
  const paused = await createRoutine(user.id, { steps, rrule: "FREQ=DAILY" });
  const snoozed = await createRoutine(user.id, { steps, rrule: "FREQ=DAILY" });
  await db()`select public.pause_routine(${paused})`;
  await db()`select public.snooze_routine(${snoozed}, now() + interval '2 days')`;
  await makeDue(paused);
  await makeDue(snoozed);
  await runRoutinesTick();
  const [p] = await runsOf(paused);
  const [s] = await runsOf(snoozed);
  assert.deepEqual([p.status, p.reason], ["skipped", "the routine is paused"]);
  assert.equal(s.status, "skipped");
  assert.match(s.reason!, /^the routine is snoozed until \d{4}-/);
  assert.equal((await messagesOf(user.id)).length, 0);
  // Both plan their next occurrence and carry on.
  const rows = await db()<{ known: boolean }[]>`
    select next_run_known as known from public.routines where id in (${paused}, ${snoozed})`;
  assert.deepEqual(rows.map((r) => r.known), [true, true]);
});

routineTest(
  "http.post: refused outside the allowlist at creation and at run time; signed inside it",
  async () => {
    const user = await deliveryUser(db());
    const server = recordingServer(() => Response.json({ ok: true }));
    try {
      const post = (url: string) => [{
        id: "hook",
        uses: "http.post",
        with: { url, body: { user: "${user.id}", at: "${occurrence}" } },
      }];
      // The stack's ROUTINE_HTTP_ALLOWLIST is empty: nothing may be posted to.
      await runRoutinesTick();
      await assert.rejects(
        createRoutine(user.id, { steps: post(`${server.url}/hook`), rrule: "FREQ=DAILY" }),
        (err: Error & { code?: string }) =>
          err.code === "22023" &&
          err.message ===
            `p_steps: step hook (#1) with.url: ${server.url} is not in ROUTINE_HTTP_ALLOWLIST`,
      );
      // A runner whose allowlist has the server (the stack's function is paused meanwhile).
      const secret = "routine-test-secret-0123456789";
      const deps = {
        sql: db(),
        complete: null,
        model: "none",
        http: { allowlist: new Set([server.url]), secret },
        fetch,
        now: () => Date.now(),
        clock: () => performance.now(),
        log: () => {},
      };
      const options = { timeBudgetMs: 10_000, batchSize: 50, concurrency: 4, leaseSeconds: 60 };
      await runRoutines(deps, options);
      const allowed = await createRoutine(user.id, {
        steps: post(`${server.url}/hook`),
        rrule: "FREQ=DAILY",
      });
      const refusedLater = await createRoutine(user.id, {
        steps: post(`${server.url}/later`),
        rrule: "FREQ=DAILY",
      });
      await makeDue(allowed);
      await runRoutines(deps, options);
      const [ok] = await runsOf(allowed);
      assert.equal(ok.status, "succeeded");
      assert.deepEqual(ok.steps.hook.output, { status: 200, body: { ok: true } });
      const hit = server.received.find((r) => r.url.endsWith("/hook"))!;
      const sig = hit.headers.get("x-routine-signature")!;
      const t = Number(/^t=(\d+),/.exec(sig)![1]);
      assert.equal(sig, await signature(secret, t, hit.body));
      assert.equal(hit.headers.get("idempotency-key"), `routine:${ok.id}:hook`);
      assert.deepEqual(JSON.parse(hit.body).user, user.id);

      // The allowlist no longer has it when the stack's function runs the other one.
      await makeDue(refusedLater);
      await runRoutinesTick();
      const [refused] = await runsOf(refusedLater);
      assert.equal(refused.steps.hook.status, "error");
      assert.equal(
        refused.error,
        `http.post refused: ${server.url} is not in ROUTINE_HTTP_ALLOWLIST`,
      );
      assert.ok(!server.received.some((r) => r.url.endsWith("/later")));
    } finally {
      await server.close();
    }
  },
);

routineTest(
  "run_routine_now runs a routine at once, and a one-off routine ends after its run",
  async () => {
    const user = await deliveryUser(db());
    const steps = [{ id: "send", uses: "sms.queue", with: { text: "Now: ${occurrence}" } }];
    const once = await createRoutine(user.id, { steps, runAt: new Date(Date.now() + 60_000) });
    await db()`select public.pause_routine(${once})`;
    const [{ run }] = await db()`select public.run_routine_now(${once})::text as run`;
    await runRoutinesTick();
    const [manual] = await runsOf(once);
    assert.equal(manual.id, run);
    assert.equal(manual.status, "succeeded", "run now runs even a paused routine");
    await db()`select public.resume_routine(${once})`;
    await makeDue(once);
    await runRoutinesTick();
    const [routine] = await db()`select status from public.routines where id = ${once}`;
    assert.equal(routine.status, "ended");
    assert.equal((await messagesOf(user.id)).length, 2);
  },
);

routineTest("the step tools' JSON Schemas in the database are the zod schemas'", async () => {
  const { STEP_TOOL_NAMES, stepInputJsonSchema, stepOutputFields } = await import(
    "../../shared/routines/schemas.ts"
  );
  const rows = await db()<{ name: string; input_schema: unknown; output_fields: string[] }[]>`
    select name, input_schema, output_fields from public.routine_step_tools order by name`;
  assert.deepEqual(rows.map((r) => r.name), [...STEP_TOOL_NAMES].sort());
  for (const row of rows) {
    const name = row.name as (typeof STEP_TOOL_NAMES)[number];
    assert.deepEqual(row.input_schema, stepInputJsonSchema(name), name);
    assert.deepEqual(row.output_fields, stepOutputFields(name), name);
  }
});
