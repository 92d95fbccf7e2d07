// Every request in examples/ posted to the local stack, so every example in the
// docs is known to work. Placeholders ({{user_id}} and the like) are filled with
// a fresh user, message and call per example.
import assert from "node:assert/strict";
import { createUser, db, stackTest, waitFor } from "./helpers.ts";
import { agentKey, postAgents } from "./agents_helpers.ts";

interface Example {
  description: string;
  key?: { tools?: string[]; users?: string[]; requests_per_minute?: number } | null;
  setup?: unknown[];
  request: { tool: string; input: Record<string, unknown> };
  expect: { status: number; code?: string; field?: string | null };
}

const dir = new URL("../../examples/", import.meta.url);
const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".json"))
  .sort();

async function placeholders(): Promise<Record<string, string>> {
  const user = await createUser(db());
  const other = await createUser(db());
  const [{ message_id }] = await db()`
    select public.enqueue_message(${user.id}, 'examples', p_final_message := 'Hi')::text
      as message_id`;
  const [{ call_id }] = await db()`
    select public.schedule_call(${user.id}, 'check_in', now() + interval '1 day')::text as call_id`;
  return {
    user_id: user.id,
    other_user_id: other.id,
    message_id,
    call_id,
    in_an_hour: new Date(Date.now() + 3_600_000).toISOString(),
    in_a_day: new Date(Date.now() + 86_400_000).toISOString(),
  };
}

const fill = (text: string, values: Record<string, string>) =>
  text.replace(/\{\{(\w+)\}\}/g, (_, name) => {
    assert.ok(name in values, `unknown placeholder ${name}`);
    return values[name];
  });

stackTest("examples: one request per tool, and the error cases", () => {
  const tools = new Set(
    names.map((n) => JSON.parse(Deno.readTextFileSync(new URL(n, dir))).request.tool),
  );
  for (
    const tool of [
      "queue_message",
      "get_message_status",
      "schedule_call",
      "cancel_scheduled_call",
      "get_user_context",
      "record_interaction",
      "search_interactions",
      "remember",
      "set_contact_preferences",
    ]
  ) assert.ok(tools.has(tool), tool);
  return Promise.resolve();
});

for (const name of names) {
  stackTest(`examples: ${name} works as documented`, async () => {
    const values = await placeholders();
    const example: Example = JSON.parse(
      fill(await Deno.readTextFile(new URL(name, dir)), values),
    );
    const key = example.key === null ? null : (await agentKey({
      tools: example.key?.tools,
      userIds: example.key?.users,
      requestsPerMinute: example.key?.requests_per_minute,
    })).key;
    if (example.key?.requests_per_minute !== undefined) {
      // The rate window is the current minute: setup and request must share one.
      await waitFor(
        "a minute with time left in it",
        () => Promise.resolve(new Date().getUTCSeconds() < 50),
      );
    }
    for (const step of example.setup ?? []) {
      assert.equal((await postAgents(key, step)).status, 200, "setup");
    }
    const res = await postAgents(key, example.request);
    assert.equal(res.status, example.expect.status, JSON.stringify(res.body));
    if (example.expect.status === 200) {
      assert.ok(res.body.data, "answers with data");
    } else {
      assert.equal(res.body.error.code, example.expect.code);
      assert.equal(res.body.error.field, example.expect.field);
    }
  });
}
