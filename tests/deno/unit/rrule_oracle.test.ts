// nextOccurrence (rrule-temporal on wall-clock time) against an independent oracle: a brute-force
// reading of RFC 5545 that walks every local day, keeps those each BYxxx part allows, applies
// BYSETPOS to each period's set, and turns wall times into instants with the UTC offsets Intl
// prints (tests/deno/dst_oracle.ts), never shared/time or rrule-temporal. Zones with DST
// oddities: Lord Howe's 30-minute shift, Santiago's change at midnight, and the rest.
import assert from "node:assert/strict";
import fc from "fast-check";
import { nextOccurrence } from "../../../shared/time/rrule.ts";
import { DAY, DST_ZONES, intlOffset, transitions } from "../dst_oracle.ts";

const MINUTE = 60_000;
const NAMES = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

type Freq = "DAILY" | "WEEKLY" | "MONTHLY" | "YEARLY";
type Rule = {
  freq: Freq;
  interval: number;
  wkst: number; // ISO weekday
  byMonth?: number[];
  byMonthDay?: number[];
  byDay?: { weekday: number; ordinal?: number }[];
  byHour?: number[];
  byMinute?: number[];
  bySetPos?: number[];
  count?: number;
  untilMs?: number;
};

// --- wall-clock calendar arithmetic on epoch days ---
const civil = (day: number) => {
  const d = new Date(day * DAY);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
};
const weekday = (day: number) => ((new Date(day * DAY).getUTCDay() + 6) % 7) + 1;
const monthLength = (year: number, month: number) =>
  new Date(Date.UTC(year, month, 0)).getUTCDate();
const dayOf = (year: number, month: number, day: number) => Date.UTC(year, month - 1, day) / DAY;

function periodIndex(rule: Rule, day: number): number {
  const { year, month } = civil(day);
  switch (rule.freq) {
    case "DAILY":
      return day;
    case "WEEKLY":
      return (day - ((weekday(day) - rule.wkst + 7) % 7)) / 7;
    case "MONTHLY":
      return year * 12 + month - 1;
    case "YEARLY":
      return year;
  }
}

// The nth (or nth-from-last) `wd` in [first, last]: does `day` hold that place?
function ordinalMatches(day: number, first: number, last: number, ordinal: number): boolean {
  const before = Math.floor((day - first) / 7);
  const after = Math.floor((last - day) / 7);
  return ordinal > 0 ? before + 1 === ordinal : after + 1 === -ordinal;
}

function dayMatches(rule: Rule, day: number, start: number): boolean {
  const { year, month, day: dom } = civil(day);
  const s = civil(start);
  if (rule.byMonth && !rule.byMonth.includes(month)) return false;
  const length = monthLength(year, month);
  if (rule.byMonthDay && !rule.byMonthDay.some((d) => (d > 0 ? d : length + 1 + d) === dom)) {
    return false;
  }
  if (rule.byDay) {
    // Ordinals count within the month (MONTHLY, or YEARLY with BYMONTH) or the year.
    const inMonth = rule.freq === "MONTHLY" || rule.byMonth !== undefined;
    const first = inMonth ? dayOf(year, month, 1) : dayOf(year, 1, 1);
    const last = inMonth ? dayOf(year, month, length) : dayOf(year, 12, 31);
    const ok = rule.byDay.some((d) =>
      d.weekday === weekday(day) &&
      (d.ordinal === undefined || ordinalMatches(day, first, last, d.ordinal))
    );
    if (!ok) return false;
  }
  // What DTSTART supplies when the rule leaves the day open (RFC 5545 3.3.10).
  switch (rule.freq) {
    case "DAILY":
      return true;
    case "WEEKLY":
      return rule.byDay !== undefined || weekday(day) === weekday(start);
    case "MONTHLY":
      return rule.byDay !== undefined || rule.byMonthDay !== undefined || dom === s.day;
    case "YEARLY":
      if (rule.byDay !== undefined || rule.byMonthDay !== undefined) return true;
      return dom === s.day && (rule.byMonth !== undefined || month === s.month);
  }
}

// Instant of a wall time in `tz`: a repeated time takes its first occurrence; a time in a gap is
// read with the offset from before the gap (RFC 5545 3.3.5).
function instantOf(wallMs: number, tz: string): number {
  const offsets = [...new Set([intlOffset(wallMs - DAY, tz), intlOffset(wallMs + DAY, tz)])];
  const valid = offsets.map((o) => wallMs - o).filter((t) => intlOffset(t, tz) === wallMs - t);
  if (valid.length > 0) return Math.min(...valid);
  return wallMs - intlOffset(wallMs - 2 * DAY, tz);
}

/** Every occurrence from dtstart (included, first) with a wall time before `endWallMs`. */
function oracle(rule: Rule, dtstart: number, tz: string, endWallMs: number): number[] {
  const startWall = dtstart + intlOffset(dtstart, tz);
  const start = Math.floor(startWall / DAY);
  const startMinute = Math.floor((startWall - start * DAY) / MINUTE);
  const hours = [...new Set(rule.byHour ?? [Math.floor(startMinute / 60)])].sort((a, b) => a - b);
  const minutes = [...new Set(rule.byMinute ?? [startMinute % 60])].sort((a, b) => a - b);
  const walls: number[] = [];
  // Whole periods: begin at the start of dtstart's (a year back covers every frequency).
  let period: number[] = [];
  let current: number | undefined;
  const flush = () => {
    const idx = current!;
    const base = periodIndex(rule, start);
    if ((idx - base) % rule.interval === 0) {
      let set = period.sort((a, b) => a - b);
      if (rule.bySetPos) {
        const picked = rule.bySetPos.map((p) => set[p > 0 ? p - 1 : set.length + p]);
        set = [...new Set(picked.filter((w) => w !== undefined))].sort((a, b) => a - b);
      }
      walls.push(...set);
    }
    period = [];
  };
  // Whole periods to the end too, or BYSETPOS would pick from part of the last one.
  for (let day = start - 366;; day++) {
    const idx = periodIndex(rule, day);
    if (idx < periodIndex(rule, start)) continue;
    if (current !== undefined && idx !== current) {
      flush();
      if (day * DAY >= endWallMs) break;
    }
    current = idx;
    if (!dayMatches(rule, day, start)) continue;
    for (const h of hours) for (const m of minutes) period.push(day * DAY + (h * 60 + m) * MINUTE);
  }
  // Instances before DTSTART are not in the set: compared as wall times (so 02:30, shifted to
  // 03:30 by a gap, does not follow a DTSTART of 03:00 that day), then as instants.
  const inSet = walls.filter((w) => w >= startWall && w < endWallMs);
  const instants = [...new Set(inSet.map((w) => instantOf(w, tz)))]
    .filter((t) => t > dtstart)
    .sort((a, b) => a - b);
  let all = [dtstart, ...instants];
  if (rule.count !== undefined) all = all.slice(0, rule.count);
  if (rule.untilMs !== undefined) all = all.filter((t) => t <= rule.untilMs!);
  return all;
}

function toText(rule: Rule, order: number[]): string {
  const list = (xs?: number[]) => xs?.join(",");
  const parts = [
    `FREQ=${rule.freq}`,
    `INTERVAL=${rule.interval}`,
    `WKST=${NAMES[rule.wkst - 1]}`,
    rule.byMonth && `BYMONTH=${list(rule.byMonth)}`,
    rule.byMonthDay && `BYMONTHDAY=${list(rule.byMonthDay)}`,
    rule.byDay && `BYDAY=${rule.byDay.map((d) => `${d.ordinal ?? ""}${NAMES[d.weekday - 1]}`)}`,
    rule.byHour && `BYHOUR=${list(rule.byHour)}`,
    rule.byMinute && `BYMINUTE=${list(rule.byMinute)}`,
    rule.bySetPos && `BYSETPOS=${list(rule.bySetPos)}`,
    rule.count !== undefined && `COUNT=${rule.count}`,
    rule.untilMs !== undefined &&
    `UNTIL=${new Date(rule.untilMs).toISOString().replace(/[-:]|\.\d{3}/g, "")}`,
  ].filter((p): p is string => typeof p === "string");
  // Rule parts in any order (RFC 5545 3.3.10).
  return order.map((i) => parts[i % parts.length]).filter((p, i, a) => a.indexOf(p) === i)
    .concat(parts).filter((p, i, a) => a.indexOf(p) === i).join(";");
}

const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 2 });
const few = <T>(arb: fc.Arbitrary<T>, max: number) =>
  fc.uniqueArray(arb, { minLength: 1, maxLength: max, selector: (x) => JSON.stringify(x) });

const ruleArb: fc.Arbitrary<Rule> = fc.constantFrom<Freq>("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
  .chain((freq) => {
    const ordinals = freq === "MONTHLY"
      ? [1, 2, 3, 4, 5, -1, -2]
      : freq === "YEARLY"
      ? [1, 2, 5, 20, 52, -1, -52]
      : [];
    const byDay = ordinals.length
      ? few(
        fc.record({
          weekday: fc.integer({ min: 1, max: 7 }),
          ordinal: fc.option(fc.constantFrom(...ordinals), { nil: undefined }),
        }, { requiredKeys: ["weekday"] }),
        3,
      )
      : few(fc.record({ weekday: fc.integer({ min: 1, max: 7 }) }), 3);
    return fc.record({
      freq: fc.constant(freq),
      interval: fc.constantFrom(1, 1, 2, 3),
      wkst: fc.integer({ min: 1, max: 7 }),
      byMonth: opt(few(fc.integer({ min: 1, max: 12 }), 4)),
      byMonthDay: freq === "WEEKLY"
        ? fc.constant(undefined)
        : opt(few(fc.constantFrom(1, 2, 13, 15, 28, 29, 30, 31, -1, -2, -31), 3)),
      byDay: opt(byDay),
      // Hours and minutes that fall in the zones' gaps and folds as well as elsewhere.
      byHour: opt(few(fc.constantFrom(0, 1, 2, 3, 8, 12, 23), 3)),
      byMinute: opt(few(fc.constantFrom(0, 15, 30, 45), 2)),
      bySetPos: opt(few(fc.constantFrom(1, 2, 3, -1, -2), 2)),
      count: opt(fc.integer({ min: 1, max: 8 })),
    }, { requiredKeys: ["freq", "interval", "wkst"] }) as fc.Arbitrary<Rule>;
  })
  // BYSETPOS selects from the set other BYxxx parts make (the production parser insists).
  .map((r) =>
    r.bySetPos && !r.byMonth && !r.byMonthDay && !r.byDay && !r.byHour && !r.byMinute
      ? { ...r, bySetPos: undefined }
      : r
  )
  // Refused by the validator: an ordinal weekday with BYMONTHDAY, and weekdays of a year both
  // with and without an ordinal.
  .map((r) =>
    r.byMonthDay && r.byDay?.some((d) => d.ordinal !== undefined)
      ? { ...r, byDay: r.byDay.map((d) => ({ weekday: d.weekday })) }
      : r
  ).map((r): Rule => r)
  // Refused by the validator: weekdays of a year both with and without an ordinal.
  .map((r) =>
    r.freq === "YEARLY" && !r.byMonth && r.byDay?.some((d) => d.ordinal !== undefined)
      ? { ...r, byDay: r.byDay.map((d) => ({ weekday: d.weekday, ordinal: d.ordinal ?? 1 })) }
      : r
  );

const ZONES = ["Australia/Lord_Howe", "America/Santiago", "America/New_York", "Europe/Chisinau"];
const zoneArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...ZONES) },
  { weight: 1, arbitrary: fc.constantFrom(...DST_ZONES) },
);

// DTSTART some days before one of the zone's transitions, at a whole minute.
const startArb = (tz: string) =>
  fc.record({
    year: fc.integer({ min: 2025, max: 2027 }),
    pick: fc.nat(),
    daysBefore: fc.integer({ min: 0, max: 60 }),
    minuteOfDay: fc.constantFrom(0, 30, 60, 90, 120, 135, 150, 180, 480, 1380, 1425),
  }).map(({ year, pick, daysBefore, minuteOfDay }) => {
    const trs = transitions(tz, year);
    const at = trs.length ? trs[pick % trs.length].at : Date.UTC(year, pick % 12, 1);
    const wall = (Math.floor((at + intlOffset(at, tz)) / DAY) - daysBefore) * DAY +
      minuteOfDay * MINUTE;
    return instantOf(wall, tz);
  });

// How far each frequency is followed: enough for several occurrences and a DST change or two.
const HORIZON: Record<Freq, number> = { DAILY: 75, WEEKLY: 150, MONTHLY: 800, YEARLY: 3000 };
const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

// The production series: nextOccurrence from one occurrence to the next, up to `n` of them.
function production(text: string, dtstart: number, tz: string, end: number, n: number) {
  const out: number[] = [dtstart];
  let after = dtstart;
  while (out.length < n) {
    const next = nextOccurrence(text, { dtstart: new Date(dtstart), tz, after: new Date(after) });
    if (!next || next.getTime() >= end) break;
    out.push(next.getTime());
    after = next.getTime();
  }
  return out;
}

const SEED = 20_261_201;
const RUNS = 600;
console.log(`rrule oracle: fast-check seed ${SEED}, ${RUNS} runs`);

Deno.test("property: the series agrees with a brute-force RFC 5545 oracle across DST zones", () => {
  let compared = 0;
  fc.assert(
    fc.property(
      ruleArb,
      zoneArb.chain((tz) => fc.tuple(fc.constant(tz), startArb(tz))),
      fc.array(fc.nat(), { minLength: 12, maxLength: 12 }),
      fc.boolean(),
      (rule, [tz, dtstart], order, withUntil) => {
        const endWall = dtstart + HORIZON[rule.freq] * DAY;
        // UNTIL (as an instant) instead of COUNT, somewhere inside the horizon.
        const r: Rule = withUntil && rule.count === undefined
          ? { ...rule, untilMs: dtstart + (order[0] % HORIZON[rule.freq]) * DAY }
          : rule;
        const text = toText(r, order);
        // The oracle runs a day past the end, so no wall time near the end is missed.
        const expected = oracle(r, dtstart, tz, endWall + 2 * DAY)
          .filter((t) => t < endWall - DAY).slice(0, 14);
        const got = production(text, dtstart, tz, endWall - DAY, 14);
        compared += expected.length;
        assert.deepEqual(got.map(iso), expected.map(iso), `${text} in ${tz}`);
      },
    ),
    { seed: SEED, numRuns: RUNS },
  );
  assert.ok(compared > RUNS * 3, `compared ${compared} occurrences`);
});

Deno.test("property: nextOccurrence after any instant is the oracle's first one after it", () => {
  fc.assert(
    fc.property(
      ruleArb,
      zoneArb.chain((tz) => fc.tuple(fc.constant(tz), startArb(tz))),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (rule, [tz, dtstart], where) => {
        const horizon = HORIZON[rule.freq] * DAY;
        const after = dtstart + Math.floor((where * horizon) / 2 / MINUTE) * MINUTE;
        const text = toText(rule, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].reverse());
        const expected = oracle(rule, dtstart, tz, dtstart + horizon + 2 * DAY)
          .find((t) => t > after);
        fc.pre(expected !== undefined && expected < dtstart + horizon);
        const got = nextOccurrence(text, {
          dtstart: new Date(dtstart),
          tz,
          after: new Date(after),
        });
        assert.equal(iso(got?.getTime() ?? null), iso(expected!), `${text} in ${tz}`);
      },
    ),
    { seed: SEED + 1, numRuns: RUNS },
  );
});
