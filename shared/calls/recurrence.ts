// The RRULE arithmetic of scheduled calls that SQL cannot do: a series' next occurrence when
// one is dispatched, and the occurrence after each pending one, which SQL keeps on the row so
// that skip_scheduled_call can go on with the series (see 20261201000200_calls_rrule.sql).
import { z } from "zod";
import type { Sql } from "../db.ts";
import { CALL_LIMITS, type CallLimits, nextOccurrence } from "../time/rrule.ts";

export type Series = {
  rrule: string;
  /** The series' first occurrence: the RRULE's DTSTART. */
  seriesStart: Date;
  tz: string;
};

/**
 * The series' occurrence after `from` that keeps the minimum gap from it. A rule whose times
 * are the gap apart can bring two closer on a spring-forward day (01:30 and 03:00 in New York
 * are 30 minutes apart then); the later one is left out rather than ring too soon. Null when
 * the series has no further occurrence; RRuleError when the rule is not one this code accepts.
 */
export function occurrenceAfter(
  series: Series,
  from: Date,
  limits: CallLimits = CALL_LIMITS,
): Date | null {
  const opts = { dtstart: series.seriesStart, tz: series.tz };
  const earliest = from.getTime() + limits.minGapMinutes * 60_000;
  let next = nextOccurrence(series.rrule, { ...opts, after: from });
  while (next && next.getTime() < earliest) {
    next = nextOccurrence(series.rrule, { ...opts, after: next });
  }
  return next;
}

export type NextOccurrences = {
  next_occurrence?: string;
  /** The occurrence after next_occurrence; null when there is none. */
  following_occurrence?: string | null;
  series_end_reason?: string;
};

/**
 * What follows a dispatched occurrence scheduled at `scheduledFor`. A call dispatched late
 * (retries, an outage) skips occurrences already past rather than placing them at once.
 */
export function occurrencesAfterDispatch(
  series: Series,
  scheduledFor: Date,
  now: Date,
): NextOccurrences {
  try {
    let next = occurrenceAfter(series, scheduledFor);
    if (next && next <= now) next = occurrenceAfter(series, now);
    if (!next) return { series_end_reason: "the RRULE has no occurrence after this one" };
    const following = occurrenceAfter(series, next);
    return {
      next_occurrence: next.toISOString(),
      following_occurrence: following?.toISOString() ?? null,
    };
  } catch (err) {
    return {
      series_end_reason: `the RRULE gives no next occurrence: ${
        err instanceof Error ? err.message : String(err)
      }`,
    };
  }
}

const unplanned = z.array(z.object({
  id: z.string(),
  rrule: z.string(),
  scheduled_for: z.string(),
  series_start: z.string(),
  timezone: z.string(),
}));

/**
 * Computes, for pending occurrences that schedule_call made, the time of the series' next
 * occurrence, and records it. A rule this code cannot evaluate records none: skipping then
 * ends the series, as dispatching would. Returns how many were recorded.
 */
export async function planRecurrences(
  deps: { sql: Sql; log: (msg: string, fields?: Record<string, unknown>) => void },
  batchSize: number,
): Promise<number> {
  const [{ calls }] = await deps.sql<{ calls: unknown }[]>`
    select public.unplanned_recurrences(${batchSize}) as calls`;
  const rows = unplanned.parse(calls);
  if (rows.length === 0) return 0;
  const results = rows.map((row) => {
    const series = { rrule: row.rrule, seriesStart: new Date(row.series_start), tz: row.timezone };
    try {
      const next = occurrenceAfter(series, new Date(row.scheduled_for));
      return { id: row.id, next_occurrence: next?.toISOString() ?? null };
    } catch (err) {
      deps.log("call series has no next occurrence", { call_id: row.id, error: String(err) });
      return { id: row.id, next_occurrence: null };
    }
  });
  const [{ recorded }] = await deps.sql<{ recorded: number }[]>`
    select public.record_next_occurrences(${JSON.stringify(results)}::text::jsonb) as recorded`;
  return recorded;
}
