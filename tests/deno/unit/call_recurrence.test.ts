// What follows an occurrence of a call series (shared/calls/recurrence.ts): the minimum gap kept
// across a DST change, late dispatches, and the reason a series ends.
import assert from "node:assert/strict";
import { occurrenceAfter, occurrencesAfterDispatch } from "../../../shared/calls/recurrence.ts";

const at = (s: string) => new Date(s);
const NY = "America/New_York";

Deno.test("an occurrence a spring-forward day brings within the minimum gap is left out", () => {
  // 01:30 and 03:00 (the 2nd and 3rd of 01:00, 01:30, 03:00, 03:30): 90 minutes apart, which
  // schedule_call accepts, but 30 on 8 March 2026, when 02:00 EST became 03:00 EDT.
  const series = {
    rrule: "FREQ=DAILY;BYHOUR=1,3;BYMINUTE=0,30;BYSETPOS=2,3",
    seriesStart: at("2026-03-01T06:30:00Z"),
    tz: NY,
  };
  assert.equal(
    occurrenceAfter(series, at("2026-03-07T06:30:00Z"))?.toISOString(),
    "2026-03-07T08:00:00.000Z",
    "the day before, 03:00 EST is 90 minutes after 01:30",
  );
  assert.equal(
    occurrenceAfter(series, at("2026-03-08T06:30:00Z"))?.toISOString(),
    "2026-03-09T05:30:00.000Z",
    "03:00 EDT, 30 minutes after 01:30 EST, is left out; next is 01:30 EDT on the 9th",
  );
});

Deno.test("a dispatch gives the next occurrence and the one after it", () => {
  const series = {
    rrule: "FREQ=WEEKLY;BYDAY=MO,TH",
    seriesStart: at("2026-05-04T13:00:00Z"),
    tz: NY,
  };
  assert.deepEqual(
    occurrencesAfterDispatch(series, at("2026-05-04T13:00:00Z"), at("2026-05-04T13:00:05Z")),
    {
      next_occurrence: "2026-05-07T13:00:00.000Z",
      following_occurrence: "2026-05-11T13:00:00.000Z",
    },
  );
  // Dispatched two weeks late: occurrences already past are not placed at once.
  assert.deepEqual(
    occurrencesAfterDispatch(series, at("2026-05-04T13:00:00Z"), at("2026-05-19T09:00:00Z")),
    {
      next_occurrence: "2026-05-21T13:00:00.000Z",
      following_occurrence: "2026-05-25T13:00:00.000Z",
    },
  );
});

Deno.test("a series that runs out, or whose rule no longer parses, ends with the reason", () => {
  const counted = { rrule: "FREQ=DAILY;COUNT=2", seriesStart: at("2026-05-04T13:00:00Z"), tz: NY };
  assert.deepEqual(
    occurrencesAfterDispatch(counted, at("2026-05-04T13:00:00Z"), at("2026-05-04T13:00:01Z")),
    { next_occurrence: "2026-05-05T13:00:00.000Z", following_occurrence: null },
  );
  assert.deepEqual(
    occurrencesAfterDispatch(counted, at("2026-05-05T13:00:00Z"), at("2026-05-05T13:00:01Z")),
    { series_end_reason: "the RRULE has no occurrence after this one" },
  );
  // Accepted by 8976604's SQL, refused now: a row from before this change.
  const old = {
    rrule: "FREQ=WEEKLY;BYMONTHDAY=1",
    seriesStart: at("2026-05-04T13:00:00Z"),
    tz: NY,
  };
  assert.deepEqual(
    occurrencesAfterDispatch(old, at("2026-05-04T13:00:00Z"), at("2026-05-04T13:00:01Z")),
    {
      series_end_reason:
        "the RRULE gives no next occurrence: BYMONTHDAY cannot be used with FREQ=WEEKLY (RFC 5545)",
    },
  );
});
