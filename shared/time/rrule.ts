// The subset of RFC 5545 RRULE a personal assistant needs, evaluated in the user's wall-clock
// time so that "weekdays at 08:30" stays 08:30 local on both sides of a DST transition.
//
// Supported: FREQ=DAILY|WEEKLY|MONTHLY; INTERVAL; BYDAY (MO..SU; with FREQ=DAILY a filter, with
// WEEKLY the days of each week, with MONTHLY every such weekday or, with an ordinal 1..5 or
// -1..-5 such as 1MO or -1FR, the nth / nth-from-last one); BYMONTHDAY (FREQ=MONTHLY, 1..31 or
// -31..-1, intersected with BYDAY when both are given); BYHOUR; BYMINUTE; COUNT; UNTIL
// (YYYYMMDDTHHMMSSZ, YYYYMMDD meaning through that local day, or YYYYMMDDTHHMMSS in local time);
// WKST is checked and ignored (weeks start on Monday). Anything else is an RRuleError.

import {
  daysInMonth,
  epochDay,
  fromEpochDay,
  type LocalDate,
  type LocalDateTime,
  type LocalParts,
  localParts,
  weekdayOf,
  zonedToInstant,
} from "./zoned.ts";

export class RRuleError extends Error {
  override name = "RRuleError";
}

export type Frequency = "DAILY" | "WEEKLY" | "MONTHLY";
/** `weekday` is ISO (1 = Monday); `ordinal` (MONTHLY only) picks the nth, or nth-from-last. */
export type ByDay = { weekday: number; ordinal?: number };
export type Until =
  | { kind: "instant"; at: Date }
  | { kind: "date"; date: LocalDate }
  | { kind: "local"; local: LocalDateTime };

export type RRule = {
  freq: Frequency;
  interval: number;
  byDay?: ByDay[];
  byMonthDay?: number[];
  byHour?: number[];
  byMinute?: number[];
  count?: number;
  until?: Until;
};

export type NextOccurrenceOptions = {
  /** The series' first occurrence; it always counts as one, as in RFC 5545. */
  dtstart: Date;
  /** IANA zone whose wall clock the rule is evaluated in. */
  tz: string;
  after: Date;
  /**
   * For COUNT: occurrences that have already happened, dtstart included; trusted as given. When
   * omitted, the series is enumerated from dtstart to count them.
   */
  occurrencesSoFar?: number;
};

const WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];
const UNSUPPORTED_FREQS = new Set(["SECONDLY", "MINUTELY", "HOURLY", "YEARLY"]);
const UNSUPPORTED_PARTS = new Set(["BYSECOND", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS"]);
// How far past `after` to look before declaring that a rule never matches again.
const SEARCH_DAYS = 3653;

export function parseRRule(text: string): RRule {
  const body = text.trim().replace(/^RRULE:/i, "").replace(/;$/, "");
  if (body === "") throw new RRuleError("the RRULE is empty");
  const parts = new Map<string, string>();
  for (const part of body.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new RRuleError(`"${part}" is not a NAME=VALUE rule part`);
    const name = part.slice(0, eq).trim().toUpperCase();
    const value = part.slice(eq + 1).trim().toUpperCase();
    if (parts.has(name)) throw new RRuleError(`${name} appears more than once`);
    if (value === "") throw new RRuleError(`${name} has no value`);
    parts.set(name, value);
  }

  const freq = parts.get("FREQ");
  if (freq === undefined) throw new RRuleError("FREQ is required");
  if (UNSUPPORTED_FREQS.has(freq)) throw new RRuleError(`FREQ=${freq} is not supported`);
  if (freq !== "DAILY" && freq !== "WEEKLY" && freq !== "MONTHLY") {
    throw new RRuleError(`FREQ=${freq} is not a frequency`);
  }
  const rule: RRule = { freq, interval: 1 };
  for (const [name, value] of parts) {
    switch (name) {
      case "FREQ":
        break;
      case "INTERVAL":
        rule.interval = positiveInteger(name, value);
        break;
      case "COUNT":
        rule.count = positiveInteger(name, value);
        break;
      case "UNTIL":
        rule.until = parseUntil(value);
        break;
      case "BYDAY":
        rule.byDay = listOf(name, value).map((item) => parseByDay(item, freq));
        break;
      case "BYMONTHDAY":
        if (freq !== "MONTHLY") throw new RRuleError("BYMONTHDAY is only supported with MONTHLY");
        rule.byMonthDay = listOf(name, value).map((item) => {
          const day = /^[+-]?\d{1,2}$/.test(item) ? Number(item) : NaN;
          if (!(day >= 1 && day <= 31) && !(day >= -31 && day <= -1)) {
            throw new RRuleError(`BYMONTHDAY=${item} is not a day of the month (1..31, -31..-1)`);
          }
          return day;
        });
        break;
      case "BYHOUR":
        rule.byHour = listOf(name, value).map((item) => inRange(name, item, 23, "an hour"));
        break;
      case "BYMINUTE":
        rule.byMinute = listOf(name, value).map((item) => inRange(name, item, 59, "a minute"));
        break;
      case "WKST":
        if (!WEEKDAYS.includes(value)) throw new RRuleError(`WKST=${value} is not a weekday`);
        break;
      default:
        throw new RRuleError(
          UNSUPPORTED_PARTS.has(name)
            ? `${name} is not supported`
            : `${name} is not a recognised RRULE part`,
        );
    }
  }
  if (rule.count !== undefined && rule.until !== undefined) {
    throw new RRuleError("COUNT and UNTIL cannot both be given");
  }
  return rule;
}

/** The reason `text` is not a supported RRULE, or null when it is. */
export function validateRRule(text: string): string | null {
  try {
    parseRRule(text);
    return null;
  } catch (err) {
    if (err instanceof RRuleError) return err.message;
    throw err;
  }
}

/**
 * The first occurrence strictly after `opts.after`, or null when the series is over (COUNT,
 * UNTIL) or has no occurrence within ten years after `after`. Local times that fall in a DST gap
 * move to the first instant after it; repeated local times take their first occurrence.
 */
export function nextOccurrence(rrule: string, opts: NextOccurrenceOptions): Date | null {
  const rule = parseRRule(rrule);
  const { dtstart, tz, after, occurrencesSoFar } = opts;
  if (Number.isNaN(dtstart.getTime()) || Number.isNaN(after.getTime())) {
    throw new RangeError("dtstart and after must be valid dates");
  }
  if (
    occurrencesSoFar !== undefined && !(Number.isInteger(occurrencesSoFar) && occurrencesSoFar >= 0)
  ) {
    throw new RangeError("occurrencesSoFar must be a non-negative integer");
  }
  const start = localParts(dtstart, tz);
  const withinUntil = untilTest(rule.until, tz);
  if (
    rule.count !== undefined && occurrencesSoFar !== undefined && occurrencesSoFar >= rule.count
  ) {
    return null;
  }
  if (after < dtstart) return withinUntil(start, dtstart) ? dtstart : null;

  const counting = rule.count !== undefined && occurrencesSoFar === undefined;
  const afterLocal = localParts(after, tz);
  const lastDay = epochDay(afterLocal) + SEARCH_DAYS;
  // Earlier periods only hold local times before `after`'s, hence instants no later than it.
  const firstPeriod = counting ? 0 : Math.max(0, periodOf(rule, start, afterLocal));
  let seen = 1;
  for (const { local, instant } of instances(rule, start, tz, firstPeriod, lastDay)) {
    if (instant <= dtstart) continue;
    if (counting && ++seen > rule.count!) return null;
    if (instant <= after) continue;
    return withinUntil(local, instant) ? instant : null;
  }
  return null;
}

type Instance = { local: LocalDateTime; instant: Date };

// Rule instances in increasing order, from period `firstPeriod` (0 holds dtstart) through the
// last period starting on or before epoch day `lastDay`.
function* instances(
  rule: RRule,
  start: LocalParts,
  tz: string,
  firstPeriod: number,
  lastDay: number,
): Generator<Instance> {
  const times = timesOfDay(rule, start);
  let previous = -Infinity;
  for (let k = firstPeriod;; k++) {
    const { firstDay, dates } = period(rule, start, k);
    // Negated so that NaN (a huge INTERVAL leaving Date's range) also ends the search.
    if (!(firstDay <= lastDay)) return;
    for (const date of dates) {
      for (const time of times) {
        const local = { ...date, ...time };
        const instant = zonedToInstant(local, tz);
        // Local times inside one DST gap all land on the same instant: one occurrence.
        if (instant.getTime() <= previous) continue;
        previous = instant.getTime();
        yield { local, instant };
      }
    }
  }
}

function timesOfDay(rule: RRule, start: LocalParts) {
  const hours = sortedUnique(rule.byHour ?? [start.hour]);
  const minutes = sortedUnique(rule.byMinute ?? [start.minute]);
  return hours.flatMap((hour) => minutes.map((minute) => ({ hour, minute, second: start.second })));
}

function weekStart(date: LocalDate): number {
  return epochDay(date) - (weekdayOf(date) - 1);
}

function monthIndex(date: LocalDate): number {
  return date.year * 12 + date.month - 1;
}

// The index of the period (day, week or month, stepped by INTERVAL) that holds `date`.
function periodOf(rule: RRule, start: LocalDate, date: LocalDate): number {
  switch (rule.freq) {
    case "DAILY":
      return Math.floor((epochDay(date) - epochDay(start)) / rule.interval);
    case "WEEKLY":
      return Math.floor((weekStart(date) - weekStart(start)) / (7 * rule.interval));
    case "MONTHLY":
      return Math.floor((monthIndex(date) - monthIndex(start)) / rule.interval);
  }
}

function period(rule: RRule, start: LocalParts, k: number) {
  switch (rule.freq) {
    case "DAILY": {
      const firstDay = epochDay(start) + k * rule.interval;
      const date = fromEpochDay(firstDay);
      const weekday = weekdayOf(date);
      const matches = !rule.byDay || rule.byDay.some((d) => d.weekday === weekday);
      return { firstDay, dates: matches ? [date] : [] };
    }
    case "WEEKLY": {
      const firstDay = weekStart(start) + 7 * rule.interval * k;
      const weekdays = sortedUnique(rule.byDay?.map((d) => d.weekday) ?? [start.weekday]);
      return { firstDay, dates: weekdays.map((w) => fromEpochDay(firstDay + w - 1)) };
    }
    case "MONTHLY": {
      const index = monthIndex(start) + k * rule.interval;
      const year = Math.floor(index / 12);
      const month = index - year * 12 + 1;
      const firstDay = epochDay({ year, month, day: 1 });
      const length = daysInMonth(year, month);
      const dates: LocalDate[] = [];
      for (let day = 1; day <= length; day++) {
        if (monthlyMatch(rule, start, { year, month, day }, length)) {
          dates.push({ year, month, day });
        }
      }
      return { firstDay, dates };
    }
  }
}

function monthlyMatch(rule: RRule, start: LocalDate, date: LocalDate, length: number): boolean {
  const { byDay, byMonthDay } = rule;
  if (!byDay && !byMonthDay) return date.day === start.day;
  if (byMonthDay && !byMonthDay.some((d) => (d > 0 ? d : length + 1 + d) === date.day)) {
    return false;
  }
  if (!byDay) return true;
  const weekday = weekdayOf(date);
  const fromStart = Math.ceil(date.day / 7);
  const fromEnd = -(Math.floor((length - date.day) / 7) + 1);
  return byDay.some((d) =>
    d.weekday === weekday &&
    (d.ordinal === undefined || d.ordinal === fromStart || d.ordinal === fromEnd)
  );
}

function untilTest(
  until: Until | undefined,
  tz: string,
): (local: LocalDateTime, instant: Date) => boolean {
  if (!until) return () => true;
  switch (until.kind) {
    case "instant":
      return (_: LocalDateTime, instant: Date) => instant <= until.at;
    case "date":
      return (local: LocalDateTime) => epochDay(local) <= epochDay(until.date);
    case "local": {
      const last = zonedToInstant(until.local, tz);
      return (_: LocalDateTime, instant: Date) => instant <= last;
    }
  }
}

function parseUntil(value: string): Until {
  const m = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?$/.exec(value);
  if (!m) {
    throw new RRuleError(
      `UNTIL=${value} must be YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ`,
    );
  }
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const valid = month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month) &&
    year >= 1 && (m[4] === undefined || (hour <= 23 && minute <= 59 && second <= 59));
  if (!valid) throw new RRuleError(`UNTIL=${value} is not a valid date`);
  if (m[4] === undefined) return { kind: "date", date: { year, month, day } };
  if (m[7] === "") return { kind: "local", local: { year, month, day, hour, minute, second } };
  const at = new Date(Date.UTC(2000, 0, 1, hour, minute, second));
  at.setUTCFullYear(year, month - 1, day);
  return { kind: "instant", at };
}

function parseByDay(item: string, freq: Frequency): ByDay {
  const m = /^([+-]?\d{1,2})?([A-Z]{2})$/.exec(item);
  const weekday = m ? WEEKDAYS.indexOf(m[2]) + 1 : 0;
  if (!m || weekday === 0) throw new RRuleError(`BYDAY=${item} is not a weekday`);
  if (m[1] === undefined) return { weekday };
  if (freq !== "MONTHLY") {
    throw new RRuleError(`BYDAY=${item}: ordinal weekdays are only supported with MONTHLY`);
  }
  const ordinal = Number(m[1]);
  if (ordinal === 0 || Math.abs(ordinal) > 5) {
    throw new RRuleError(`BYDAY=${item}: the ordinal must be 1..5 or -5..-1`);
  }
  return { weekday, ordinal };
}

function listOf(name: string, value: string): string[] {
  const items = value.split(",").map((item) => item.trim());
  if (items.includes("")) throw new RRuleError(`${name}=${value} has an empty item`);
  return items;
}

function positiveInteger(name: string, value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : 0;
  if (!(n >= 1 && Number.isSafeInteger(n))) {
    throw new RRuleError(`${name}=${value} must be a positive integer`);
  }
  return n;
}

function inRange(name: string, item: string, max: number, what: string): number {
  const n = /^\d{1,2}$/.test(item) ? Number(item) : NaN;
  if (!(n >= 0 && n <= max)) throw new RRuleError(`${name}=${item} is not ${what} (0..${max})`);
  return n;
}

function sortedUnique(values: number[]): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}
