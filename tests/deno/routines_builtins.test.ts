// The built-in routines end to end with the scripted model, and routines
// managed through the agent tools. Time is moved by setting series_start or
// due_at in the past, never by waiting.
import assert from "node:assert/strict";
import { createUser, db, waitFor } from "./helpers.ts";
import {
  catcher,
  deliveryUser,
  processQueue,
  processUntilSettled,
  scripted,
  statusOf,
} from "./delivery_helpers.ts";
import { agentKey, postAgents } from "./agents_helpers.ts";
import { messagesOf, routineTest, runRoutinesTick, runsOf } from "./routines_helpers.ts";

async function enable(userId: string, template: string, params: Record<string, unknown> = {}) {
  const [{ id }] = await db()<{ id: string }[]>`
    select public.enable_builtin_routine(${userId}, ${template},
      ${JSON.stringify(params)}::text::jsonb)::text as id`;
  return id;
}

/** As if the routine had been enabled `days` ago and its last occurrence is due. */
async function enabledDaysAgo(routineId: string, days: number) {
  await db()`update public.routines
                set series_start = now() - make_interval(days => ${days}), next_run_known = false
              where id = ${routineId}`;
}

routineTest(
  "morning_plan: the plan Claude writes from the commitments goes out at 07:00 local on a weekday, low priority, after quiet hours and budget allow",
  async () => {
    // Quiet all day and no budget: the plan waits.
    const user = await deliveryUser(db(), {
      timezone: "America/New_York",
      quiet_hours_start: "00:01",
      quiet_hours_end: "00:00",
      daily_message_limit: 0,
    });
    await db()`insert into public.commitments (user_id, description, due_at)
             values (${user.id}, 'Renew the passport', now() + interval '1 day')`;
    // The model's request carries the user's context, and so their id.
    await scripted.script([{
      kind: "text",
      text: "Today: renew the passport before noon. No calls booked.",
      match: user.id,
    }]);
    const id = await enable(user.id, "morning_plan", { time: "07:00" });
    await enabledDaysAgo(id, 8);
    await runRoutinesTick();

    const [run] = await runsOf(id);
    assert.equal(run.status, "succeeded", JSON.stringify(run));
    assert.match(run.local_time, /^(Mon|Tue|Wed|Thu|Fri) 07:00$/);
    const request = (await scripted.requests()).find((r) =>
      JSON.stringify(r.body).includes(user.id)
    );
    assert.match(JSON.stringify(request!.body), /Renew the passport/);
    assert.match(JSON.stringify(request!.body), /plan for today/);
    const [message] = await messagesOf(user.id);
    assert.equal(message.final_message, "Today: renew the passport before noon. No calls booked.");
    assert.equal(message.priority, "low");
    assert.equal(message.can_delay, true);

    await processQueue();
    const waiting = await statusOf(message.id);
    assert.equal(waiting.status, "queued");
    assert.match(waiting.status_reason!, /^deferred: /);
    await db()`update public.users set quiet_hours_start = '00:00', quiet_hours_end = '00:00',
               daily_message_limit = 10 where id = ${user.id}`;
    // The deferral's time, come.
    await db()`update public.message_queue set next_attempt_at = now() where id = ${message.id}`;
    assert.equal((await processUntilSettled(message.id)).status, "sent");
    assert.deepEqual((await catcher.messages(user.phone_number)).map((m) => m.body), [
      "Today: renew the passport before noon. No calls booked.",
    ]);
    const [next] = await db()<{ local: string }[]>`
    select to_char(next_run_at at time zone 'America/New_York', 'Dy HH24:MI') as local
      from public.routines where id = ${id} and next_run_at > now()`;
    assert.match(next.local, /^(Mon|Tue|Wed|Thu|Fri) 07:00$/);
  },
);

routineTest(
  "weekly_review: Sunday 18:00 local, the patterns remembered with the routine as their source, and a summary queued",
  async () => {
    const user = await deliveryUser(db(), { timezone: "Europe/Chisinau" });
    await scripted.script([{
      kind: "text",
      text: JSON.stringify({
        summary: "A steady week: three evening walks. Try one on Saturday morning too?",
        patterns: [{
          key: "evening_walks",
          value: "Walks most evenings after work",
          category: "routine",
        }],
      }),
      match: user.id,
    }]);
    const id = await enable(user.id, "weekly_review");
    await enabledDaysAgo(id, 8);
    await runRoutinesTick();
    const [run] = await runsOf(id);
    assert.equal(run.status, "succeeded", JSON.stringify(run));
    assert.equal(run.local_time, "Sun 18:00");
    assert.deepEqual(run.steps.remember.output.added, ["evening_walks"]);
    const [{ insights }] = await db()<{ insights: string }[]>`
    select insights::text from public.users where id = ${user.id}`;
    assert.match(insights, /evening_walks/);
    assert.match(insights, new RegExp(`agent:routine:${id}`));
    assert.deepEqual((await messagesOf(user.id)).map((m) => [m.final_message, m.priority]), [
      ["A steady week: three evening walks. Try one on Saturday morning too?", "low"],
    ]);
  },
);

routineTest(
  "commitment_follow_up: a commitment past its due time gets exactly one check-in, and none once it is done",
  async () => {
    const user = await deliveryUser(db());
    const id = await enable(user.id, "commitment_follow_up");
    await db()`insert into public.commitments (user_id, description, due_at) values
               (${user.id}, 'Call the plumber', now() + interval '1 minute'),
               (${user.id}, 'Pay the rent', now() + interval '1 minute')`;
    await runRoutinesTick();
    assert.equal((await runsOf(id)).length, 0, "nothing before the due time and its 30 minutes");
    // The rent is paid first; then the due time and the 30 minutes pass.
    await db()`update public.commitments set status = 'done'
              where user_id = ${user.id} and description = 'Pay the rent'`;
    await db()`update public.commitments set due_at = now() - interval '31 minutes'
              where user_id = ${user.id}`;
    await Promise.all([runRoutinesTick(), runRoutinesTick()]);
    await runRoutinesTick();
    const runs = await runsOf(id);
    assert.deepEqual(runs.map((r) => r.status), ["succeeded"]);
    assert.deepEqual((await messagesOf(user.id)).map((m) => m.final_message), [
      'Checking in on "Call the plumber": how did it go?',
    ]);
  },
);

routineTest(
  "commitment_follow_up with channel call schedules a follow-up call instead",
  async () => {
    const user = await deliveryUser(db());
    const id = await enable(user.id, "commitment_follow_up", { channel: "call", delay_minutes: 0 });
    await db()`insert into public.commitments (user_id, description, due_at)
             values (${user.id}, 'Book the MOT', now() - interval '1 minute')`;
    await runRoutinesTick();
    const [run] = await runsOf(id);
    assert.equal(run.status, "succeeded", JSON.stringify(run));
    assert.equal(run.steps.check_in.status, "skipped");
    const calls = await db()<{ call_type: string; custom_instructions: string; soon: boolean }[]>`
    select call_type, custom_instructions,
           scheduled_for between now() + interval '1 minute' and now() + interval '10 minutes' as soon
      from public.scheduled_calls where user_id = ${user.id}`;
    assert.deepEqual([...calls], [{
      call_type: "follow_up",
      custom_instructions: "Follow up on what the user committed to: Book the MOT",
      soon: true,
    }]);
    assert.equal((await messagesOf(user.id)).length, 0);
  },
);

routineTest(
  "agent tools: create, pause, snooze, run now and end a routine, scoped by the key",
  async () => {
    const user = await createUser(db());
    const other = await createUser(db());
    const { key } = await agentKey({ userIds: [user.id] });
    const steps = [{ id: "send", uses: "sms.queue", with: { text: "Hi from a routine" } }];
    const call = (tool: string, input: Record<string, unknown>) => postAgents(key, { tool, input });

    const bad = await call("create_routine", {
      user_id: user.id,
      name: "bad",
      rrule: "FREQ=DAILY",
      steps: [{ id: "send", uses: "sms.queue", with: { text: "${steps.later.text}" } }],
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, "steps");
    assert.match(
      bad.body.error.message,
      /^p_steps: step send \(#1\) with: \$\{steps\.later\.text\}/,
    );
    const badRule = await call("create_routine", {
      user_id: user.id,
      name: "bad",
      rrule: "FREQ=MINUTELY",
      steps,
    });
    assert.equal(badRule.status, 400);
    assert.equal(badRule.body.error.field, "rrule");
    const [{ n }] =
      await db()`select count(*)::int as n from public.routines where user_id = ${user.id}`;
    assert.equal(n, 0, "nothing written");

    const made = await call("create_routine", {
      user_id: user.id,
      name: "greeting",
      rrule: "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
      steps,
      idempotency_key: "greeting-1",
    });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    const routineId = made.body.data.routine_id;
    assert.equal(made.body.data.status, "active");
    const again = await call("create_routine", {
      user_id: user.id,
      name: "greeting",
      rrule: "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
      steps,
      idempotency_key: "greeting-1",
    });
    assert.equal(again.body.data.routine_id, routineId);
    assert.equal(again.body.data.replayed, true);

    assert.equal(
      (await call("pause_routine", { routine_id: routineId })).body.data.status,
      "paused",
    );
    assert.equal(
      (await call("resume_routine", { routine_id: routineId })).body.data.status,
      "active",
    );
    const past = await call("snooze_routine", {
      routine_id: routineId,
      until: new Date(Date.now() - 60_000).toISOString(),
    });
    assert.equal(past.status, 400);
    assert.equal(past.body.error.field, "until");
    const snoozed = await call("snooze_routine", {
      routine_id: routineId,
      until: new Date(Date.now() + 86_400_000).toISOString(),
    });
    assert.notEqual(snoozed.body.data.snoozed_until, null);
    const now = await call("run_routine_now", { routine_id: routineId });
    assert.equal(now.status, 200);
    await runRoutinesTick();
    const [run] = await runsOf(routineId);
    assert.equal(run.id, now.body.data.run_id);
    assert.equal(run.status, "succeeded");
    assert.equal((await call("end_routine", { routine_id: routineId })).body.data.status, "ended");
    const ended = await call("pause_routine", { routine_id: routineId });
    assert.equal(ended.status, 400);
    assert.equal(ended.body.error.field, "routine_id");

    const builtin = await call("enable_builtin_routine", {
      user_id: user.id,
      template: "morning_plan",
      params: { time: "7:00" },
    });
    assert.equal(builtin.status, 400);
    assert.equal(builtin.body.error.field, "params");
    const plan = await call("enable_builtin_routine", {
      user_id: user.id,
      template: "morning_plan",
      params: { time: "07:00" },
    });
    assert.equal(plan.status, 200);
    assert.equal(plan.body.data.params.time, "07:00");

    // Another user's routine is out of this key's scope.
    const [{ theirs }] = await db()`
    select public.enable_builtin_routine(${other.id}, 'weekly_review')::text as theirs`;
    const forbidden = await call("pause_routine", { routine_id: theirs });
    assert.equal(forbidden.status, 403);
    const [{ status }] = await db()`select status from public.routines where id = ${theirs}`;
    assert.equal(status, "active");
    const unknown = await call("end_routine", { routine_id: crypto.randomUUID() });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.field, "routine_id");
  },
);

routineTest(
  '"send me a plan every morning at 7": the analysis installs morning_plan at 07:00, once a run',
  async () => {
    const user = await createUser(db(), { timezone: "Europe/Chisinau" });
    const mark = `tx-${crypto.randomUUID()}`;
    const plan = (time: string) => ({
      name: "set_routine",
      input: { template: "morning_plan", time },
    });
    await scripted.script([
      { kind: "tool_use", match: mark, calls: [plan("07:00"), plan("09:00")] },
      {
        kind: "tool_use",
        match: mark,
        calls: [{
          name: "record_analysis",
          input: { sentiment: "positive", session_summary: mark },
        }],
      },
    ]);
    // The insert's trigger sends it to analyze-interaction.
    const [{ id }] = await db()<{ id: string }[]>`
    insert into public.interactions (user_id, channel, transcript)
    values (${user.id}, 'voice', ${`Could you send me a plan every morning at 7? ${mark}`})
    returning id::text`;
    await waitFor("the analysis", async () => {
      const [row] = await db()`select analysis_status from public.interactions where id = ${id}`;
      return row.analysis_status === "done";
    });
    const routines = await db()<{ template: string; rrule: string; created_by: string }[]>`
    select template, rrule, created_by from public.routines where user_id = ${user.id}`;
    assert.deepEqual([...routines], [{
      template: "morning_plan",
      rrule: "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=7;BYMINUTE=0",
      created_by: "builtin",
    }], "the first call installed it; the second was over the run's limit");
  },
);
