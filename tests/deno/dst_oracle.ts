// A time-zone oracle independent of shared/time: UTC offsets as Intl prints
// them ("GMT+05:30"), and the instants where a zone's offset changes. Property
// tests use it to judge the code under test.
import assert from "node:assert/strict";

export const SECOND = 1000;
export const DAY = 86_400_000;
export const ZONES = Intl.supportedValuesOf("timeZone");

const offsetFormats = new Map<string, Intl.DateTimeFormat>();

/** The zone's UTC offset at instant `t`, in ms. */
export function intlOffset(t: number, tz: string): number {
  let f = offsetFormats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", { timeZone: tz, timeZoneName: "longOffset" });
    offsetFormats.set(tz, f);
  }
  const name = f.formatToParts(t).find((p) => p.type === "timeZoneName")!.value;
  const m = /^GMT(?:([+-])(\d\d):(\d\d)(?::(\d\d))?)?$/.exec(name);
  assert.ok(m, `unexpected offset ${name}`);
  if (!m[1]) return 0;
  const ms = ((Number(m[2]) * 60 + Number(m[3])) * 60 + Number(m[4] ?? 0)) * SECOND;
  return m[1] === "-" ? -ms : ms;
}

export type Transition = { at: number; before: number; after: number };

const transitionCache = new Map<string, Transition[]>();

/**
 * Offset changes in `year`, found by daily sampling and bisection to the
 * second; only those with no other change within three days, so a test's
 * oracle for one change applies.
 */
export function transitions(tz: string, year: number): Transition[] {
  const key = `${tz} ${year}`;
  const cached = transitionCache.get(key);
  if (cached) return cached;
  const found: Transition[] = [];
  const end = Date.UTC(year + 1, 0, 1);
  let after = intlOffset(Date.UTC(year, 0, 1), tz);
  for (let t = Date.UTC(year, 0, 1); t < end; t += DAY) {
    const before = after;
    after = intlOffset(t + DAY, tz);
    if (before === after) continue;
    let lo = t;
    let hi = t + DAY;
    while (hi - lo > SECOND) {
      const mid = lo + Math.floor((hi - lo) / 2 / SECOND) * SECOND;
      if (intlOffset(mid, tz) === before) lo = mid;
      else hi = mid;
    }
    found.push({ at: hi, before, after: intlOffset(hi, tz) });
  }
  const isolated = found.filter((tr) =>
    intlOffset(tr.at - 3 * DAY, tz) === tr.before && intlOffset(tr.at + 3 * DAY, tz) === tr.after &&
    found.every((other) => other === tr || Math.abs(other.at - tr.at) > 3 * DAY)
  );
  transitionCache.set(key, isolated);
  return isolated;
}

/** Zones whose offset differs between January and July. */
export const DST_ZONES = ZONES.filter((tz) =>
  intlOffset(Date.UTC(2026, 0, 15), tz) !== intlOffset(Date.UTC(2026, 6, 15), tz)
);
