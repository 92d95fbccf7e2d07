import assert from "node:assert/strict";
import fc from "fast-check";
import {
  addLocalDays,
  daysInMonth,
  epochDay,
  fromEpochDay,
  isValidTimeZone,
  type LocalDateTime,
  localParts,
  weekdayOf,
  zonedToInstant,
} from "../../../shared/time/zoned.ts";
import {
  DAY,
  DST_ZONES,
  intlOffset,
  SECOND,
  type Transition,
  transitions,
  ZONES,
} from "../dst_oracle.ts";

// What the spec says a wall-clock reading (as UTC ms) near an isolated transition resolves to.
function expectedInstant(wall: number, tr: Transition): number {
  if (wall < tr.at + tr.before) return wall - tr.before; // before the change (first occurrence)
  if (wall >= tr.at + tr.after) return wall - tr.after;
  return tr.at; // in the gap: the first instant after it
}

const wallOf = (l: LocalDateTime) =>
  Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second);
const localOf = (wall: number): LocalDateTime => {
  const d = new Date(wall);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
  };
};
const iso = (d: Date) => d.toISOString();

Deno.test("isValidTimeZone accepts every zone Intl lists and rejects non-IANA strings", () => {
  for (const tz of ZONES) assert.ok(isValidTimeZone(tz), tz);
  for (const tz of ["UTC", "Etc/GMT+5", "US/Eastern", "EST5EDT"]) {
    assert.ok(isValidTimeZone(tz), tz);
  }
  for (
    const tz of [
      "",
      "EST5EDT,M3.2.0,M11.1.0",
      "posix/America/New_York",
      "right/UTC",
      "+05:30",
      "Mars/Olympus_Mons",
    ]
  ) {
    assert.equal(isValidTimeZone(tz), false, tz);
  }
});

Deno.test("localParts reads the wall clock and ISO weekday", () => {
  assert.deepEqual(localParts(new Date("2026-03-08T07:00:00.999Z"), "America/New_York"), {
    year: 2026,
    month: 3,
    day: 8,
    hour: 3,
    minute: 0,
    second: 0,
    weekday: 7,
  });
  assert.equal(localParts(new Date("2026-03-09T12:00:00Z"), "Asia/Kolkata").weekday, 1);
  assert.equal(localParts(new Date("-000100-06-01T12:00:00Z"), "UTC").year, -100);
  assert.throws(() => localParts(new Date(NaN), "UTC"), RangeError);
  assert.throws(() => localParts(new Date(0), "Nowhere/City"), RangeError);
});

Deno.test("America/New_York: a time in the spring gap moves to the end of the gap", () => {
  const ny = (day: number, hour: number, minute: number, second = 0) =>
    iso(zonedToInstant({ year: 2026, month: 3, day, hour, minute, second }, "America/New_York"));
  assert.equal(ny(8, 2, 30), "2026-03-08T07:00:00.000Z");
  assert.equal(ny(8, 2, 0), "2026-03-08T07:00:00.000Z");
  assert.equal(ny(8, 1, 59, 59), "2026-03-08T06:59:59.000Z");
  assert.equal(ny(8, 3, 0), "2026-03-08T07:00:00.000Z");
  assert.equal(ny(8, 3, 30), "2026-03-08T07:30:00.000Z");
});

Deno.test("America/New_York: a repeated autumn time takes its first occurrence", () => {
  const local = { year: 2026, month: 11, day: 1, hour: 1, minute: 30 };
  assert.equal(iso(zonedToInstant(local, "America/New_York")), "2026-11-01T05:30:00.000Z");
  // The second 01:30 (EST) exists and reads the same, but is not chosen.
  const second = localParts(new Date("2026-11-01T06:30:00Z"), "America/New_York");
  assert.deepEqual([second.hour, second.minute], [1, 30]);
  assert.equal(
    iso(zonedToInstant({ ...local, hour: 2, minute: 0 }, "America/New_York")),
    "2026-11-01T07:00:00.000Z",
  );
});

Deno.test("Europe/Chisinau: 2026 transitions, as Intl reports them, follow the rules", () => {
  const tz = "Europe/Chisinau";
  const found = transitions(tz, 2026);
  assert.equal(found.length, 2);
  const [spring, autumn] = found;
  for (const [tr, month] of [[spring, 3], [autumn, 10]] as const) {
    const at = localParts(new Date(tr.at), tz);
    assert.equal(at.month, month);
    assert.equal(at.weekday, 7, "on a Sunday");
    assert.ok(at.day + 7 > daysInMonth(2026, month), "the last Sunday of the month");
  }
  assert.equal(spring.after - spring.before, 3_600_000);
  assert.equal(autumn.after - autumn.before, -3_600_000);

  // Spring: the local hour [T + before, T + after) does not exist.
  const gapStart = localOf(spring.at + spring.before);
  const inGap = { ...gapStart, minute: 30 };
  assert.equal(zonedToInstant(inGap, tz).getTime(), spring.at);
  assert.deepEqual(localParts(new Date(spring.at), tz), {
    ...localOf(spring.at + spring.after),
    weekday: 7,
  });
  // Autumn: the local hour [T + after, T + before) happens twice; the first one wins.
  const repeated = localOf(autumn.at + autumn.after + 30 * 60 * SECOND);
  assert.equal(zonedToInstant(repeated, tz).getTime(), autumn.at - 30 * 60 * SECOND);
});

Deno.test("Australia/Lord_Howe: 30-minute shifts", () => {
  const tz = "Australia/Lord_Howe";
  const gap = { year: 2026, month: 10, day: 4, hour: 2, minute: 15 };
  assert.equal(iso(zonedToInstant(gap, tz)), "2026-10-03T15:30:00.000Z");
  const repeated = { year: 2026, month: 4, day: 5, hour: 1, minute: 45 };
  assert.equal(iso(zonedToInstant(repeated, tz)), "2026-04-04T14:45:00.000Z");
  const shifts = transitions(tz, 2026).map((tr) => tr.after - tr.before);
  assert.deepEqual(shifts, [-30 * 60 * SECOND, 30 * 60 * SECOND]);
});

Deno.test("Pacific/Apia: a skipped calendar day moves to the next midnight", () => {
  const skipped = { year: 2011, month: 12, day: 30, hour: 12, minute: 0 };
  assert.equal(iso(zonedToInstant(skipped, "Pacific/Apia")), "2011-12-30T10:00:00.000Z");
  assert.equal(localParts(new Date("2011-12-30T10:00:00Z"), "Pacific/Apia").day, 31);
});

Deno.test("zonedToInstant rejects impossible dates and unknown zones", () => {
  const ok = { year: 2026, month: 2, day: 28, hour: 0, minute: 0 };
  assert.throws(() => zonedToInstant({ ...ok, day: 29 }, "UTC"), RangeError);
  assert.throws(() => zonedToInstant({ ...ok, hour: 24 }, "UTC"), RangeError);
  assert.throws(() => zonedToInstant({ ...ok, minute: 1.5 }, "UTC"), RangeError);
  assert.throws(() => zonedToInstant(ok, "EST5EDT,M3.2.0,M11.1.0"), RangeError);
  assert.equal(iso(zonedToInstant(ok, "UTC")), "2026-02-28T00:00:00.000Z");
  assert.equal(
    iso(zonedToInstant({ year: 50, month: 1, day: 1, hour: 0, minute: 0 }, "UTC")),
    "0050-01-01T00:00:00.000Z",
  );
});

Deno.test("calendar helpers", () => {
  assert.deepEqual([2024, 2023, 1900, 2000].map((y) => daysInMonth(y, 2)), [29, 28, 28, 29]);
  assert.equal(daysInMonth(2026, 4), 30);
  assert.equal(epochDay({ year: 1970, month: 1, day: 1 }), 0);
  assert.equal(weekdayOf({ year: 2026, month: 3, day: 8 }), 7);
  assert.equal(weekdayOf({ year: 1969, month: 12, day: 29 }), 1);
  assert.deepEqual(addLocalDays({ year: 2024, month: 2, day: 28 }, 1), {
    year: 2024,
    month: 2,
    day: 29,
  });
  assert.deepEqual(addLocalDays({ year: 2026, month: 1, day: 1 }, -1), {
    year: 2025,
    month: 12,
    day: 31,
  });
  fc.assert(
    fc.property(fc.integer({ min: -700_000, max: 2_900_000 }), (n) => {
      const date = fromEpochDay(n);
      assert.equal(epochDay(date), n);
      assert.equal(weekdayOf(date), ((new Date(n * DAY).getUTCDay() + 6) % 7) + 1);
    }),
  );
});

// Zones that observe DST in 2026 are where the interesting cases are; weight them up.
const zone = fc.oneof(
  { arbitrary: fc.constantFrom(...DST_ZONES), weight: 4 },
  { arbitrary: fc.constantFrom(...ZONES), weight: 1 },
);
// An instant within two days of one of the zone's transitions in the year (or anywhere in the
// year when it has none), whole seconds.
const nearTransition = fc
  .record({
    tz: zone,
    year: fc.integer({ min: 1995, max: 2037 }),
    pick: fc.nat(),
    delta: fc.integer({ min: -2 * 86_400, max: 2 * 86_400 }),
  })
  .map(({ tz, year, pick, delta }) => {
    const trs = transitions(tz, year);
    const tr = trs.length > 0 ? trs[pick % trs.length] : undefined;
    const base = tr ? tr.at : Date.UTC(year, 0, 1) + (pick % 365) * DAY;
    return { tz, tr, t: base + delta * SECOND };
  });

Deno.test("property: localParts agrees with Intl's offset", () => {
  fc.assert(
    fc.property(nearTransition, ({ tz, t }) => {
      assert.equal(wallOf(localParts(new Date(t), tz)), t + intlOffset(t, tz));
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: zonedToInstant(localParts(x)) is x unless x is a repeated time's 2nd run", () => {
  fc.assert(
    fc.property(nearTransition, ({ tz, tr, t }) => {
      const parts = localParts(new Date(t), tz);
      const back = zonedToInstant(parts, tz).getTime();
      const repeatedLater = tr !== undefined && tr.after < tr.before && t >= tr.at &&
        wallOf(parts) < tr.at + tr.before;
      if (repeatedLater) {
        assert.equal(back, t - (tr.before - tr.after), "the first occurrence");
      } else {
        assert.equal(back, t);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: any local time resolves to itself, or to the first instant after a gap", () => {
  fc.assert(
    fc.property(nearTransition, ({ tz, tr, t }) => {
      // Read the generated instant as a wall-clock reading on the transition's local timeline.
      const wall = tr ? t + tr.before : t;
      const result = zonedToInstant(localOf(wall), tz).getTime();
      const got = wallOf(localParts(new Date(result), tz));
      if (got !== wall) {
        assert.ok(got > wall, "after the requested time");
        assert.ok(wallOf(localParts(new Date(result - SECOND), tz)) < wall, "right after the gap");
      }
      if (tr) assert.equal(result, expectedInstant(wall, tr));
    }),
    { numRuns: 300 },
  );
});
