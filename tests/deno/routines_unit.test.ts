// Routines without the stack: templates, conditions through the JMESPath
// library, next occurrences across DST, the missed-occurrence rule, http.post's
// allowlist and signature, and the schemas create_routine checks against.
import assert from "node:assert/strict";
import { ConditionError, conditionHolds } from "../../shared/routines/conditions.ts";
import { httpConfigFromEnv, refusal, signature } from "../../shared/routines/http.ts";
import { nextRunAt } from "../../shared/routines/plan.ts";
import { ROUTINE_TOOL_SCHEMAS, STEP_TOOL_LIST } from "../../shared/routines/agent_schemas.ts";
import { STEP_TOOL_NAMES, stepInputJsonSchema } from "../../shared/routines/schemas.ts";
import { render, type Scope } from "../../shared/routines/templates.ts";

const scope: Scope = {
  steps: { ctx: { memory: [{ key: "walks" }], count: 2 }, plan: { text: "Do the thing" } },
  params: { city: "Chisinau", tags: ["a", "b"] },
  user: { id: "u1", timezone: "Europe/Chisinau", local_date: "2026-10-25", local_time: "08:30" },
  occurrence: "2026-10-25T06:30:00.000Z",
};

Deno.test("a lone template keeps its value's type; inside text it is written out", () => {
  assert.deepEqual(render({ items: "${params.tags}", n: "${steps.ctx.count}" }, scope), {
    items: ["a", "b"],
    n: 2,
  });
  assert.equal(
    render("Plan for ${user.local_date} in ${params.city}: ${steps.plan.text}", scope),
    "Plan for 2026-10-25 in Chisinau: Do the thing",
  );
  assert.equal(render("first fact: ${steps.ctx.memory.0.key}", scope), "first fact: walks");
  assert.equal(
    render("tags ${params.tags} at ${occurrence}", scope),
    'tags ["a","b"] at 2026-10-25T06:30:00.000Z',
  );
});

Deno.test("a reference to nothing is empty text, and a lone one drops its field", () => {
  assert.equal(render("x${steps.nope.text}y", scope), "xy");
  assert.deepEqual(render({ text: "${steps.nope.text}", keep: 1 }, scope), { keep: 1 });
});

Deno.test("when is JMESPath over steps, params and user, with JMESPath's truthiness", () => {
  const data = { steps: scope.steps, params: scope.params, user: scope.user };
  assert.equal(conditionHolds("length(steps.plan.text) > `0`", data), true);
  assert.equal(conditionHolds("steps.missing", data), false);
  assert.equal(conditionHolds("params.tags[?@ == 'c']", data), false);
  assert.equal(conditionHolds("user.timezone == 'Europe/Chisinau'", data), true);
  assert.throws(() => conditionHolds("steps.[[", data), ConditionError);
});

Deno.test("next occurrences stay at 08:30 local across the end of DST", () => {
  const plan = {
    rrule: "FREQ=DAILY;BYHOUR=8;BYMINUTE=30",
    seriesStart: new Date("2026-10-23T05:30:00Z"),
    timezone: "Europe/Chisinau",
    missed: "each" as const,
  };
  const now = new Date("2026-10-20T00:00:00Z");
  const a = nextRunAt({ ...plan, planAfter: null }, now)!;
  const b = nextRunAt({ ...plan, planAfter: a }, now)!;
  const c = nextRunAt({ ...plan, planAfter: b }, now)!;
  assert.deepEqual([a, b, c].map((d) => d.toISOString()), [
    "2026-10-24T05:30:00.000Z", // EEST, UTC+3
    "2026-10-25T06:30:00.000Z", // EET, UTC+2, the day the clocks go back
    "2026-10-26T06:30:00.000Z",
  ]);
});

Deno.test("missed occurrences: once runs the latest, each runs the oldest first", () => {
  const plan = {
    rrule: "FREQ=DAILY;BYHOUR=8;BYMINUTE=30",
    seriesStart: new Date("2026-11-01T00:00:00Z"),
    planAfter: null,
    timezone: "UTC",
  };
  const now = new Date("2026-11-05T12:00:00Z");
  assert.equal(
    nextRunAt({ ...plan, missed: "once" }, now)!.toISOString(),
    "2026-11-05T08:30:00.000Z",
  );
  assert.equal(
    nextRunAt({ ...plan, missed: "each" }, now)!.toISOString(),
    "2026-11-01T08:30:00.000Z",
  );
  const after = nextRunAt(
    { ...plan, missed: "once", planAfter: new Date("2026-11-05T08:30:00Z") },
    now,
  );
  assert.equal(after!.toISOString(), "2026-11-06T08:30:00.000Z");
});

Deno.test("http.post reaches only allowlisted origins", () => {
  const http = httpConfigFromEnv({
    ROUTINE_HTTP_ALLOWLIST: "https://Hooks.Example.com, http://127.0.0.1:8080",
    ROUTINE_HTTP_SECRET: "0123456789abcdef",
  });
  assert.equal(refusal("https://hooks.example.com/a?b=1", http.allowlist), null);
  assert.equal(refusal("http://127.0.0.1:8080/x", http.allowlist), null);
  assert.equal(
    refusal("https://hooks.example.com.evil.test/a", http.allowlist),
    "https://hooks.example.com.evil.test is not in ROUTINE_HTTP_ALLOWLIST",
  );
  assert.equal(
    refusal("http://hooks.example.com/a", http.allowlist),
    "http://hooks.example.com is not in ROUTINE_HTTP_ALLOWLIST",
  );
  assert.match(refusal("https://u:p@hooks.example.com/", http.allowlist)!, /credentials/);
  assert.throws(() => httpConfigFromEnv({ ROUTINE_HTTP_SECRET: "short" }), /16 characters/);
});

Deno.test("the signature is HMAC-SHA256 over timestamp.body", async () => {
  // The same HMAC computed independently, by node:crypto.
  assert.equal(
    await signature("0123456789abcdef", 1700000000, '{"a":1}'),
    "t=1700000000,v1=" + (await hmacHex("0123456789abcdef", '1700000000.{"a":1}')),
  );
  assert.notEqual(
    await signature("0123456789abcdef", 1700000001, '{"a":1}'),
    await signature("0123456789abcdef", 1700000000, '{"a":1}'),
  );
});

async function hmacHex(secret: string, text: string): Promise<string> {
  const { createHmac } = await import("node:crypto");
  return createHmac("sha256", secret).update(text).digest("hex");
}

Deno.test("the agent tools list the step tools the runner has", () => {
  assert.deepEqual([...STEP_TOOL_LIST].sort(), [...STEP_TOOL_NAMES].sort());
  for (const name of STEP_TOOL_NAMES) assert.equal(stepInputJsonSchema(name).type, "object");
});

Deno.test("create_routine's input refuses a when that is not JMESPath, naming the step", () => {
  const input = (when: string) => ({
    user_id: crypto.randomUUID(),
    name: "plan",
    rrule: "FREQ=DAILY;BYHOUR=8;BYMINUTE=30",
    steps: [{ id: "ctx", uses: "context.read" }, { id: "sms", uses: "sms.queue", when, with: {} }],
  });
  const schema = ROUTINE_TOOL_SCHEMAS.create_routine.input;
  assert.equal(schema.safeParse(input("steps.ctx.open_commitments")).success, true);
  const bad = schema.safeParse(input("steps.ctx.[[["));
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error!.issues[0].path, ["steps", 1, "when"]);
  assert.match(bad.error!.issues[0].message, /when is not a JMESPath expression/);
});
