// The user's memory profile (users.insights): consolidated, never appended.
// Items are keyed by a normalised key, so "Preferred call time" and
// "preferred_call_time" are one fact; each remembers when it was first and last
// seen and which interactions support it (a bounded list); the whole is bounded,
// dropping what was seen longest ago and supported least. Pure functions.
import { z } from "zod";
import { INSIGHT_CATEGORIES } from "./tools.ts";

export type InsightCategory = (typeof INSIGHT_CATEGORIES)[number];

export interface InsightItem {
  key: string;
  value: string;
  category: InsightCategory;
  first_seen: string;
  last_seen: string;
  sources: string[];
}

export interface InsightUpdate {
  key: string;
  value: string;
  category?: InsightCategory;
}

export interface InsightChange {
  items?: InsightUpdate[];
  retire?: string[];
}

export interface MemoryLimits {
  maxItems: number;
  maxSources: number;
}

export const MEMORY_LIMITS: MemoryLimits = { maxItems: 50, maxSources: 5 };
const MAX_KEY = 64;
const MAX_VALUE = 500;

/** Lower case, accents folded, runs of anything but letters and digits as one `_`. */
export function normaliseKey(key: string): string {
  const folded = key
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, "_")
    .replace(/^_+|_+$/g, "");
  // By code point, so a cut never leaves half a surrogate pair.
  return [...folded].slice(0, MAX_KEY).join("").replace(/_+$/, "");
}

const storedItem = z.object({
  key: z.string(),
  value: z.string(),
  category: z.enum(INSIGHT_CATEGORIES).catch("other"),
  first_seen: z.string(),
  last_seen: z.string(),
  sources: z.array(z.string()).catch([]),
});

/**
 * The items of a stored profile. Whatever is malformed is dropped rather than
 * failing the analysis; keys are normalised and duplicates merged.
 */
export function readInsights(profile: unknown): InsightItem[] {
  const raw = typeof profile === "object" && profile !== null && "items" in profile
    ? (profile as { items: unknown }).items
    : [];
  if (!Array.isArray(raw)) return [];
  const byKey = new Map<string, InsightItem>();
  for (const entry of raw) {
    const parsed = storedItem.safeParse(entry);
    if (!parsed.success) continue;
    const key = normaliseKey(parsed.data.key);
    if (!key) continue;
    const item = { ...parsed.data, key };
    const seen = byKey.get(key);
    byKey.set(key, seen ? merge(seen, item) : item);
  }
  return sortItems([...byKey.values()]);
}

function merge(a: InsightItem, b: InsightItem): InsightItem {
  const [older, newer] = a.last_seen <= b.last_seen ? [a, b] : [b, a];
  return {
    ...newer,
    first_seen: a.first_seen < b.first_seen ? a.first_seen : b.first_seen,
    sources: [...new Set([...older.sources, ...newer.sources])],
  };
}

const sortItems = (items: InsightItem[]) =>
  items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

/**
 * Applies one change from one interaction at one instant: retired keys go, then
 * each update refreshes its key's item or adds one; then the profile is cut
 * back to its bound.
 */
export function consolidate(
  current: readonly InsightItem[],
  change: InsightChange,
  source: { interactionId: string; at: string },
  limits: MemoryLimits = MEMORY_LIMITS,
): InsightItem[] {
  const retired = new Set((change.retire ?? []).map(normaliseKey));
  const byKey = new Map(
    current.filter((item) => !retired.has(item.key)).map((item) => [item.key, item]),
  );
  for (const update of change.items ?? []) {
    const key = normaliseKey(update.key);
    const value = update.value.trim().slice(0, MAX_VALUE);
    if (!key || !value) continue;
    const seen = byKey.get(key);
    byKey.set(key, {
      key,
      value,
      category: update.category ?? seen?.category ?? "other",
      first_seen: seen?.first_seen ?? source.at,
      last_seen: seen && seen.last_seen > source.at ? seen.last_seen : source.at,
      sources: [...new Set([...(seen?.sources ?? []), source.interactionId])]
        .slice(-limits.maxSources),
    });
  }
  return sortItems(bound([...byKey.values()], limits.maxItems));
}

/** Keeps the `max` items seen most recently, then best supported. */
function bound(items: InsightItem[], max: number): InsightItem[] {
  if (items.length <= max) return items;
  const keep = [...items].sort((a, b) =>
    (b.last_seen > a.last_seen ? 1 : b.last_seen < a.last_seen ? -1 : 0) ||
    b.sources.length - a.sources.length ||
    (b.first_seen > a.first_seen ? 1 : b.first_seen < a.first_seen ? -1 : 0) ||
    (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  );
  return keep.slice(0, max);
}

/** The profile to store: the items replace the old ones; other keys are kept as they were. */
export function writeInsights(
  profile: unknown,
  items: readonly InsightItem[],
  at: string,
): Record<string, unknown> {
  const base = typeof profile === "object" && profile !== null && !Array.isArray(profile)
    ? profile as Record<string, unknown>
    : {};
  return { ...base, items: [...items], updated_at: at };
}
