import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CALL_LIMITS,
  nextOccurrence,
  type NextOccurrenceOptions,
  parseRRule,
  RRuleError,
  validateRRule,
} from "../../../shared/time/rrule.ts";
import {
  epochDay,
  fromEpochDay,
  localParts,
  weekdayOf,
  zonedToInstant,
} from "../../../shared/time/zoned.ts";
import { DAY, DST_ZONES, SECOND, transitions, ZONES } from "../dst_oracle.ts";
import { loadRRuleCorpus, mismatch } from "../rrule_corpus.ts";

const WEEKDAYS = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8;BYMINUTE=30";

const at = (s: string) => new Date(s);
const iso = (d: Date | null) => d?.toISOString() ?? null;

// The occurrences after `after`, following the series one step at a time.
function series(rule: string, opts: NextOccurrenceOptions, n: number): (string | null)[] {
  const out: (string | null)[] = [];
  let after = opts.after;
  for (let i = 0; i < n; i++) {
    const next = nextOccurrence(rule, { ...opts, after });
    out.push(iso(next));
    if (!next) break;
    after = next;
  }
  return out;
}

Deno.test("validateRRule accepts the supported subset", () => {
  for (
    const rule of [
      WEEKDAYS,
      `RRULE:${WEEKDAYS}`,
      "freq=daily;interval=2",
      "FREQ=DAILY;BYDAY=SA,SU;COUNT=10;",
      "FREQ=MONTHLY;BYDAY=1MO,-1FR;BYHOUR=9,18;BYMINUTE=0",
      "FREQ=MONTHLY;BYMONTHDAY=1,15,-1;UNTIL=20261231T235959Z",
      "FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=FR;UNTIL=20270101",
      "FREQ=WEEKLY;WKST=SU;UNTIL=20270101T090000",
      "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",
      "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
    ]
  ) {
    assert.equal(validateRRule(rule), null, rule);
  }
  assert.deepEqual(parseRRule("RRULE:FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR,MO;BYHOUR=7"), {
    freq: "MONTHLY",
    interval: 2,
    byDay: [{ weekday: 5, ordinal: -1 }, { weekday: 1 }],
    byHour: [7],
  });
});

Deno.test("validateRRule names the bad part", () => {
  const cases: [string, string][] = [
    [
      "FREQ=SECONDLY",
      "FREQ=SECONDLY is not supported: calls recur at most daily (BYHOUR and BYMINUTE give several times a day)",
    ],
    ["FREQ=FORTNIGHTLY", "FREQ=FORTNIGHTLY is not a frequency"],
    ["FREQ=WEEKLY;BYDAY=XX", "BYDAY=XX is not a weekday"],
    ["FREQ=WEEKLY;BYDAY=MO,,TU", "BYDAY=MO,,TU has an empty item"],
    ["FREQ=WEEKLY;BYDAY=1MO", "BYDAY=1MO: an ordinal weekday needs FREQ=MONTHLY or YEARLY"],
    ["FREQ=MONTHLY;BYDAY=6MO", "BYDAY=6MO: the ordinal must be 1..5 or -5..-1"],
    ["FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY cannot be used with FREQ=WEEKLY (RFC 5545)"],
    ["FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY=32 is not a day of the month (1..31, -31..-1)"],
    ["FREQ=DAILY;BYHOUR=24", "BYHOUR=24 is not an hour (0..23)"],
    ["FREQ=DAILY;BYMINUTE=60", "BYMINUTE=60 is not a minute (0..59)"],
    ["FREQ=DAILY;INTERVAL=0", "INTERVAL=0 must be a whole number from 1 to 9999"],
    ["FREQ=DAILY;COUNT=2;UNTIL=20260101", "COUNT and UNTIL cannot both be given"],
    ["FREQ=DAILY;UNTIL=20260230", "UNTIL=20260230 is not a valid date"],
    ["FREQ=DAILY;BYSETPOS=1", "BYSETPOS needs another BYxxx rule part to select from"],
    ["FREQ=YEARLY;BYWEEKNO=1", "BYWEEKNO is not supported"],
    ["FREQ=DAILY;FOO=1", "FOO is not a recognised RRULE part"],
    ["FREQ=DAILY;FREQ=WEEKLY", "FREQ appears more than once"],
    ["FREQ=DAILY;COUNT", '"COUNT" is not a NAME=VALUE rule part'],
    ["INTERVAL=2", "FREQ is required"],
    ["RRULE:", "the RRULE is empty"],
  ];
  for (const [rule, message] of cases) assert.equal(validateRRule(rule), message, rule);
  assert.throws(() => parseRRule("FREQ=SECONDLY"), RRuleError);
  assert.throws(
    () => nextOccurrence("FREQ=HOURLY", { dtstart: new Date(0), tz: "UTC", after: new Date(0) }),
    (err) => err instanceof RRuleError && err.message.startsWith("FREQ=HOURLY is not supported"),
  );
});

Deno.test("weekdays at 08:30 stay 08:30 local across Chisinau's spring transition", () => {
  const tz = "Europe/Chisinau";
  const dtstart = zonedToInstant({ year: 2026, month: 3, day: 23, hour: 8, minute: 30 }, tz);
  assert.deepEqual(series(WEEKDAYS, { dtstart, tz, after: dtstart }, 6), [
    "2026-03-24T06:30:00.000Z",
    "2026-03-25T06:30:00.000Z",
    "2026-03-26T06:30:00.000Z",
    "2026-03-27T06:30:00.000Z",
    "2026-03-30T05:30:00.000Z", // the clocks went forward on Sunday the 29th
    "2026-03-31T05:30:00.000Z",
  ]);
});

// Regression (issue 8): 8976604 gave 2026-03-08T07:00:00.000Z, 03:00, a time the rule never names.
Deno.test("DAILY at 02:30 in the New York spring gap shifts by the gap, to 03:30 EDT", () => {
  const tz = "America/New_York";
  const rule = "FREQ=DAILY;BYHOUR=2;BYMINUTE=30";
  const dtstart = at("2026-03-01T07:30:00Z"); // 02:30 EST
  assert.deepEqual(series(rule, { dtstart, tz, after: at("2026-03-07T07:30:00Z") }, 2), [
    "2026-03-08T07:30:00.000Z", // 03:30 EDT: 02:30 with the offset from before the gap
    "2026-03-09T06:30:00.000Z", // 02:30 EDT
  ]);
});

// Regression (issue 8): 8976604 ignored WKST and gave the Monday-week series.
Deno.test("WKST is honoured: RFC 5545's INTERVAL=2;BYDAY=TU,SU example, WKST=SU and MO", () => {
  const tz = "America/New_York";
  const dtstart = at("1997-08-05T13:00:00Z"); // Tuesday 5 August 1997, 09:00 EDT
  const dates = (rule: string) =>
    series(rule, { dtstart, tz, after: dtstart }, 4).map((d) => d?.slice(0, 10));
  assert.deepEqual(dates("FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO"), [
    "1997-08-10",
    "1997-08-19",
    "1997-08-24",
    undefined,
  ]);
  assert.deepEqual(dates("FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU"), [
    "1997-08-17",
    "1997-08-19",
    "1997-08-31",
    undefined,
  ]);
});

// Regression (issue 8): 8976604 refused YEARLY, BYMONTH and BYSETPOS.
Deno.test("YEARLY, BYMONTH and BYSETPOS: Thanksgiving and the last weekday of the month", () => {
  const tz = "America/New_York";
  const dtstart = at("2026-01-05T15:00:00Z"); // 10:00 EST
  assert.deepEqual(
    series("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH", { dtstart, tz, after: dtstart }, 3),
    ["2026-11-26T15:00:00.000Z", "2027-11-25T15:00:00.000Z", "2028-11-23T15:00:00.000Z"],
  );
  assert.deepEqual(
    series("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", { dtstart, tz, after: dtstart }, 3),
    ["2026-01-30T15:00:00.000Z", "2026-02-27T15:00:00.000Z", "2026-03-31T14:00:00.000Z"],
  );
});

// Regression (issue 8): on 8976604 the first passed TypeScript and SQL refused it, the second
// the other way round; tests/corpus/rrules.json runs every case against both.
Deno.test("rule parts in any order; BYMONTHDAY with WEEKLY is refused (RFC 5545)", () => {
  assert.equal(validateRRule("INTERVAL=2;FREQ=DAILY"), null);
  assert.equal(
    validateRRule("FREQ=WEEKLY;BYMONTHDAY=1"),
    "BYMONTHDAY cannot be used with FREQ=WEEKLY (RFC 5545)",
  );
});

// Regression (issue 8): 8976604 accepted this, 288 calls a day.
Deno.test("guardrails: a rule ringing every 5 minutes, or more than the daily cap, is refused", () => {
  const hours = Array.from({ length: 24 }, (_, h) => h).join(",");
  const minutes = Array.from({ length: 12 }, (_, i) => i * 5).join(",");
  assert.equal(
    validateRRule(`FREQ=DAILY;BYHOUR=${hours};BYMINUTE=${minutes}`),
    "the RRULE recurs as often as every 5 minutes; the minimum gap between calls is 60 minutes",
  );
  assert.equal(
    validateRRule("FREQ=DAILY;BYHOUR=0,2,4,6,8,10,12,14,16,18,20,22"),
    "the RRULE gives up to 12 calls in a local day; the daily call cap is 10",
  );
  assert.equal(validateRRule("FREQ=DAILY;BYHOUR=8,9,10,11,12,13,14,15,16,17"), null, "ten");
  assert.equal(
    validateRRule("FREQ=DAILY;BYHOUR=8,9", { ...CALL_LIMITS, minGapMinutes: 90 }),
    "the RRULE recurs as often as every 60 minutes; the minimum gap between calls is 90 minutes",
    "the limits are a parameter",
  );
});

Deno.test("DAILY at a repeated New York time takes its first occurrence, once", () => {
  const tz = "America/New_York";
  const rule = "FREQ=DAILY;BYHOUR=1;BYMINUTE=30";
  const dtstart = at("2026-10-01T05:30:00Z");
  assert.deepEqual(series(rule, { dtstart, tz, after: at("2026-10-31T05:30:00Z") }, 2), [
    "2026-11-01T05:30:00.000Z", // 01:30 EDT
    "2026-11-02T06:30:00.000Z", // 01:30 EST the next day, not 06:30Z on the 1st
  ]);
});

Deno.test("several local times in one gap are a single occurrence", () => {
  const tz = "America/New_York";
  const rule = "FREQ=DAILY;BYHOUR=2,3;BYMINUTE=0,30";
  const dtstart = at("2026-03-01T07:00:00Z");
  assert.deepEqual(series(rule, { dtstart, tz, after: at("2026-03-08T06:00:00Z") }, 3), [
    "2026-03-08T07:00:00.000Z", // 02:00, 02:30 and 03:00 all resolve here
    "2026-03-08T07:30:00.000Z", // 03:30 EDT
    "2026-03-09T06:00:00.000Z", // 02:00 EDT
  ]);
  // Counted once for COUNT too: 4 on the 7th (dtstart first), 2 on the 8th, then the 7th one.
  const counted = `${rule};COUNT=7`;
  const from = { dtstart: at("2026-03-07T07:00:00Z"), tz, after: at("2026-03-08T07:30:00Z") };
  assert.deepEqual(series(counted, from, 2), ["2026-03-09T06:00:00.000Z", null]);
});

Deno.test("the time of day defaults to dtstart's local time, and dtstart comes first", () => {
  const tz = "Europe/Chisinau";
  const dtstart = at("2026-10-20T06:45:00Z"); // 09:45 EEST
  assert.equal(
    iso(nextOccurrence("FREQ=DAILY", { dtstart, tz, after: at("2026-01-01") })),
    iso(dtstart),
  );
  assert.deepEqual(series("FREQ=DAILY;INTERVAL=3", { dtstart, tz, after: dtstart }, 3), [
    "2026-10-23T06:45:00.000Z",
    "2026-10-26T07:45:00.000Z", // 09:45 EET
    "2026-10-29T07:45:00.000Z",
  ]);
  assert.deepEqual(
    series("FREQ=DAILY;BYHOUR=7", { dtstart, tz, after: dtstart }, 1),
    ["2026-10-21T04:45:00.000Z"],
    "BYHOUR alone keeps dtstart's minute",
  );
});

Deno.test("WEEKLY with INTERVAL counts weeks from dtstart's week (Monday-based)", () => {
  const tz = "UTC";
  const dtstart = at("2026-03-04T10:00:00Z"); // a Wednesday
  assert.deepEqual(
    series("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE", { dtstart, tz, after: dtstart }, 4),
    [
      "2026-03-16T10:00:00.000Z",
      "2026-03-18T10:00:00.000Z",
      "2026-03-30T10:00:00.000Z",
      "2026-04-01T10:00:00.000Z",
    ],
  );
  assert.deepEqual(series("FREQ=WEEKLY", { dtstart, tz, after: dtstart }, 1), [
    "2026-03-11T10:00:00.000Z",
  ]);
});

Deno.test("MONTHLY: by month day, from the end, ordinal weekdays, and their intersection", () => {
  const tz = "UTC";
  const dtstart = at("2026-01-31T09:00:00Z");
  const after = dtstart;
  assert.deepEqual(series("FREQ=MONTHLY", { dtstart, tz, after }, 3), [
    "2026-03-31T09:00:00.000Z", // months without a 31st are skipped
    "2026-05-31T09:00:00.000Z",
    "2026-07-31T09:00:00.000Z",
  ]);
  assert.deepEqual(series("FREQ=MONTHLY;BYMONTHDAY=-1", { dtstart, tz, after }, 2), [
    "2026-02-28T09:00:00.000Z",
    "2026-03-31T09:00:00.000Z",
  ]);
  assert.deepEqual(series("FREQ=MONTHLY;BYDAY=1MO,-1FR", { dtstart, tz, after }, 4), [
    "2026-02-02T09:00:00.000Z",
    "2026-02-27T09:00:00.000Z",
    "2026-03-02T09:00:00.000Z",
    "2026-03-27T09:00:00.000Z",
  ]);
  assert.deepEqual(series("FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13", { dtstart, tz, after }, 3), [
    "2026-02-13T09:00:00.000Z",
    "2026-03-13T09:00:00.000Z",
    "2026-11-13T09:00:00.000Z",
  ]);
  assert.deepEqual(series("FREQ=MONTHLY;BYDAY=SU", { dtstart, tz, after }, 2), [
    "2026-02-01T09:00:00.000Z",
    "2026-02-08T09:00:00.000Z",
  ]);
});

Deno.test("a rule that never matches again gives null instead of searching forever", () => {
  const dtstart = at("2026-04-30T09:00:00Z");
  const opts = { dtstart, tz: "UTC", after: dtstart };
  assert.equal(nextOccurrence("FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=31", opts), null);
  assert.equal(nextOccurrence("FREQ=DAILY;INTERVAL=5000", opts), null, "beyond ten years");
  assert.equal(nextOccurrence("FREQ=YEARLY;INTERVAL=9999;BYMONTH=1", opts), null);
  assert.equal(nextOccurrence("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", opts), null);
});

Deno.test("COUNT ends the series, counted from dtstart or from occurrencesSoFar", () => {
  const dtstart = at("2026-05-01T09:00:00Z");
  const opts = { dtstart, tz: "Europe/Chisinau", after: dtstart };
  assert.deepEqual(series("FREQ=DAILY;COUNT=3", opts, 4), [
    "2026-05-02T09:00:00.000Z",
    "2026-05-03T09:00:00.000Z",
    null,
  ]);
  const after = at("2026-05-02T09:00:00Z");
  assert.equal(nextOccurrence("FREQ=DAILY;COUNT=3", { ...opts, after, occurrencesSoFar: 3 }), null);
  assert.equal(
    iso(nextOccurrence("FREQ=DAILY;COUNT=3", { ...opts, after, occurrencesSoFar: 2 })),
    "2026-05-03T09:00:00.000Z",
  );
  assert.equal(
    iso(nextOccurrence("FREQ=DAILY;COUNT=1", { ...opts, after: at("2026-01-01") })),
    iso(dtstart),
  );
  assert.throws(
    () => nextOccurrence("FREQ=DAILY", { ...opts, occurrencesSoFar: -1 }),
    RangeError,
  );
});

Deno.test("UNTIL is inclusive, as an instant, a local date or a local date-time", () => {
  const tz = "America/New_York";
  const dtstart = at("2026-05-01T13:00:00Z"); // 09:00 EDT
  const opts = { dtstart, tz, after: at("2026-05-02T12:00:00Z") };
  const next = (until: string) => iso(nextOccurrence(`FREQ=DAILY;UNTIL=${until}`, opts));
  assert.equal(next("20260502T130000Z"), "2026-05-02T13:00:00.000Z");
  assert.equal(next("20260502T125959Z"), null);
  assert.equal(next("20260502"), "2026-05-02T13:00:00.000Z");
  assert.equal(next("20260501"), null);
  assert.equal(next("20260502T090000"), "2026-05-02T13:00:00.000Z");
  assert.equal(next("20260502T085959"), null);
});

// --- properties (the full comparison with an independent oracle is rrule_oracle.test.ts) ---

Deno.test("property: DAILY at a local time inside a gap shifts forward by the gap's length", () => {
  const gaps = DST_ZONES.flatMap((tz) =>
    transitions(tz, 2026).filter((tr) => tr.after > tr.before).map((tr) => ({ tz, tr }))
  );
  fc.assert(
    fc.property(fc.constantFrom(...gaps), fc.nat(), ({ tz, tr }, pick) => {
      // A whole minute inside the gap [at + before, at + after) of wall-clock time.
      const first = Math.ceil((tr.at + tr.before) / 60_000) * 60_000;
      const minutes = (tr.at + tr.after - first) / 60_000;
      fc.pre(minutes > 0);
      const wall = new Date(first + (pick % minutes) * 60_000);
      const hour = wall.getUTCHours();
      const minute = wall.getUTCMinutes();
      const date = {
        year: wall.getUTCFullYear(),
        month: wall.getUTCMonth() + 1,
        day: wall.getUTCDate(),
      };
      const rule = `FREQ=DAILY;BYHOUR=${hour};BYMINUTE=${minute}`;
      const dayBefore = fromEpochDay(epochDay(date) - 1);
      const dtstart = zonedToInstant({ ...fromEpochDay(epochDay(date) - 7), hour, minute }, tz);
      const after = zonedToInstant({ ...dayBefore, hour, minute }, tz);
      const next = nextOccurrence(rule, { dtstart, tz, after });
      // The wall time read with the offset in force before the gap.
      assert.equal(next?.getTime(), wall.getTime() - tr.before);
    }),
    { numRuns: 100, seed: 8_2026_1201 },
  );
});

Deno.test("property: weekdays at 08:30 never skip a weekday", () => {
  const anyZone = fc.oneof(
    fc.constantFrom("Europe/Chisinau", "America/New_York"),
    fc.constantFrom(...DST_ZONES),
    fc.constantFrom(...ZONES),
  );
  const nearTransition = (tz: string) =>
    fc.record({
      year: fc.integer({ min: 2021, max: 2035 }),
      pick: fc.nat(),
      delta: fc.integer({ min: -4 * 86_400, max: 4 * 86_400 }),
    }).map(({ year, pick, delta }) => {
      const trs = transitions(tz, year);
      const base = trs.length > 0
        ? trs[pick % trs.length].at
        : Date.UTC(year, 0, 1) + (pick % 365) * DAY;
      return new Date(base + delta * SECOND);
    });
  fc.assert(
    fc.property(
      anyZone.chain((tz) => fc.tuple(fc.constant(tz), nearTransition(tz))),
      ([tz, after]) => {
        const dtstart = zonedToInstant({ year: 2020, month: 1, day: 6, hour: 8, minute: 30 }, tz);
        const next = nextOccurrence(WEEKDAYS, { dtstart, tz, after });
        assert.ok(next, "the series never ends");
        assert.ok(next > after, "strictly after `after`");
        const local = localParts(next, tz);
        assert.ok(local.weekday <= 5, "on a weekday");
        const from = epochDay(localParts(after, tz));
        assert.ok(epochDay(local) - from <= 3, "at most three local days later");
        for (let day = from; day <= epochDay(local); day++) {
          const date = fromEpochDay(day);
          if (weekdayOf(date) > 5) continue;
          const t = zonedToInstant({ ...date, hour: 8, minute: 30 }, tz);
          assert.ok(!(t > after && t < next), `skipped ${t.toISOString()}`);
        }
      },
    ),
    { numRuns: 150, seed: 8_2026_1202 },
  );
});

Deno.test("the TypeScript validator decides every case of tests/corpus/rrules.json", async () => {
  const cases = await loadRRuleCorpus();
  assert.ok(cases.length >= 80);
  const wrong = cases.flatMap((c) => {
    const m = mismatch(c, validateRRule(c.rule));
    return m === null ? [] : [`${JSON.stringify(c.rule)}: ${m}`];
  });
  assert.deepEqual(wrong, []);
});
