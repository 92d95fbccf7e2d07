// Insight consolidation: a bounded profile of facts, one per normalised key.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  consolidate,
  type InsightChange,
  type InsightItem,
  normaliseKey,
  readInsights,
  writeInsights,
} from "../../../shared/analysis/memory.ts";

const limits = { maxItems: 8, maxSources: 3 };
const at = (minute: number) => new Date(Date.UTC(2026, 10, 22, 0, minute)).toISOString();

// Few distinct keys in several spellings, so collisions and updates are common.
const key = fc.constantFrom(
  "Preferred call time",
  "preferred_call_time",
  "  PREFERRED-call time ",
  "sister",
  "Sister!",
  "diet",
  "Café order",
  "cafe_order",
  "job",
  "dog",
  "gym",
  "city",
  "kids",
  "partner",
  "---",
);
const update = fc.record({
  key,
  value: fc.string({ minLength: 1, maxLength: 20 }),
  category: fc.option(fc.constantFrom("preference" as const, "fact" as const), {
    nil: undefined,
  }),
});
const change: fc.Arbitrary<InsightChange> = fc.record({
  items: fc.array(update, { maxLength: 6 }),
  retire: fc.array(key, { maxLength: 2 }),
});
const step = fc.record({ change, interaction: fc.constantFrom("i1", "i2", "i3", "i4", "i5") });

function replay(steps: { change: InsightChange; interaction: string }[]): InsightItem[] {
  return steps.reduce<InsightItem[]>(
    (items, s, i) =>
      consolidate(items, s.change, { interactionId: s.interaction, at: at(i) }, limits),
    [],
  );
}

Deno.test("normaliseKey folds case, accents and punctuation", () => {
  assert.equal(normaliseKey("  Preferred-Call time! "), "preferred_call_time");
  assert.equal(normaliseKey("Café order"), "cafe_order");
  assert.equal(normaliseKey("---"), "");
  assert.equal(normaliseKey("x".repeat(100)).length, 64);
});

Deno.test("consolidation: unique normalised keys, bounded items and sources, ordered dates", () => {
  fc.assert(fc.property(fc.array(step, { maxLength: 12 }), (steps) => {
    const items = replay(steps);
    const keys = items.map((i) => i.key);
    assert.equal(new Set(keys).size, keys.length, "no duplicate keys");
    assert.ok(items.length <= limits.maxItems, "bounded size");
    for (const item of items) {
      assert.equal(item.key, normaliseKey(item.key));
      assert.notEqual(item.key, "");
      assert.ok(item.sources.length >= 1 && item.sources.length <= limits.maxSources);
      assert.equal(new Set(item.sources).size, item.sources.length, "sources are distinct");
      assert.ok(item.first_seen <= item.last_seen);
    }
  }));
});

Deno.test("consolidation: the latest value wins, retired keys go, first_seen is kept", () => {
  fc.assert(fc.property(fc.array(step, { maxLength: 8 }), change, (steps, last) => {
    const before = replay(steps);
    const when = at(100);
    const after = consolidate(before, last, { interactionId: "i9", at: when }, limits);
    const latest = new Map<string, string>();
    for (const u of last.items ?? []) {
      if (normaliseKey(u.key)) latest.set(normaliseKey(u.key), u.value.trim());
    }
    for (const gone of last.retire ?? []) {
      const k = normaliseKey(gone);
      if (!latest.has(k)) assert.ok(!after.some((i) => i.key === k), `${k} was retired`);
    }
    for (const [k, value] of latest) {
      const item = after.find((i) => i.key === k);
      if (!value) continue;
      // Fresh items are the newest, so the bound only drops them past maxItems updates.
      if (latest.size > limits.maxItems) continue;
      assert.ok(item, `${k} is kept`);
      assert.equal(item.value, value);
      assert.equal(item.last_seen, when);
      assert.equal(item.sources.at(-1), "i9");
      const old = before.find((i) => i.key === k);
      const retired = (last.retire ?? []).some((r) => normaliseKey(r) === k);
      if (old && !retired) assert.equal(item.first_seen, old.first_seen);
    }
  }));
});

Deno.test("consolidation is idempotent: a retried run changes nothing more", () => {
  fc.assert(fc.property(fc.array(step, { maxLength: 8 }), change, (steps, again) => {
    const source = { interactionId: "i7", at: at(50) };
    const once = consolidate(replay(steps), again, source, limits);
    assert.deepEqual(consolidate(once, again, source, limits), once);
  }));
});

Deno.test("over the bound, what was seen longest ago and supported least goes", () => {
  let items: InsightItem[] = [];
  for (let i = 0; i < 4; i++) {
    items = consolidate(items, { items: [{ key: `k${i}`, value: "v" }] }, {
      interactionId: `i${i}`,
      at: at(i),
    }, { maxItems: 3, maxSources: 3 });
  }
  assert.deepEqual(items.map((i) => i.key), ["k1", "k2", "k3"]);
  // Same last_seen: the better supported one stays.
  const tied = consolidate(
    [
      {
        key: "a",
        value: "v",
        category: "other",
        first_seen: at(0),
        last_seen: at(5),
        sources: ["x"],
      },
      {
        key: "b",
        value: "v",
        category: "other",
        first_seen: at(0),
        last_seen: at(5),
        sources: ["x", "y"],
      },
    ],
    {},
    { interactionId: "z", at: at(6) },
    { maxItems: 1, maxSources: 3 },
  );
  assert.deepEqual(tied.map((i) => i.key), ["b"]);
});

Deno.test("readInsights tolerates anything and merges duplicates; writeInsights keeps other keys", () => {
  assert.deepEqual(readInsights({}), []);
  assert.deepEqual(readInsights({ items: "nope" }), []);
  assert.deepEqual(readInsights(null), []);
  const items = readInsights({
    items: [
      { key: "Sister", value: "old", first_seen: at(1), last_seen: at(2), sources: ["a"] },
      { key: "sister", value: "new", first_seen: at(3), last_seen: at(4), sources: ["b"] },
      { key: 5, value: "bad" },
    ],
  });
  assert.deepEqual(items, [{
    key: "sister",
    value: "new",
    category: "other",
    first_seen: at(1),
    last_seen: at(4),
    sources: ["a", "b"],
  }]);
  const stored = writeInsights({ tone: "casual", items: [] }, items, at(9));
  assert.deepEqual(stored, { tone: "casual", items, updated_at: at(9) });
  assert.deepEqual(readInsights(stored), items);
});
