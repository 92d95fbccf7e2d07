// The analysis tools: validation before anything runs, and definitions that
// are the same bytes every time.
import assert from "node:assert/strict";
import { ANALYSIS_TOOLS, parseToolCall } from "../../../shared/analysis/tools.ts";

const future = "2026-12-01T09:30:00-05:00";

Deno.test("the eight tools and record_analysis; the breakpoint is after the system text", () => {
  assert.deepEqual(ANALYSIS_TOOLS.map((t) => t.name), [
    "schedule_call",
    "cancel_scheduled_call",
    "update_user_insights",
    "record_commitment",
    "update_commitment",
    "queue_message",
    "set_contact_preferences",
    "set_routine",
    "record_analysis",
  ]);
  assert.ok(ANALYSIS_TOOLS.every((t) => t.cache_control === undefined));
});

Deno.test("set_contact_preferences takes both ends as HH:MM, or null for both", () => {
  const parsed = (input: unknown) => {
    const p = parseToolCall("set_contact_preferences", input);
    return p.ok ? p.input : p.error;
  };
  assert.deepEqual(parsed({ preferred_hours_start: "18:00", preferred_hours_end: "21:30" }), {
    preferred_hours_start: "18:00",
    preferred_hours_end: "21:30",
  });
  assert.deepEqual(parsed({ preferred_hours_start: null, preferred_hours_end: null }), {
    preferred_hours_start: null,
    preferred_hours_end: null,
  });
  assert.match(
    String(parsed({ preferred_hours_start: "18:00", preferred_hours_end: null })),
    /preferred_hours_end: give both ends/,
  );
  assert.match(
    String(parsed({ preferred_hours_start: "6pm", preferred_hours_end: "21:00" })),
    /preferred_hours_start: a local time as HH:MM/,
  );
  assert.match(
    String(parsed({ preferred_hours_start: "18:00", preferred_hours_end: "21:00", user_id: "x" })),
    /user_id/,
  );
});

Deno.test("cancel_scheduled_call says which: one occurrence, or the series by default", () => {
  const call_id = crypto.randomUUID();
  const parsed = (input: unknown) => {
    const p = parseToolCall("cancel_scheduled_call", input);
    return p.ok ? p.input : p.error;
  };
  assert.deepEqual(parsed({ call_id, reason: "moved" }), {
    call_id,
    reason: "moved",
    scope: "series",
  });
  assert.deepEqual(parsed({ call_id, reason: "away", scope: "occurrence" }), {
    call_id,
    reason: "away",
    scope: "occurrence",
  });
  assert.match(String(parsed({ call_id, reason: "x", scope: "all" })), /scope/);
  const tool = ANALYSIS_TOOLS.find((t) => t.name === "cancel_scheduled_call")!;
  assert.match(tool.description ?? "", /default/);
  assert.deepEqual(
    (tool.input_schema.properties as Record<string, { enum?: string[] }>).scope.enum,
    ["occurrence", "series"],
  );
});

Deno.test("no tool takes a user id, and none accepts unknown fields", () => {
  const text = JSON.stringify(ANALYSIS_TOOLS);
  assert.doesNotMatch(text, /user_id|userId/);
  for (const tool of ANALYSIS_TOOLS) {
    assert.equal(tool.input_schema.type, "object");
    assert.equal(tool.input_schema.additionalProperties, false, tool.name);
  }
  const injected = parseToolCall("schedule_call", {
    call_type: "check_in",
    scheduled_for: future,
    user_id: crypto.randomUUID(),
  });
  assert.equal(injected.ok, false);
  assert.match(!injected.ok ? injected.error : "", /user_id/);
});

Deno.test("the definitions are generated the same, byte for byte, in a fresh module", async () => {
  const fresh = await import(`../../../shared/analysis/tools.ts?fresh=${crypto.randomUUID()}`);
  assert.equal(JSON.stringify(fresh.ANALYSIS_TOOLS), JSON.stringify(ANALYSIS_TOOLS));
  assert.doesNotMatch(JSON.stringify(ANALYSIS_TOOLS), /\$schema/);
});

Deno.test("valid calls parse, with defaults", () => {
  const call = parseToolCall("schedule_call", {
    call_type: "check_in",
    scheduled_for: future,
    rrule: "FREQ=WEEKLY;BYDAY=MO",
  });
  assert.ok(call.ok);
  const message = parseToolCall("queue_message", { text: "  See you Friday!  " });
  assert.deepEqual(message, {
    ok: true,
    tool: "queue_message",
    input: { text: "See you Friday!", priority: "medium" },
  });
});

Deno.test("invalid calls name the field", () => {
  const cases: [string, unknown, RegExp][] = [
    ["schedule_call", { call_type: "Check In", scheduled_for: future }, /call_type/],
    ["schedule_call", { call_type: "check_in", scheduled_for: "tomorrow" }, /scheduled_for/],
    ["schedule_call", { call_type: "x", scheduled_for: future, rrule: "FREQ=HOURLY" }, /rrule/],
    ["cancel_scheduled_call", { call_id: "nope", reason: "x" }, /call_id/],
    ["update_user_insights", {}, /items/],
    ["update_user_insights", { items: [{ key: "", value: "x" }] }, /items\.0\.key/],
    ["record_commitment", { description: "   " }, /description/],
    ["update_commitment", { commitment_id: crypto.randomUUID() }, /status/],
    ["queue_message", { text: "hi", priority: "urgent" }, /priority/],
    ["queue_message", { text: "x".repeat(481) }, /text/],
    ["record_analysis", { sentiment: "ecstatic", session_summary: "x" }, /sentiment/],
    ["delete_everything", {}, /no tool named delete_everything/],
  ];
  for (const [name, input, field] of cases) {
    const parsed = parseToolCall(name, input);
    assert.equal(parsed.ok, false, `${name} ${JSON.stringify(input)}`);
    assert.match(!parsed.ok ? parsed.error : "", field);
  }
});
