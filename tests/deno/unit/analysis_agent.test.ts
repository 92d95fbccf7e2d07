// The analysis tool loop, against a fake model and fake executors.
import assert from "node:assert/strict";
import type Anthropic from "@anthropic-ai/sdk";
import {
  AGENT_LIMITS,
  AnalysisRunError,
  type CreateMessage,
  runAnalysisAgent,
} from "../../../shared/analysis/agent.ts";
import { effectKey } from "../../../shared/analysis/idempotency.ts";
import { type Executors, ToolRefused } from "../../../shared/analysis/executors.ts";
import type { ClaimedAnalysis, EarlierEffect } from "../../../shared/analysis/jobs.ts";
import type { ClaudeLog } from "../../../shared/claude/complete.ts";

type Params = Anthropic.Messages.MessageCreateParamsNonStreaming;
type Call = { name: string; input: unknown };
type Step = { calls: Call[] } | { text: string; stop?: string } | { error: string };

const NOW = Date.parse("2026-11-22T10:00:00Z");
const inHours = (h: number) => new Date(NOW + h * 3_600_000).toISOString();

function claimFor(userId = crypto.randomUUID(), transcript = "hello"): ClaimedAnalysis {
  return {
    status: "claimed",
    claim_token: crypto.randomUUID(),
    attempt: 1,
    max_attempts: 5,
    interaction: {
      id: crypto.randomUUID(),
      channel: "sms",
      call_type: "sms",
      created_at: new Date(NOW).toISOString(),
      scheduled_call_id: null,
      transcript,
    },
    user: {
      id: userId,
      timezone: "UTC",
      local_time: "Sun 2026-11-22 10:00",
      quiet_hours_start: "22:00",
      quiet_hours_end: "08:00",
      sms_opted_out: false,
      insights: {},
    },
    context: {
      session_summary: "",
      open_commitments: [],
      recent_interactions: [],
      pending_calls: [],
      queued_messages: [],
    },
  };
}

/** A model that answers from `steps` in order, then ends its turn; records each request. */
function fakeModel(steps: Step[]) {
  const requests: Params[] = [];
  let n = 0;
  const createMessage: CreateMessage = (params) => {
    requests.push(structuredClone(params));
    const step = steps.shift() ?? { text: "done" };
    if ("error" in step) return Promise.reject(new Error(step.error));
    n++;
    const content = "calls" in step
      ? step.calls.map((c, i) => ({ type: "tool_use", id: `toolu_${n}_${i}`, ...c }))
      : [{ type: "text", text: step.text }];
    return Promise.resolve({
      id: `msg_${n}`,
      type: "message",
      role: "assistant",
      model: "claude-sonnet-4-5",
      content,
      stop_reason: "calls" in step ? "tool_use" : step.stop ?? "end_turn",
      stop_sequence: null,
      usage: {
        input_tokens: 100,
        output_tokens: 10,
        cache_creation_input_tokens: 50,
        cache_read_input_tokens: 1000,
      },
    } as unknown as Anthropic.Messages.Message);
  };
  return { createMessage, requests };
}

function fakeExecutors(refuse: (tool: string) => string | null = () => null) {
  const calls: { tool: string; input: unknown; key: string }[] = [];
  const run = (tool: string) => (input: unknown, key: string) => {
    calls.push({ tool, input, key });
    const refusal = refuse(tool);
    if (refusal === "crash") return Promise.reject(new Error("connection lost"));
    if (refusal) return Promise.reject(new ToolRefused(refusal));
    return Promise.resolve({ id: `${tool}-${calls.length}`, commitment_id: `c-${calls.length}` });
  };
  const executors: Executors = {
    schedule_call: run("schedule_call"),
    cancel_scheduled_call: run("cancel_scheduled_call"),
    record_commitment: run("record_commitment"),
    update_commitment: run("update_commitment"),
    queue_message: run("queue_message"),
    set_contact_preferences: run("set_contact_preferences"),
    set_routine: run("set_routine"),
  };
  return { executors, calls };
}

const NOW_CALL = "00000000-0000-4000-8000-00000000ca11";
const FIXED_CLAIM = claimFor();

/** The turns each run recorded, by the run's deps. */
const turnLogs = new WeakMap<object, ClaudeLog[]>();

const deps = (
  createMessage: CreateMessage,
  executors: Executors,
  extra: { earlierEffects?: EarlierEffect[]; model?: string } = {},
) => {
  const logs: ClaudeLog[] = [];
  const d = {
    createMessage,
    executors,
    model: "claude-sonnet-4-5",
    now: () => NOW,
    recordTurn: (log: ClaudeLog) => {
      logs.push(log);
      return Promise.resolve();
    },
    ...extra,
  };
  turnLogs.set(d, logs);
  return d;
};

type ResultBlock = { type: string; tool_use_id: string; content: string; is_error?: boolean };
const toolResults = (req: Params): ResultBlock[] =>
  (req.messages.at(-1)?.content as ResultBlock[]).filter((b) => b.type === "tool_result");

Deno.test("a run acts through its tools and finishes with record_analysis", async () => {
  const model = fakeModel([
    {
      calls: [
        { name: "schedule_call", input: { call_type: "check_in", scheduled_for: inHours(24) } },
        { name: "schedule_call", input: { call_type: "Check In", scheduled_for: "soon" } },
        { name: "record_commitment", input: { description: "Call sister", due_at: inHours(48) } },
        { name: "update_user_insights", input: { items: [{ key: "Sister", value: "Has one" }] } },
      ],
    },
    {
      calls: [{ name: "record_analysis", input: { sentiment: "positive", session_summary: "S" } }],
    },
    { text: "never asked for" },
  ]);
  const fx = fakeExecutors();
  const claim = claimFor();
  const d = deps(model.createMessage, fx.executors);
  const out = await runAnalysisAgent(d, claim);

  assert.equal(model.requests.length, 2, "record_analysis ends the run");
  assert.equal(out.sentiment, "positive");
  assert.equal(out.sessionSummary, "S");
  assert.deepEqual(out.insights?.map((i) => [i.key, i.value, i.sources]), [
    ["sister", "Has one", [claim.interaction.id]],
  ]);
  assert.deepEqual(fx.calls.map((c) => c.tool), ["schedule_call", "record_commitment"]);
  assert.deepEqual(out.run.actions.map((a) => (a as { status: string }).status), [
    "ok",
    "invalid",
    "ok",
    "ok",
  ]);

  const results = toolResults(model.requests[1]);
  assert.equal(results.length, 4, "every tool_use gets its tool_result");
  assert.equal(results[1].is_error, true);
  assert.match(results[1].content, /call_type/);
  assert.match(results[1].content, /scheduled_for/);
  assert.equal(results.filter((r) => r.is_error).length, 1);

  assert.equal(out.run.turns, 2);
  assert.equal(out.run.stop_reason, "finished");
  assert.equal(out.run.input_tokens, 200);
  assert.equal(out.run.cache_read_tokens, 2000);
  assert.equal(out.run.cache_write_tokens, 100);
  assert.ok(out.run.cost_usd > 0);
  const logs = turnLogs.get(d)!;
  assert.equal(logs.length, 2, "each turn is recorded as it ends");
  assert.equal(logs[0].userId, claim.user.id);
  assert.deepEqual(logs.map((l) => l.usage.inputTokens), [100, 100]);
});

Deno.test("requests carry the cached static prefix, the same for every user", async () => {
  const first: Params[] = [];
  for (const userId of [crypto.randomUUID(), crypto.randomUUID()]) {
    const model = fakeModel([
      { calls: [{ name: "record_commitment", input: { description: `for ${userId}` } }] },
    ]);
    await runAnalysisAgent(
      deps(model.createMessage, fakeExecutors().executors),
      claimFor(userId, `transcript of ${userId}`),
    );
    first.push(model.requests[0]);
    const [, second] = model.requests;
    // The newest block carries the moving breakpoint; earlier turns do not.
    const marks = second.messages.flatMap((m) =>
      (m.content as { cache_control?: unknown }[]).map((b) => b.cache_control !== undefined)
    );
    assert.deepEqual(marks, [false, false, true]);
  }
  const prefix = (p: Params) => JSON.stringify({ tools: p.tools, system: p.system });
  assert.equal(prefix(first[0]), prefix(first[1]));
  assert.notEqual(JSON.stringify(first[0].messages), JSON.stringify(first[1].messages));
  // One breakpoint after the system text caches the tools before it as well.
  assert.ok(first[0].tools?.every((t) => !("cache_control" in t)));
  assert.deepEqual(
    (first[0].system as { cache_control?: unknown }[]).at(-1)?.cache_control,
    { type: "ephemeral" },
  );
  for (const field of ["temperature", "top_p", "top_k"]) assert.ok(!(field in first[0]));
});

Deno.test("guardrails: calls 1 minute to 90 days ahead, at most 3 a run, 10 actions a run", async () => {
  const schedule = (hours: number) => ({
    name: "schedule_call",
    input: { call_type: "check_in", scheduled_for: inHours(hours) },
  });
  const model = fakeModel([
    {
      calls: [
        schedule(0.01),
        schedule(24 * 91),
        schedule(1),
        schedule(2),
        schedule(3),
        schedule(4),
      ],
    },
    {
      calls: Array.from({ length: 9 }, (_, i) => ({
        name: "record_commitment",
        input: { description: `thing ${i}` },
      })),
    },
  ]);
  const fx = fakeExecutors();
  const out = await runAnalysisAgent(deps(model.createMessage, fx.executors), claimFor());
  assert.equal(fx.calls.filter((c) => c.tool === "schedule_call").length, 3);
  assert.equal(fx.calls.length, AGENT_LIMITS.maxActions);
  const [window1, window2, , , , capped] = toolResults(model.requests[1]);
  assert.match(window1.content, /between 1 minute and 90 days/);
  assert.match(window2.content, /between 1 minute and 90 days/);
  assert.match(capped.content, /at most 3 schedule_call/);
  assert.match(toolResults(model.requests[2]).at(-1)!.content, /taken its 10 actions/);
  assert.equal(out.run.stop_reason, "end_turn");
});

Deno.test("the loop stops after maxTurns turns", async () => {
  const always = Array.from({ length: 20 }, () => ({
    calls: [{ name: "update_user_insights", input: { items: [{ key: "k", value: "v" }] } }],
  }));
  const model = fakeModel(always);
  const out = await runAnalysisAgent(
    deps(model.createMessage, fakeExecutors().executors),
    claimFor(),
  );
  assert.equal(model.requests.length, AGENT_LIMITS.maxTurns);
  assert.equal(out.run.stop_reason, "turn_limit");
  assert.equal(out.sentiment, null, "no record_analysis: sentiment stays unset");
});

Deno.test("a refused tool is reported to the model; anything else fails the run", async () => {
  const refused = fakeModel([
    { calls: [{ name: "queue_message", input: { text: "hi" } }] },
    { calls: [{ name: "record_analysis", input: { sentiment: "neutral", session_summary: "x" } }] },
  ]);
  const out = await runAnalysisAgent(
    deps(refused.createMessage, fakeExecutors(() => "user opted out").executors),
    claimFor(),
  );
  assert.equal(toolResults(refused.requests[1])[0].is_error, true);
  assert.equal(toolResults(refused.requests[1])[0].content, "user opted out");
  assert.equal(out.sentiment, "neutral");

  const crashing = fakeModel([{ calls: [{ name: "queue_message", input: { text: "hi" } }] }]);
  const crashDeps = deps(crashing.createMessage, fakeExecutors(() => "crash").executors);
  const err = await runAnalysisAgent(crashDeps, claimFor()).catch((e) => e);
  assert.ok(err instanceof AnalysisRunError);
  assert.equal(err.message, "connection lost");
  assert.equal(err.run.input_tokens, 100, "what the run spent is kept for the record");
  assert.equal(
    turnLogs.get(crashDeps)!.length,
    1,
    "and its turn was recorded before the tools ran",
  );

  const overloaded = fakeModel([{ error: "529 overloaded" }]);
  const err2 = await runAnalysisAgent(
    deps(overloaded.createMessage, fakeExecutors().executors),
    claimFor(),
  ).catch((e) => e);
  assert.ok(err2 instanceof AnalysisRunError);
  assert.equal(err2.run.stop_reason, "error");
});

Deno.test("effect keys name the place of an effect, not its words", () => {
  const id = crypto.randomUUID();
  assert.equal(effectKey(id, "schedule_call", "", 1), `analysis:${id}:schedule_call:1`);
  const call = crypto.randomUUID();
  assert.equal(
    effectKey(id, "cancel_scheduled_call", `series:${call}`, 2),
    `analysis:${id}:cancel_scheduled_call:series:${call}:2`,
  );
  assert.ok(effectKey(id, "update_commitment", crypto.randomUUID(), 10).length <= 200);
});

Deno.test("a retry worded differently gets the same keys, so the same effects", async () => {
  const words = (n: number) => [
    {
      name: "schedule_call",
      input: {
        call_type: n ? "follow_up" : "check_in",
        scheduled_for: inHours(24 + n),
        custom_instructions: n ? "Ask how the dentist went." : "Dentist?",
      },
    },
    { name: "record_commitment", input: { description: n ? "Dentist booking" : "Book dentist" } },
    { name: "queue_message", input: { text: n ? "Good luck!" : "Best of luck at the dentist" } },
    { name: "cancel_scheduled_call", input: { call_id: NOW_CALL, reason: n ? "moved" : "x" } },
  ];
  const keys: string[][] = [];
  for (const n of [0, 1]) {
    const fx = fakeExecutors();
    await runAnalysisAgent(
      deps(fakeModel([{ calls: words(n) }]).createMessage, fx.executors),
      FIXED_CLAIM,
    );
    keys.push(fx.calls.map((c) => c.key));
  }
  assert.deepEqual(keys[0], keys[1]);
  assert.equal(new Set(keys[0]).size, 4);
});

Deno.test("earlier attempts' effects replay without a cap and count towards this run's", async () => {
  const claim = claimFor();
  const id = claim.interaction.id;
  const earlier: EarlierEffect[] = [1, 2].map((n) => ({
    tool: "schedule_call",
    idempotency_key: effectKey(id, "schedule_call", "", n),
    result: { call_id: `call-${n}` },
    state: { status: "pending" },
  }));
  const schedule = (hours: number) => ({
    name: "schedule_call",
    input: { call_type: "check_in", scheduled_for: inHours(hours) },
  });
  const model = fakeModel([{ calls: [schedule(1), schedule(2), schedule(3), schedule(4)] }]);
  const fx = fakeExecutors();
  await runAnalysisAgent(
    deps(model.createMessage, fx.executors, { earlierEffects: earlier }),
    claim,
  );
  // Two replays, then one new call fills the cap of 3, and the fourth is refused.
  assert.deepEqual(
    fx.calls.map((c) => c.key),
    [1, 2, 3].map((n) => effectKey(id, "schedule_call", "", n)),
  );
  const results = toolResults(model.requests[1]);
  assert.match(results[3].content, /at most 3 schedule_call/);
  const context = (model.requests[0].messages[0].content as { text: string }[])[0].text;
  assert.match(context, /earlier_attempt/);
  assert.match(context, /call-1/);
});

Deno.test("a refused effect takes no ordinal, so the next one keeps its place", async () => {
  const claim = claimFor();
  let first = true;
  const fx = fakeExecutors((tool) => {
    if (tool !== "record_commitment" || !first) return null;
    first = false;
    return "over a cap";
  });
  const model = fakeModel([{
    calls: [
      { name: "record_commitment", input: { description: "refused" } },
      { name: "record_commitment", input: { description: "kept" } },
    ],
  }]);
  await runAnalysisAgent(deps(model.createMessage, fx.executors), claim);
  const key = effectKey(claim.interaction.id, "record_commitment", "", 1);
  assert.deepEqual(fx.calls.map((c) => c.key), [key, key]);
});

Deno.test("a run that ends on max_tokens or refusal says so", async () => {
  for (const stop of ["max_tokens", "refusal"]) {
    const model = fakeModel([{ text: "cut", stop }]);
    const out = await runAnalysisAgent(
      deps(model.createMessage, fakeExecutors().executors),
      claimFor(),
    );
    assert.equal(out.run.stop_reason, stop);
    assert.equal(out.sentiment, null);
  }
});

Deno.test("the static prefix is cached only for models that can cache it", async () => {
  const system = async (model: string) => {
    const m = fakeModel([{ text: "done" }]);
    await runAnalysisAgent(
      deps(m.createMessage, fakeExecutors().executors, { model }),
      claimFor(),
    );
    return m.requests[0].system as { cache_control?: unknown }[];
  };
  assert.deepEqual((await system("claude-sonnet-4-5"))[0].cache_control, { type: "ephemeral" });
  assert.equal((await system("claude-haiku-4-5"))[0].cache_control, undefined);
  assert.equal((await system("claude-opus-4-5"))[0].cache_control, undefined);
});
