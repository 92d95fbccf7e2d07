// Wall-clock arithmetic in IANA time zones on top of Intl, so schedules follow the runtime's
// tz data (DST included) without shipping a tz database of our own.

export type LocalDate = { year: number; month: number; day: number };
export type LocalDateTime = LocalDate & { hour: number; minute: number; second: number };
/** `weekday` is ISO: 1 = Monday … 7 = Sunday. */
export type LocalParts = LocalDateTime & { weekday: number };
export type LocalInput = LocalDate & { hour: number; minute: number; second?: number };

const SECOND = 1000;
const DAY = 86_400_000;

// Building a DateTimeFormat costs far more than using one; valid zones only, so the cache is
// bounded by the set of names Intl accepts.
const formatters = new Map<string, Intl.DateTimeFormat>();

/**
 * True for time-zone names Intl accepts, except POSIX TZ rules (contain ','), the tzdata
 * "posix/" and "right/" trees, and UTC offsets such as "+05:30", none of which are IANA names.
 */
export function isValidTimeZone(tz: string): boolean {
  if (formatters.has(tz)) return true;
  if (tz === "" || tz.includes(",") || /^(posix|right)\//i.test(tz) || /^[+-]/.test(tz)) {
    return false;
  }
  try {
    formatters.set(
      tz,
      new Intl.DateTimeFormat("en-US", {
        timeZone: tz,
        hourCycle: "h23",
        era: "short",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        second: "numeric",
      }),
    );
    return true;
  } catch {
    return false;
  }
}

function formatter(tz: string): Intl.DateTimeFormat {
  if (!isValidTimeZone(tz)) throw new RangeError(`invalid time zone: ${JSON.stringify(tz)}`);
  return formatters.get(tz)!;
}

/** The wall-clock reading of `instant` in `tz` (milliseconds dropped). */
export function localParts(instant: Date, tz: string): LocalParts {
  const t = instant.getTime();
  if (!Number.isFinite(t)) throw new RangeError("invalid date");
  const p: Record<string, string> = {};
  for (const { type, value } of formatter(tz).formatToParts(t)) p[type] = value;
  // en-US counts years before 1 AD as "n BC"; the proleptic year is 1 - n.
  const year = p.era === "BC" ? 1 - Number(p.year) : Number(p.year);
  const date = { year, month: Number(p.month), day: Number(p.day) };
  return {
    ...date,
    hour: Number(p.hour),
    minute: Number(p.minute),
    second: Number(p.second),
    weekday: weekdayOf(date),
  };
}

/**
 * The instant at which the wall clock in `tz` reads `local`. A reading that occurs twice
 * (clocks set back) resolves to its first occurrence; one that never occurs (clocks set forward)
 * resolves to the first instant after the gap. Years 1–9999 only.
 */
export function zonedToInstant(local: LocalInput, tz: string): Date {
  const wall = { ...local, second: local.second ?? 0 };
  assertLocalDateTime(wall);
  const target = wallMs(wall);
  const cache = new Map<number, number>();
  const offsetAt = (t: number) => {
    let offset = cache.get(t);
    if (offset === undefined) {
      offset = wallMs(localParts(new Date(t), tz)) - t;
      cache.set(t, offset);
    }
    return offset;
  };
  // Every solution lies within a day of `target` (offsets are under 24h); the offsets at both
  // ends cover one transition, and following each candidate picks up a second one if present.
  const offsets = new Set([offsetAt(target - DAY), offsetAt(target + DAY)]);
  for (const offset of [...offsets]) offsets.add(offsetAt(target - offset));
  const solutions = [...offsets]
    .map((offset) => target - offset)
    .filter((t) => offsetAt(t) === target - t);
  if (solutions.length > 0) return new Date(Math.min(...solutions));
  // In a gap: the wall clock jumps over `target` at a transition, which need not be on the hour,
  // so bisect (whole seconds) between an instant reading earlier and one reading later.
  let before = target - DAY;
  let after = target + DAY;
  while (after - before > SECOND) {
    const mid = before + Math.floor((after - before) / 2 / SECOND) * SECOND;
    if (mid + offsetAt(mid) < target) before = mid;
    else after = mid;
  }
  return new Date(after);
}

function isLeapYear(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

export function daysInMonth(year: number, month: number): number {
  if (month === 2) return isLeapYear(year) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Days since 1970-01-01 in the proleptic Gregorian calendar. */
export function epochDay(date: LocalDate): number {
  return Math.floor(wallMs({ ...date, hour: 0, minute: 0, second: 0 }) / DAY);
}

export function fromEpochDay(days: number): LocalDate {
  const d = new Date(days * DAY);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

export function addLocalDays(date: LocalDate, days: number): LocalDate {
  return fromEpochDay(epochDay(date) + days);
}

/** ISO weekday: 1 = Monday … 7 = Sunday. */
export function weekdayOf(date: LocalDate): number {
  // 1970-01-01 was a Thursday (4).
  return ((((epochDay(date) + 3) % 7) + 7) % 7) + 1;
}

// The wall-clock reading as if it were UTC, in milliseconds.
function wallMs(l: LocalDateTime): number {
  const d = new Date(Date.UTC(2000, 0, 1, l.hour, l.minute, l.second));
  // Date.UTC maps years 0–99 to 1900–1999; setUTCFullYear does not.
  d.setUTCFullYear(l.year, l.month - 1, l.day);
  return d.getTime();
}

function assertLocalDateTime(l: LocalDateTime): void {
  const ok = [l.year, l.month, l.day, l.hour, l.minute, l.second].every(Number.isInteger) &&
    l.year >= 1 && l.year <= 9999 && l.month >= 1 && l.month <= 12 && l.day >= 1 &&
    l.day <= daysInMonth(l.year, l.month) && l.hour >= 0 && l.hour <= 23 && l.minute >= 0 &&
    l.minute <= 59 && l.second >= 0 && l.second <= 59;
  if (!ok) throw new RangeError(`invalid local date-time: ${JSON.stringify(l)}`);
}
