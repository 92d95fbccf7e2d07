// The agents function: every tool through POST /functions/v1/agents, on the
// product's own RPCs.
import assert from "node:assert/strict";
import { createUser, db, stackTest, waitFor } from "./helpers.ts";
import { planRecurrences } from "../../shared/calls/recurrence.ts";
import { agentKey, footprint, inAnHour, postAgents } from "./agents_helpers.ts";
import { TOOL_NAMES } from "../../shared/agents/schemas.ts";

stackTest("agents: the registry's tools are the ones keys can be scoped to", async () => {
  const [{ names }] = await db()<{ names: string[] }[]>`select public.agent_tool_names() as names`;
  assert.deepEqual([...names].sort(), [...TOOL_NAMES].sort());
});

stackTest("agents: queue_message queues through enqueue_message, as the agent", async () => {
  const user = await createUser(db());
  const { agentId, key } = await agentKey();
  const res = await postAgents(key, {
    tool: "queue_message",
    input: { user_id: user.id, text: "Your parcel arrives today", priority: "high" },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.data.status, "queued");
  assert.equal(res.body.data.replayed, false);
  const [row] = await db()`
    select agent_id, priority, final_message, status from public.message_queue
     where id = ${res.body.data.message_id}`;
  assert.deepEqual({ ...row }, {
    agent_id: `agent:${agentId}`,
    priority: "high",
    final_message: "Your parcel arrives today",
    status: "queued",
  });
});

stackTest("agents: a message to an opted-out user is cancelled at once", async () => {
  const user = await createUser(db());
  await db()`update public.users set sms_opted_out_at = now() where id = ${user.id}`;
  const { key } = await agentKey();
  const res = await postAgents(key, {
    tool: "queue_message",
    input: { user_id: user.id, data: { kind: "reminder", what: "dentist" } },
  });
  assert.equal(res.status, 200);
  assert.equal(res.body.data.status, "cancelled");
});

stackTest("agents: the same idempotency key replays; another input under it is a 409", async () => {
  const user = await createUser(db());
  const { key } = await agentKey();
  const input = { user_id: user.id, text: "Once only", idempotency_key: "order-42" };
  const first = await postAgents(key, { tool: "queue_message", input });
  const again = await postAgents(key, { tool: "queue_message", input });
  assert.equal(again.status, 200);
  assert.equal(again.body.data.message_id, first.body.data.message_id);
  assert.equal(again.body.data.replayed, true);
  const other = await postAgents(key, {
    tool: "queue_message",
    input: { ...input, text: "Something else" },
  });
  assert.equal(other.status, 409);
  assert.equal(other.body.error.code, "conflict");
  assert.equal(other.body.error.field, "idempotency_key");
  assert.equal((await footprint(user.id)).messages, 1);
});

stackTest("agents: concurrent retries with one idempotency key make one message", async () => {
  const user = await createUser(db());
  const { key } = await agentKey();
  const input = { user_id: user.id, text: "Exactly once", idempotency_key: "burst" };
  const replies = await Promise.all(
    Array.from({ length: 6 }, () => postAgents(key, { tool: "queue_message", input })),
  );
  assert.ok(replies.every((r) => r.status === 200), JSON.stringify(replies.map((r) => r.body)));
  assert.equal(new Set(replies.map((r) => r.body.data.message_id)).size, 1);
  assert.equal(
    replies.filter((r) => !r.body.data.replayed).length,
    1,
    "one made it, the rest replayed",
  );
  assert.equal((await footprint(user.id)).messages, 1);
});

stackTest("agents: two agents' idempotency keys never collide", async () => {
  const user = await createUser(db());
  const a = await agentKey();
  const b = await agentKey();
  const input = { user_id: user.id, text: "Hello", idempotency_key: "same" };
  const one = await postAgents(a.key, { tool: "queue_message", input });
  const two = await postAgents(b.key, { tool: "queue_message", input: { ...input, text: "Hi" } });
  assert.equal(two.status, 200);
  assert.notEqual(one.body.data.message_id, two.body.data.message_id);
});

stackTest("agents: get_message_status follows a message", async () => {
  const user = await createUser(db());
  const { key } = await agentKey();
  const queued = await postAgents(key, {
    tool: "queue_message",
    input: { user_id: user.id, text: "Status please" },
  });
  const res = await postAgents(key, {
    tool: "get_message_status",
    input: { message_id: queued.body.data.message_id },
  });
  assert.equal(res.status, 200);
  assert.equal(res.body.data.user_id, user.id);
  assert.equal(res.body.data.status, "queued");
  assert.equal(res.body.data.sent_at, null);
  assert.equal(res.body.data.twilio_status, null);
});

stackTest("agents: schedule_call, then cancel the series", async () => {
  const user = await createUser(db());
  const { key } = await agentKey();
  const scheduled = await postAgents(key, {
    tool: "schedule_call",
    input: {
      user_id: user.id,
      call_type: "check_in",
      scheduled_for: inAnHour(),
      rrule: "FREQ=DAILY;COUNT=3",
    },
  });
  assert.equal(scheduled.status, 200, JSON.stringify(scheduled.body));
  assert.equal(scheduled.body.data.status, "pending");
  const callId = scheduled.body.data.call_id;
  const cancelled = await postAgents(key, {
    tool: "cancel_scheduled_call",
    input: { call_id: callId, scope: "series", reason: "the user is travelling" },
  });
  assert.equal(cancelled.status, 200);
  assert.deepEqual(cancelled.body.data, {
    call_id: callId,
    scope: "series",
    cancelled: true,
    next_call_id: null,
  });
  const [row] = await db()`select status, cancel_reason from public.scheduled_calls
                            where id = ${callId}`;
  assert.deepEqual({ ...row }, { status: "cancelled", cancel_reason: "the user is travelling" });
});

stackTest("agents: cancel scope occurrence skips one call and keeps the series", async () => {
  const user = await createUser(db());
  const { key } = await agentKey();
  const scheduled = await postAgents(key, {
    tool: "schedule_call",
    input: {
      user_id: user.id,
      call_type: "check_in",
      scheduled_for: inAnHour(),
      rrule: "FREQ=DAILY;COUNT=3",
    },
  });
  const skip = () =>
    postAgents(key, {
      tool: "cancel_scheduled_call",
      input: { call_id: scheduled.body.data.call_id, scope: "occurrence", reason: "busy today" },
    });
  let res = await skip();
  if (res.status === 409) {
    // Until the per-minute run has computed the series' next occurrence, a skip is "not yet".
    assert.equal(res.body.error.code, "not_ready");
    assert.equal(res.headers.get("retry-after"), "60");
    // What the per-minute run does when the voice system is configured (it is not in tests).
    await waitFor("the next occurrence to be computed", async () => {
      await planRecurrences({ sql: db(), log: () => {} }, 100);
      const [row] = await db()`select next_occurrence_known from public.scheduled_calls
                                where id = ${scheduled.body.data.call_id}`;
      return row.next_occurrence_known;
    });
    res = await skip();
  }
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.data.cancelled, true);
  assert.ok(res.body.data.next_call_id, "the series goes on");
  const [next] = await db()`select status from public.scheduled_calls
                             where id = ${res.body.data.next_call_id}`;
  assert.equal(next.status, "pending");
});

stackTest("agents: get_user_context is the hand-off, within 8 KB", async () => {
  const user = await createUser(db(), { timezone: "Europe/Chisinau" });
  const { key } = await agentKey();
  await db()`update public.users set last_inbound_at = now(), daily_message_limit = 7
              where id = ${user.id}`;
  await db()`insert into public.user_sessions (user_id, context_summary)
             values (${user.id}, 'Training for a half marathon in March.')`;
  await db()`insert into public.commitments (user_id, description)
             values (${user.id}, 'Book the physio')`;
  // A long history: the context still fits.
  await db()`
    insert into public.interactions (user_id, channel, transcript, analysis_status)
    select ${user.id}, 'voice', repeat('We talked about training plans and knees. ', 200), 'skipped'
      from generate_series(1, 30)`;
  await postAgents(key, {
    tool: "queue_message",
    input: { user_id: user.id, text: "Stretch tonight" },
  });
  await postAgents(key, {
    tool: "remember",
    input: { user_id: user.id, items: [{ key: "goal", value: "half marathon in March" }] },
  });
  const res = await postAgents(key, { tool: "get_user_context", input: { user_id: user.id } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const ctx = res.body.data;
  assert.ok(new TextEncoder().encode(JSON.stringify(ctx)).length <= 8192);
  assert.equal(ctx.timezone, "Europe/Chisinau");
  assert.match(ctx.local_time, /^\w{3} \d{4}-\d{2}-\d{2} \d{2}:\d{2}$/);
  assert.equal(ctx.active_now, true);
  assert.deepEqual(ctx.budget, { daily_limit: 7, used_today: 0, left_today: 7, hourly_limit: 2 });
  assert.equal(ctx.session_summary, "Training for a half marathon in March.");
  assert.equal(ctx.open_commitments[0].description, "Book the physio");
  assert.equal(ctx.queued_messages[0].preview, "Stretch tonight");
  assert.equal(ctx.memory[0].key, "goal");
  assert.ok(ctx.last_interactions.length >= 1);
  assert.equal(ctx.preferred_hours, null);
});

stackTest(
  "agents: record_interaction stores a transcript that is analysed like any other",
  async () => {
    const user = await createUser(db());
    const { key } = await agentKey();
    const res = await postAgents(key, {
      tool: "record_interaction",
      input: { user_id: user.id, channel: "sms", transcript: "Can we move my call to Friday?" },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const [job] = await db()`select user_id from public.analysis_jobs
                            where interaction_id = ${res.body.data.interaction_id}`;
    assert.equal(job.user_id, user.id, "the analysis job exists, as for any insert");
  },
);

stackTest("agents: record_interaction with a scheduled call completes it", async () => {
  const user = await createUser(db());
  const { key } = await agentKey();
  const call = await postAgents(key, {
    tool: "schedule_call",
    input: { user_id: user.id, call_type: "check_in", scheduled_for: inAnHour() },
  });
  const res = await postAgents(key, {
    tool: "record_interaction",
    input: {
      user_id: user.id,
      channel: "voice",
      transcript: "Assistant: how was the week? User: good.",
      scheduled_call_id: call.body.data.call_id,
    },
  });
  assert.equal(res.status, 200);
  const [row] = await db()`select status from public.scheduled_calls
                            where id = ${call.body.data.call_id}`;
  assert.equal(row.status, "completed");
});

stackTest(
  "agents: search_interactions ranks transcripts and the summary, with snippets",
  async () => {
    const user = await createUser(db());
    const other = await createUser(db());
    const { key } = await agentKey();
    for (
      const [u, t] of [
        [user.id, "I finally booked the dentist for next Tuesday, the dentist is near work."],
        [user.id, "We talked about the weather and a new bike."],
        [other.id, "My dentist appointment is on Monday."],
      ]
    ) {
      await postAgents(key, {
        tool: "record_interaction",
        input: { user_id: u, channel: "voice", transcript: t },
      });
    }
    await db()`insert into public.user_sessions (user_id, context_summary)
             values (${user.id}, 'Dentist anxiety; prefers mornings.')`;
    const res = await postAgents(key, {
      tool: "search_interactions",
      input: { user_id: user.id, query: "dentists" },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const results = res.body.data.results;
    assert.equal(results.length, 2, "the user's transcript and summary, not the other user's");
    assert.deepEqual(results.map((r: { kind: string }) => r.kind).sort(), [
      "interaction",
      "session_summary",
    ]);
    const hit = results.find((r: { kind: string }) => r.kind === "interaction");
    assert.match(hit.snippet, /\*\*dentist\*\*/);
  },
);

stackTest("agents: remember consolidates with provenance agent:<id>", async () => {
  const user = await createUser(db());
  const { agentId, key } = await agentKey();
  const add = await postAgents(key, {
    tool: "remember",
    input: {
      user_id: user.id,
      items: [{ key: "Preferred call time", value: "mornings", category: "preference" }],
    },
  });
  assert.equal(add.status, 200, JSON.stringify(add.body));
  assert.deepEqual(add.body.data.added, ["preferred_call_time"]);
  const refresh = await postAgents(key, {
    tool: "remember",
    input: { user_id: user.id, items: [{ key: "preferred_call_time", value: "before 9am" }] },
  });
  assert.deepEqual(refresh.body.data.refreshed, ["preferred_call_time"]);
  assert.equal(refresh.body.data.items_stored, 1, "refreshed, not duplicated");
  const [row] = await db()<{ insights: { items: { value: string; sources: string[] }[] } }[]>`
    select insights from public.users where id = ${user.id}`;
  assert.equal(row.insights.items[0].value, "before 9am");
  assert.deepEqual(row.insights.items[0].sources, [`agent:${agentId}`]);
  const retire = await postAgents(key, {
    tool: "remember",
    input: { user_id: user.id, retire: ["preferred call time"] },
  });
  assert.deepEqual(retire.body.data.retired, ["preferred_call_time"]);
  assert.equal(retire.body.data.items_stored, 0);
});

stackTest("agents: set_contact_preferences sets quiet hours within bounds", async () => {
  const user = await createUser(db());
  const { key } = await agentKey();
  const res = await postAgents(key, {
    tool: "set_contact_preferences",
    input: { user_id: user.id, quiet_hours_start: "21:30", quiet_hours_end: "07:15" },
  });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body.data, {
    user_id: user.id,
    quiet_hours_start: "21:30",
    quiet_hours_end: "07:15",
    preferred_hours_start: null,
    preferred_hours_end: null,
  });
  const off = await postAgents(key, {
    tool: "set_contact_preferences",
    input: { user_id: user.id, quiet_hours_start: "07:15" },
  });
  assert.equal(off.status, 400);
  assert.equal(off.body.error.field, "quiet_hours_start");
  assert.equal((await footprint(user.id)).quiet_hours, "21:30:00-07:15:00");
});

stackTest("agents: every call is logged without its input", async () => {
  const user = await createUser(db());
  const { agentId, key } = await agentKey();
  await postAgents(key, {
    tool: "queue_message",
    input: { user_id: user.id, text: `Call me on ${user.phone_number}` },
  });
  await postAgents(key, { tool: "queue_message", input: { user_id: user.id } });
  const rows = await db()`
    select tool, user_id, outcome, error_code, duration_ms >= 0 as timed, to_jsonb(c)::text as raw
      from public.agent_calls c where agent_id = ${agentId} order by id`;
  assert.deepEqual(rows.map((r) => [r.tool, r.user_id, r.outcome, r.error_code, r.timed]), [
    ["queue_message", user.id, "ok", null, true],
    // Refused before it named a valid user: logged with none.
    ["queue_message", null, "invalid_input", "invalid_input", true],
  ]);
  for (const r of rows) assert.ok(!r.raw.includes(user.phone_number.slice(2)));
});
