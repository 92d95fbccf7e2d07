// The scripted model must look like the Messages API to the real SDK, or the
// product would be tested against something it never meets in production.
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import {
  defaultResponder,
  type MessagesRequest,
  type RecordedRequest,
  type ScriptedClaude,
  startScriptedClaude,
} from "../../../scripts/local/scripted_claude.ts";

const MODEL = "claude-sonnet-5-5";

async function withServer(
  fn: (server: ScriptedClaude, client: Anthropic) => Promise<void>,
): Promise<void> {
  const server = await startScriptedClaude();
  // No retries: a scripted error must surface rather than consume the next step.
  const client = new Anthropic({ apiKey: "test", baseURL: server.url, maxRetries: 0 });
  try {
    await fn(server, client);
  } finally {
    await server.stop();
  }
}

const ask = (
  client: Anthropic,
  content: string,
  extra: Partial<Anthropic.MessageCreateParamsNonStreaming> = {},
) =>
  client.messages.create({
    model: MODEL,
    max_tokens: 1000,
    messages: [{ role: "user", content }],
    ...extra,
  });

const textOf = (msg: Anthropic.Message) =>
  msg.content.flatMap((b) => (b.type === "text" ? [b.text] : [])).join("");

const post = (server: ScriptedClaude, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${server.url}/v1/messages`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-api-key": "k",
      "anthropic-version": "2023-06-01",
      ...headers,
    },
    body: JSON.stringify(body),
  });

const recorded = (body: Partial<MessagesRequest>): RecordedRequest => ({
  requestId: "req_test",
  receivedAt: new Date(0).toISOString(),
  headers: {},
  body: { model: MODEL, max_tokens: 100, messages: [], ...body },
});

Deno.test("a text step comes back through the SDK as a labelled message", async () => {
  await withServer(async (server, client) => {
    server.script([{ kind: "text", text: "Hello from the script.", usage: { output_tokens: 7 } }]);
    const msg = await ask(client, "hi");
    assert.match(msg.id, /^msg_scripted_/);
    assert.equal(msg.type, "message");
    assert.equal(msg.role, "assistant");
    assert.equal(msg.model, MODEL);
    assert.equal(textOf(msg), "Hello from the script.");
    assert.equal(msg.stop_reason, "end_turn");
    assert.equal(msg.stop_sequence, null);
    assert.equal(msg.usage.output_tokens, 7);
    assert.ok(msg.usage.input_tokens > 0);
    assert.match(msg._request_id ?? "", /^req_scripted_/);

    const [req] = server.requests();
    assert.equal(req.requestId, msg._request_id);
    assert.deepEqual(req.body.messages, [{ role: "user", content: "hi" }]);
    assert.equal(req.headers.authorization, "[redacted]");
  });
});

Deno.test("a tool_use turn and the tool_result turn after it", async () => {
  await withServer(async (server, client) => {
    const tools: Anthropic.Tool[] = [{
      name: "schedule_call",
      description: "Schedule a call to the user.",
      input_schema: { type: "object", properties: { at: { type: "string" } }, required: ["at"] },
    }];
    server.script([
      {
        kind: "tool_use",
        text: "Scheduling it.",
        calls: [{ name: "schedule_call", input: { at: "2026-12-01T09:00:00Z" } }],
      },
      { kind: "text", text: "Your call is booked." },
    ]);
    const messages: Anthropic.MessageParam[] = [{ role: "user", content: "Call me at 9." }];

    const first = await client.messages.create({ model: MODEL, max_tokens: 500, tools, messages });
    assert.equal(first.stop_reason, "tool_use");
    assert.equal(textOf(first), "Scheduling it.");
    const call = first.content.find((b): b is Anthropic.ToolUseBlock => b.type === "tool_use");
    assert.ok(call);
    assert.equal(call.name, "schedule_call");
    assert.deepEqual(call.input, { at: "2026-12-01T09:00:00Z" });
    assert.match(call.id, /^toolu_scripted_/);

    messages.push(
      { role: "assistant", content: first.content },
      { role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: "booked" }] },
    );
    const second = await client.messages.create({ model: MODEL, max_tokens: 500, tools, messages });
    assert.equal(second.stop_reason, "end_turn");
    assert.equal(textOf(second), "Your call is booked.");

    const sent = server.requests()[1].body.messages;
    assert.equal(sent.length, 3);
    assert.deepEqual(sent[2].content, [{
      type: "tool_result",
      tool_use_id: call.id,
      content: "booked",
    }]);
  });
});

Deno.test("an error step surfaces as the SDK's APIError with its status and type", async () => {
  await withServer(async (server, client) => {
    server.script([
      { kind: "error", status: 529, type: "overloaded_error", message: "Overloaded" },
      { kind: "error", status: 429, type: "rate_limit_error", message: "Slow down" },
      { kind: "error", status: 500, type: "api_error", message: "Internal" },
    ]);
    await assert.rejects(ask(client, "one"), (err: unknown) => {
      assert.ok(err instanceof Anthropic.APIError);
      assert.equal(err.status, 529);
      assert.equal(err.type, "overloaded_error");
      assert.equal(err.apiMessage, "Overloaded");
      assert.match(err.requestID ?? "", /^req_scripted_/);
      return true;
    });
    await assert.rejects(ask(client, "two"), Anthropic.RateLimitError);
    await assert.rejects(ask(client, "three"), Anthropic.InternalServerError);
  });
});

Deno.test("a cached prefix is written on first sight and read after", async () => {
  await withServer(async (_server, client) => {
    const system: Anthropic.TextBlockParam[] = [{
      type: "text",
      // About 4,600 tokens: above every model's minimum cacheable length.
      text: "You are the orchestrator. ".repeat(700),
      cache_control: { type: "ephemeral" },
    }];
    const first = await ask(client, "first question", { system });
    const written = first.usage.cache_creation_input_tokens ?? 0;
    assert.ok(written > 4096, `wrote ${written}`);
    assert.equal(first.usage.cache_read_input_tokens, 0);

    const second = await ask(client, "a different question", { system });
    assert.equal(second.usage.cache_read_input_tokens, written);
    assert.equal(second.usage.cache_creation_input_tokens, 0);
    assert.ok(second.usage.input_tokens > 0);

    // A later breakpoint reads the cached system prompt and writes only what follows it.
    const third = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      system,
      messages: [{
        role: "user",
        content: [{
          type: "text",
          text: "history ".repeat(100),
          cache_control: { type: "ephemeral" },
        }],
      }],
    });
    assert.equal(third.usage.cache_read_input_tokens, written);
    assert.ok((third.usage.cache_creation_input_tokens ?? 0) > 100);

    // Caches are per model.
    const other = await ask(client, "first question", { system, model: "claude-haiku-5-5" });
    assert.equal(other.usage.cache_read_input_tokens, 0);
    assert.equal(other.usage.cache_creation_input_tokens, written);
  });
});

Deno.test("the control API scripts, lists and resets over HTTP", async () => {
  await withServer(async (server, client) => {
    const queued = await fetch(`${server.url}/__scripted/script`, {
      method: "POST",
      body: JSON.stringify([{ kind: "text", text: "scripted from elsewhere" }]),
    });
    assert.equal(queued.status, 200);
    assert.deepEqual(await queued.json(), { queued: 1 });
    assert.equal(textOf(await ask(client, "hi")), "scripted from elsewhere");

    const list = await fetch(`${server.url}/__scripted/requests`);
    const requests: RecordedRequest[] = await list.json();
    assert.equal(requests.length, 1);
    assert.equal(requests[0].body.model, MODEL);
    assert.equal(requests[0].headers["anthropic-version"] !== undefined, true);

    const bad = await fetch(`${server.url}/__scripted/script`, {
      method: "POST",
      body: JSON.stringify([{ kind: "text" }]),
    });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.type, "invalid_request_error");

    const reset = await fetch(`${server.url}/__scripted/reset`, { method: "POST" });
    assert.equal(reset.status, 200);
    await reset.body?.cancel();
    const after = await fetch(`${server.url}/__scripted/requests`);
    assert.deepEqual(await after.json(), []);
  });
});

Deno.test("the default responder renders the JSON it is given as SMS prose", async () => {
  await withServer(async (_server, client) => {
    const data = {
      title: "Dentist appointment",
      when: "Tuesday 3pm",
      where: { name: "Main St clinic" },
      bring: ["insurance card"],
      notes: null,
    };
    const msg = await ask(client, `Render this for the user:\n${JSON.stringify(data)}`, {
      system: "RENDER_SMS: write one short, friendly SMS from the data.",
    });
    const text = textOf(msg);
    assert.equal(text, "Dentist appointment, Tuesday 3pm, Main St clinic, insurance card.");
    assert.doesNotMatch(text, /[{}[\]]/);
  });
});

Deno.test("the default responder answers freshness checks and otherwise does nothing", () => {
  const fresh = defaultResponder(recorded({
    system: "FRESHNESS_CHECK: is this message still relevant?",
    messages: [{ role: "user", content: "Reminder: dentist at 3pm" }],
  }));
  assert.equal(fresh.kind, "text");
  assert.deepEqual(JSON.parse(fresh.kind === "text" ? fresh.text : ""), {
    still_relevant: true,
    reason: "scripted model: no newer context",
  });

  const other = defaultResponder(recorded({
    system: "Analyse this conversation.",
    messages: [{ role: "user", content: "We talked about the weather." }],
  }));
  assert.deepEqual(other, { kind: "text", text: "Scripted model: nothing to do." });
});

Deno.test("setDefault replaces the responder, composes with it, and reset restores it", async () => {
  await withServer(async (server, client) => {
    server.setDefault((req) =>
      req.body.model === "claude-haiku-5-5"
        ? { kind: "text", text: "haiku says hi" }
        : defaultResponder(req)
    );
    assert.equal(textOf(await ask(client, "x", { model: "claude-haiku-5-5" })), "haiku says hi");
    assert.equal(textOf(await ask(client, "x")), "Scripted model: nothing to do.");

    server.setDefault(() => {
      throw new Error("boom");
    });
    await assert.rejects(ask(client, "x"), Anthropic.InternalServerError);

    server.reset();
    assert.equal(server.requests().length, 0);
    assert.equal(textOf(await ask(client, "x")), "Scripted model: nothing to do.");
  });
});

Deno.test("a reply longer than max_tokens is cut off with stop_reason max_tokens", async () => {
  await withServer(async (server, client) => {
    server.script([{ kind: "text", text: "word ".repeat(50) }]);
    const msg = await ask(client, "talk", { max_tokens: 5 });
    assert.equal(msg.stop_reason, "max_tokens");
    assert.equal(textOf(msg).length, 20);
    assert.equal(msg.usage.output_tokens, 5);
  });
});

Deno.test("requests are checked like the real API", async () => {
  await withServer(async (server) => {
    const good = { model: MODEL, max_tokens: 10, messages: [{ role: "user", content: "hi" }] };
    const ok = await post(server, good);
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get("request-id") ?? "", /^req_scripted_/);
    await ok.body?.cancel();

    const cases: [Response, number, string, RegExp][] = [
      [await post(server, good, { "x-api-key": "" }), 401, "authentication_error", /x-api-key/],
      [
        await post(server, good, { "anthropic-version": "" }),
        400,
        "invalid_request_error",
        /anthropic-version/,
      ],
      [
        await post(server, { ...good, max_tokens: undefined }),
        400,
        "invalid_request_error",
        /max_tokens/,
      ],
      [await post(server, { ...good, messages: [] }), 400, "invalid_request_error", /messages/],
      [
        await post(server, { ...good, stream: true }),
        400,
        "invalid_request_error",
        /streaming is not supported by the scripted model/,
      ],
    ];
    for (const [res, status, type, message] of cases) {
      const body = await res.json();
      assert.equal(res.status, status);
      assert.equal(body.type, "error");
      assert.equal(body.error.type, type);
      assert.match(body.error.message, message);
      assert.match(body.request_id, /^req_scripted_/);
    }
    assert.equal(server.requests().length, 1);
  });
});

Deno.test("a scripted delay answers with its step, and stop() does not wait it out", async () => {
  let delaying!: () => void;
  const delayed = new Promise<void>((resolve) => (delaying = resolve));
  const server = await startScriptedClaude({
    log: (line) => line.includes("delaying") && delaying(),
  });
  const client = new Anthropic({ apiKey: "test", baseURL: server.url, maxRetries: 0 });
  server.script([{ kind: "delay", ms: 3_600_000, then: { kind: "text", text: "late" } }]);
  const pending = ask(client, "wait");
  await delayed;
  await server.stop();
  assert.equal(textOf(await pending), "late");
});

Deno.test("a prefix shorter than the model's minimum cacheable length is not cached", async () => {
  await withServer(async (_server, client) => {
    // About 2,600 tokens: enough for Sonnet 4.5 (1,024) and 4.6 (2,048), not Haiku 4.5 (4,096).
    const system: Anthropic.TextBlockParam[] = [{
      type: "text",
      text: "You are the orchestrator. ".repeat(400),
      cache_control: { type: "ephemeral" },
    }];
    const twice = async (model: string) => {
      await ask(client, "one", { system, model });
      return (await ask(client, "two", { system, model })).usage;
    };
    const haiku = await twice("claude-haiku-4-5-20251001");
    assert.equal(haiku.cache_read_input_tokens, 0);
    assert.equal(haiku.cache_creation_input_tokens, 0);
    assert.ok(haiku.input_tokens > 2500, "all of it billed as plain input");
    for (const model of ["claude-sonnet-4-5-20250929", "claude-sonnet-4-6"]) {
      assert.ok(((await twice(model)).cache_read_input_tokens ?? 0) > 2500, model);
    }
    const short: Anthropic.TextBlockParam[] = [{
      type: "text",
      text: "Short rules. ".repeat(100),
      cache_control: { type: "ephemeral" },
    }];
    await ask(client, "one", { system: short, model: "claude-sonnet-4-5" });
    const again = await ask(client, "two", { system: short, model: "claude-sonnet-4-5" });
    assert.equal(again.usage.cache_read_input_tokens, 0, "below 1,024 tokens even on Sonnet 4.5");
  });
});

Deno.test("a scripted text can end on a refusal or max_tokens", async () => {
  await withServer(async (server, client) => {
    server.script([
      { kind: "text", text: "", stop_reason: "refusal" },
      { kind: "text", text: "cut", stop_reason: "max_tokens" },
    ]);
    assert.equal((await ask(client, "one")).stop_reason, "refusal");
    assert.equal((await ask(client, "two")).stop_reason, "max_tokens");
  });
});
