// The next occurrence of a routine's RRULE, in the user's time zone, with the
// calls' engine (shared/time/rrule.ts). With missed 'once' (the default) a
// routine whose occurrences went by while nothing ran (the project was down)
// gets one run, for the latest of them, and then goes on from now; with 'each'
// every occurrence runs, oldest first.
import { z } from "zod";
import type { Sql } from "../db.ts";
import { nextOccurrence } from "../time/rrule.ts";

export interface PlanInput {
  rrule: string;
  seriesStart: Date;
  /** The occurrence last made into a run; null before the first. */
  planAfter: Date | null;
  timezone: string;
  missed: "once" | "each";
}

// A daily rule missed for ten years is 3,650 steps; past that, the latest is skipped to.
const MAX_CATCH_UP = 5000;

/** The occurrence to run next (perhaps already due), or null when the series is over. */
export function nextRunAt(p: PlanInput, now: Date): Date | null {
  const opts = { dtstart: p.seriesStart, tz: p.timezone };
  const next = nextOccurrence(p.rrule, { ...opts, after: p.planAfter ?? p.seriesStart });
  if (!next || p.missed === "each" || next > now) return next;
  // Missed: the latest occurrence not after now, run once.
  let latest = next;
  for (let i = 0; i < MAX_CATCH_UP; i++) {
    const following = nextOccurrence(p.rrule, { ...opts, after: latest });
    if (!following || following > now) return latest;
    latest = following;
  }
  return latest;
}

const toPlan = z.array(z.object({
  id: z.string(),
  rrule: z.string(),
  series_start: z.string(),
  plan_after: z.string().nullable(),
  missed: z.enum(["once", "each"]),
  timezone: z.string(),
}));

/** Computes and records the next occurrence of routines waiting for one; returns how many. */
export async function planRoutines(
  deps: { sql: Sql; now: () => number; log: (msg: string, f?: Record<string, unknown>) => void },
  batchSize: number,
): Promise<number> {
  const [{ routines }] = await deps.sql<{ routines: unknown }[]>`
    select public.routines_to_plan(${batchSize}) as routines`;
  const rows = toPlan.parse(routines);
  if (rows.length === 0) return 0;
  const now = new Date(deps.now());
  const results = rows.map((row) => {
    try {
      const next = nextRunAt({
        rrule: row.rrule,
        seriesStart: new Date(row.series_start),
        planAfter: row.plan_after ? new Date(row.plan_after) : null,
        timezone: row.timezone,
        missed: row.missed,
      }, now);
      return { id: row.id, plan_after: row.plan_after, next_run_at: next?.toISOString() ?? null };
    } catch (err) {
      deps.log("routine has no next occurrence", { routine_id: row.id, error: String(err) });
      const reason = `the RRULE gives no next occurrence: ${(err as Error).message}`;
      return { id: row.id, plan_after: row.plan_after, next_run_at: null, reason };
    }
  });
  const [{ recorded }] = await deps.sql<{ recorded: number }[]>`
    select public.record_routine_plans(${JSON.stringify(results)}::text::jsonb) as recorded`;
  return recorded;
}
