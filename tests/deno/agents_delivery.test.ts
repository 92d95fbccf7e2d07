// A message queued through the front door goes out through process-queue like
// any other: under the user's quiet hours and budget.
import assert from "node:assert/strict";
import { db, stackTest } from "./helpers.ts";
import { agentKey, postAgents } from "./agents_helpers.ts";
import { catcher, deliveryUser, processQueue, processUntilSettled } from "./delivery_helpers.ts";

const queue = async (key: string, userId: string, text: string) => {
  const res = await postAgents(key, { tool: "queue_message", input: { user_id: userId, text } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.data.message_id as string;
};

const statusOf = async (key: string, messageId: string) =>
  (await postAgents(key, { tool: "get_message_status", input: { message_id: messageId } }))
    .body.data;

stackTest("agents: a queued message is delivered by process-queue and reported sent", async () => {
  const user = await deliveryUser(db());
  const { key } = await agentKey();
  const id = await queue(key, user.id, "Front door says hello");
  await processUntilSettled(id);
  const caught = await catcher.messages(user.phone_number);
  assert.deepEqual(caught.map((m) => m.body), ["Front door says hello"]);
  const status = await statusOf(key, id);
  assert.equal(status.status, "sent");
  assert.ok(status.sent_at);
  assert.ok(status.twilio_status, "Twilio's status is reported");
});

stackTest("agents: inside the user's quiet hours it waits for their end", async () => {
  const user = await deliveryUser(db(), { timezone: "UTC" });
  // Quiet from an hour ago to two hours ahead, in the user's (UTC) wall clock.
  const [{ end }] = await db()<{ end: Date }[]>`
    update public.users
       set quiet_hours_start = date_trunc('minute', now() - interval '1 hour')::time,
           quiet_hours_end = date_trunc('minute', now() + interval '2 hours')::time
     where id = ${user.id}
    returning date_trunc('minute', now() + interval '2 hours') as end`;
  const { key } = await agentKey();
  const id = await queue(key, user.id, "Not at night");
  await processQueue({ time_budget_ms: 5_000 });
  const status = await statusOf(key, id);
  assert.equal(status.status, "queued");
  assert.equal(new Date(status.next_attempt_at).getTime(), end.getTime());
  assert.deepEqual(await catcher.messages(user.phone_number), []);
});

stackTest("agents: past the daily budget it waits for the next local day", async () => {
  const user = await deliveryUser(db(), { daily_message_limit: 1 });
  const { key } = await agentKey();
  const first = await queue(key, user.id, "One");
  const second = await queue(key, user.id, "Two");
  await processUntilSettled(first);
  await processQueue({ time_budget_ms: 5_000 });
  assert.equal((await statusOf(key, second)).status, "queued");
  assert.equal((await catcher.messages(user.phone_number)).length, 1);
  const ctx = await postAgents(key, { tool: "get_user_context", input: { user_id: user.id } });
  assert.equal(ctx.body.data.budget.left_today, 0);
  assert.equal(ctx.body.data.queued_messages.length, 1);
});

stackTest(
  "agents: past its daily cap for a user an agent gets 429, and the refusal is on record",
  async () => {
    const sql = db();
    const user = await deliveryUser(sql);
    const { agentId, key } = await agentKey();
    await sql`insert into public.agent_message_limits (agent_id, daily_messages_per_user)
            values (${`agent:${agentId}`}, 1)`;
    await queue(key, user.id, "the one a day");
    const refused = await postAgents(key, {
      tool: "queue_message",
      input: { user_id: user.id, text: "one more" },
    });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.code, "limit_exceeded");
    const [{ queued }] = await sql`select count(*)::int as queued from public.message_queue
                                  where user_id = ${user.id}`;
    assert.equal(queued, 1, "nothing more was written");
    const events = await sql`select kind, reason, agent_id from public.delivery_events
                            where user_id = ${user.id} and kind = 'refused'`;
    assert.deepEqual(events.map((e) => [e.kind, e.reason, e.agent_id]), [
      ["refused", "agent_daily_cap", `agent:${agentId}`],
    ]);
  },
);
