// The mcp function driven by the official MCP TypeScript client (Client with
// StreamableHTTPClientTransport) against the local stack.
import assert from "node:assert/strict";
// The SDK's export map names "<path>.js.d.ts" for types: they are given with @ts-types.
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createUser, db, functionUrl, stackTest } from "./helpers.ts";
import { agentKey, footprint, inAnHour } from "./agents_helpers.ts";
import { TOOL_NAMES } from "../../shared/agents/schemas.ts";

async function mcpClient(key: string | null): Promise<Client> {
  const client = new Client({ name: "orchestrator-tests", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(
    new URL(functionUrl("mcp")),
    {
      requestInit: { headers: key ? { authorization: `Bearer ${key}` } : {} },
    },
  );
  await client.connect(transport);
  return client;
}

type Result = Awaited<ReturnType<Client["callTool"]>>;
// deno-lint-ignore no-explicit-any
const data = (r: Result): any => {
  assert.ok(!r.isError, JSON.stringify(r.content));
  return r.structuredContent;
};
const errorText = (r: Result) => {
  assert.equal(r.isError, true, JSON.stringify(r));
  return (r.content as { type: string; text: string }[]).map((c) => c.text)
    .join("\n");
};

stackTest(
  "mcp: the official client lists every tool with its schemas",
  async () => {
    const { key } = await agentKey();
    const client = await mcpClient(key);
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name), TOOL_NAMES);
      const queue = tools.find((t) => t.name === "queue_message")!;
      assert.equal(queue.inputSchema.type, "object");
      assert.ok(queue.inputSchema.properties?.user_id, "user_id is a property");
      assert.deepEqual(queue.inputSchema.required, ["user_id"]);
      assert.ok(queue.outputSchema?.properties?.message_id);
      for (const tool of tools) {
        assert.ok(
          (tool.description ?? "").length >= 20,
          `${tool.name} is described for a model`,
        );
        assert.equal(tool.inputSchema.type, "object");
        assert.equal(tool.outputSchema?.type, "object");
      }
    } finally {
      await client.close();
    }
  },
);

stackTest("mcp: the official client calls every tool", async () => {
  const user = await createUser(db());
  const { agentId, key } = await agentKey();
  const client = await mcpClient(key);
  const call = (name: string, args: Record<string, unknown>) =>
    client.callTool({ name, arguments: args });
  try {
    const queued = data(
      await call("queue_message", { user_id: user.id, text: "Via MCP" }),
    );
    assert.equal(queued.status, "queued");
    const status = data(
      await call("get_message_status", { message_id: queued.message_id }),
    );
    assert.equal(status.status, "queued");
    const scheduled = data(
      await call("schedule_call", {
        user_id: user.id,
        call_type: "check_in",
        scheduled_for: inAnHour(),
      }),
    );
    const cancelled = data(
      await call("cancel_scheduled_call", {
        call_id: scheduled.call_id,
        scope: "series",
        reason: "not needed",
      }),
    );
    assert.equal(cancelled.cancelled, true);
    const recorded = data(
      await call("record_interaction", {
        user_id: user.id,
        channel: "voice",
        transcript: "We planned a long bike ride for Saturday.",
      }),
    );
    assert.ok(recorded.interaction_id);
    const found = data(
      await call("search_interactions", {
        user_id: user.id,
        query: "bike ride",
      }),
    );
    assert.equal(found.results[0].interaction_id, recorded.interaction_id);
    const remembered = data(
      await call("remember", {
        user_id: user.id,
        items: [{ key: "hobby", value: "cycling" }],
      }),
    );
    assert.deepEqual(remembered.added, ["hobby"]);
    const prefs = data(
      await call("set_contact_preferences", {
        user_id: user.id,
        quiet_hours_start: "22:30",
        quiet_hours_end: "07:30",
      }),
    );
    assert.equal(prefs.quiet_hours_start, "22:30");
    const ctx = data(await call("get_user_context", { user_id: user.id }));
    assert.deepEqual(ctx.quiet_hours.start, "22:30");
    assert.equal(ctx.memory[0].value, "cycling");
  } finally {
    await client.close();
  }
  const [{ n }] = await db()`
    select count(*)::int as n from public.agent_calls
     where agent_id = ${agentId} and transport = 'mcp' and outcome = 'ok'`;
  assert.equal(n, 9, "each tool call is logged");
});

stackTest(
  "mcp: no key, a wrong key and a revoked key are refused with 401",
  async () => {
    const { agentId, key } = await agentKey();
    await db()`select public.revoke_agent_key(${agentId})`;
    for (const k of [null, "oak_" + "0".repeat(64), key]) {
      await assert.rejects(() => mcpClient(k), /401|nauthorized/, String(k));
    }
    const res = await fetch(functionUrl("mcp"), { method: "POST", body: "{}" });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error.code, "unauthorized");
  },
);

stackTest(
  "mcp: a key lists only its tools and cannot call the others",
  async () => {
    const user = await createUser(db());
    const { key } = await agentKey({
      tools: ["get_user_context", "queue_message"],
    });
    const client = await mcpClient(key);
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name), [
        "queue_message",
        "get_user_context",
      ]);
      const res = await client.callTool({
        name: "schedule_call",
        arguments: {
          user_id: user.id,
          call_type: "check_in",
          scheduled_for: inAnHour(),
        },
      });
      assert.match(errorText(res), /schedule_call/);
      assert.equal((await footprint(user.id)).calls, 0);
    } finally {
      await client.close();
    }
  },
);

stackTest(
  "mcp: a key scoped to user A gets a tool error for user B",
  async () => {
    const a = await createUser(db());
    const b = await createUser(db());
    const { key } = await agentKey({ userIds: [a.id] });
    const client = await mcpClient(key);
    try {
      const before = await footprint(b.id);
      const res = await client.callTool({
        name: "queue_message",
        arguments: { user_id: b.id, text: "not for you" },
      });
      assert.match(errorText(res), /forbidden.*\(field: user_id\)/);
      assert.deepEqual(await footprint(b.id), before);
    } finally {
      await client.close();
    }
  },
);

stackTest(
  "mcp: only tools/call spends the rate; over it the request gets 429",
  async () => {
    const user = await createUser(db());
    const { key } = await agentKey({ requestsPerMinute: 1 });
    const client = await mcpClient(key);
    try {
      await client.listTools();
      data(
        await client.callTool({
          name: "get_user_context",
          arguments: { user_id: user.id },
        }),
      );
      await assert.rejects(
        () =>
          client.callTool({
            name: "get_user_context",
            arguments: { user_id: user.id },
          }),
        /429|rate/,
      );
    } finally {
      await client.close();
    }
  },
);

// Bad input on every tool: an MCP tool error naming the field, and nothing written.
const badInputs: [string, (u: string) => Record<string, unknown>, string][] = [
  [
    "queue_message",
    (u) => ({ user_id: u, text: "a", priority: "asap" }),
    "priority",
  ],
  ["get_message_status", () => ({ message_id: "42" }), "message_id"],
  [
    "schedule_call",
    (u) => ({
      user_id: u,
      call_type: "check_in",
      scheduled_for: new Date().toISOString(),
    }),
    "scheduled_for",
  ],
  [
    "cancel_scheduled_call",
    () => ({ call_id: crypto.randomUUID(), scope: "everything", reason: "x" }),
    "scope",
  ],
  ["get_user_context", () => ({ user_id: "me" }), "user_id"],
  [
    "record_interaction",
    (u) => ({ user_id: u, channel: "fax", transcript: "hi" }),
    "channel",
  ],
  [
    "search_interactions",
    (u) => ({ user_id: u, query: "a", limit: 0 }),
    "limit",
  ],
  [
    "remember",
    (u) => ({ user_id: u, items: [{ key: "", value: "v" }] }),
    "items[0].key",
  ],
  [
    "set_contact_preferences",
    (u) => ({ user_id: u, quiet_hours_start: "9pm" }),
    "quiet_hours_start",
  ],
];

for (const [tool, input, field] of badInputs) {
  stackTest(
    `mcp: ${tool} with a bad ${field} is a tool error naming it`,
    async () => {
      const user = await createUser(db());
      const { key } = await agentKey();
      const client = await mcpClient(key);
      try {
        const before = await footprint(user.id);
        const res = await client.callTool({
          name: tool,
          arguments: input(user.id),
        });
        assert.ok(errorText(res).includes(field), errorText(res));
        assert.deepEqual(await footprint(user.id), before);
      } finally {
        await client.close();
      }
    },
  );
}
