// get_user_context's 8 KB bound, on contexts far over it and well under it.
import assert from "node:assert/strict";
import {
  boundContext,
  CONTEXT_MAX_BYTES,
  jsonBytes,
  type UserContext,
} from "../../shared/agents/context.ts";

const id = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;

function context(size: number): UserContext {
  const at = "2026-12-01T08:00:00.000Z";
  return {
    user_id: id(0),
    timezone: "Europe/Chisinau",
    local_time: "Tue 2026-12-01 10:00",
    quiet_hours: { start: "22:00", end: "08:00", now: false },
    preferred_hours: null,
    active_now: false,
    sms_opted_out: false,
    budget: { daily_limit: 10, used_today: 2, left_today: 8, hourly_limit: 2 },
    memory: Array.from({ length: size * 5 }, (_, i) => ({
      key: `fact_${i}`,
      value: "ü".repeat(300),
      category: "fact",
      last_seen: at,
    })),
    session_summary: "s".repeat(Math.min(4000, size * 400)),
    open_commitments: Array.from({ length: size }, (_, i) => ({
      id: id(i),
      description: "d".repeat(300),
      due_at: null,
    })),
    pending_calls: Array.from({ length: size }, (_, i) => ({
      id: id(i),
      call_type: "check_in",
      scheduled_for: at,
      rrule: null,
    })),
    queued_messages: Array.from({ length: size }, (_, i) => ({
      id: id(i),
      priority: "medium",
      scheduled_for: at,
      preview: "p".repeat(120),
    })),
    last_interactions: Array.from({ length: Math.min(size, 5) }, (_, i) => ({
      id: id(i),
      channel: "voice",
      created_at: at,
      sentiment: null,
      excerpt: "e".repeat(400),
    })),
    truncated: false,
  };
}

Deno.test("a context over 8 KB is cut to fit, keeping the first items of each list", () => {
  const big = context(10);
  assert.ok(jsonBytes(big) > CONTEXT_MAX_BYTES);
  const bounded = boundContext(big);
  assert.ok(jsonBytes(bounded) <= CONTEXT_MAX_BYTES, String(jsonBytes(bounded)));
  assert.equal(bounded.truncated, true);
  assert.equal(bounded.timezone, big.timezone);
  assert.deepEqual(bounded.budget, big.budget);
  if (bounded.memory.length) assert.equal(bounded.memory[0].key, "fact_0");
  assert.ok(bounded.last_interactions.every((i) => [...i.excerpt].length <= 200));
  assert.equal(big.memory.length, 50, "the input is left as it was");
});

Deno.test("a context within 8 KB is returned whole", () => {
  const small = context(1);
  small.memory = small.memory.slice(0, 2);
  assert.ok(jsonBytes(small) <= CONTEXT_MAX_BYTES);
  assert.deepEqual(boundContext(small), small);
});

Deno.test("every size from empty to far over the bound fits", () => {
  for (let size = 0; size <= 30; size++) {
    const bounded = boundContext(context(size));
    assert.ok(jsonBytes(bounded) <= CONTEXT_MAX_BYTES, `size ${size}: ${jsonBytes(bounded)}`);
  }
});
