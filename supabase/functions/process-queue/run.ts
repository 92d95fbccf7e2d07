// One process-queue run: a processor_runs row saying what it did, around
// re-dispatching lost analyses, dispatching due calls and delivering messages.
import type { Sql } from "../../../shared/db.ts";
import { redispatchAnalysisJobs } from "../../../shared/analysis/jobs.ts";
import {
  type ReconcileDeps,
  type ReconcileSummary,
  reconcileUnknownMessages,
} from "../../../shared/delivery/reconcile.ts";
import { planRecurrences } from "../../../shared/calls/recurrence.ts";
import {
  type CallDispatchDeps,
  type CallDispatchSummary,
  dispatchDueCalls,
} from "../../../shared/calls/dispatch.ts";
import {
  deliverDueMessages,
  type DeliveryDeps,
  type DeliverySummary,
  emptyDeliverySummary,
} from "../../../shared/delivery/processor.ts";

export interface RunRequest {
  source: string;
  timeBudgetMs: number;
  batchSize: number;
}

export interface RunSummary extends DeliverySummary {
  run_id: string;
  source: string;
  twilio: "configured" | "not configured";
  voice: "configured" | "not configured";
  calls_dispatched: number;
  calls_retried: number;
  calls_failed: number;
  analyses_redispatched: number;
  reconciled_found: number;
  reconciled_resent: number;
  reconciled_failed: number;
  reconcile_unresolved: number;
  duration_ms: number;
}

export interface RunDeps {
  sql: Sql;
  /** Null when Twilio is not configured: messages then stay queued. */
  delivery: Omit<DeliveryDeps, "sql" | "now"> | null;
  /** Null when VOICE_DISPATCH_URL is not set: calls then stay pending. */
  calls: Omit<CallDispatchDeps, "sql" | "now"> | null;
  /** Null when Twilio is not configured: unknown outcomes then wait. */
  reconcile:
    | (Omit<ReconcileDeps, "sql" | "now"> & { afterSeconds: number })
    | null;
  now: () => number;
  log: (message: string, fields?: Record<string, unknown>) => void;
  concurrency: number;
  leaseSeconds: number;
}

const NO_CALLS: CallDispatchSummary = { dispatched: 0, retried: 0, failed: 0 };
const NO_RECONCILE: ReconcileSummary = {
  found: 0,
  resent: 0,
  failed: 0,
  unresolved: 0,
};

/** The source of a run woken by an enqueue (request_fast_lane), not by the cron. */
export const FAST_LANE = "fast_lane";

/**
 * One run; a fast-lane run goes round again while wakes came in during it
 * (finish_fast_lane), within its time budget. Each round leaves its own
 * processor_runs row; the last round's summary is returned.
 */
export async function runProcessQueue(deps: RunDeps, req: RunRequest): Promise<RunSummary> {
  const deadline = deps.now() + req.timeBudgetMs;
  let summary = await runOnce(deps, req);
  while (req.source === FAST_LANE) {
    const [{ again }] = await deps.sql<{ again: boolean }[]>`
      select public.finish_fast_lane() as again`;
    const left = deadline - deps.now();
    if (!again || left < 100) break;
    summary = await runOnce(deps, { ...req, timeBudgetMs: left });
  }
  return summary;
}

async function runOnce(deps: RunDeps, req: RunRequest): Promise<RunSummary> {
  const started = deps.now();
  const deadline = started + req.timeBudgetMs;
  const [{ id }] = await deps.sql<{ id: string }[]>`
    insert into public.processor_runs (source) values (${req.source}) returning id::text`;
  try {
    // Analyses whose webhook was lost or failed go out again (cheap: SQL only).
    const analyses = await redispatchAnalysisJobs(deps.sql);
    // Whether or not calls are dispatched here: skip_scheduled_call needs the next
    // occurrence of each series schedule_call made.
    const planned = await planRecurrences({ sql: deps.sql, log: deps.log }, 20);
    if (planned > 0) deps.log("next occurrences of new call series computed", { planned });
    // Calls first: there are few, and a late call matters more than a late text.
    const calls = deps.calls
      ? await dispatchDueCalls(
        { ...deps.calls, sql: deps.sql, now: deps.now },
        {
          deadline,
          batchSize: 20,
          concurrency: deps.concurrency,
          timeoutMs: 10_000,
        },
      )
      : NO_CALLS;
    // Unknown outcomes before delivery, so what Twilio never got goes out in this run.
    const reconciled = deps.reconcile
      ? await reconcileUnknownMessages({
        ...deps.reconcile,
        sql: deps.sql,
        now: deps.now,
      }, {
        afterSeconds: deps.reconcile.afterSeconds,
        deadline,
        batchSize: 50,
        concurrency: deps.concurrency,
      })
      : NO_RECONCILE;
    const delivery = deps.delivery
      ? await deliverDueMessages({
        ...deps.delivery,
        sql: deps.sql,
        now: deps.now,
      }, {
        deadline,
        batchSize: req.batchSize,
        leaseSeconds: deps.leaseSeconds,
        concurrency: deps.concurrency,
      })
      : emptyDeliverySummary();
    const summary: RunSummary = {
      run_id: id,
      source: req.source,
      twilio: deps.delivery ? "configured" : "not configured",
      voice: deps.calls ? "configured" : "not configured",
      ...delivery,
      calls_dispatched: calls.dispatched,
      calls_retried: calls.retried,
      calls_failed: calls.failed,
      analyses_redispatched: analyses,
      reconciled_found: reconciled.found,
      reconciled_resent: reconciled.resent,
      reconciled_failed: reconciled.failed,
      reconcile_unresolved: reconciled.unresolved,
      duration_ms: Math.round(deps.now() - started),
    };
    await deps.sql`
      update public.processor_runs
         set finished_at = now(), summary = ${JSON.stringify(summary)}::text::jsonb
       where id = ${id}`;
    return summary;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await deps.sql`
      update public.processor_runs set finished_at = now(), error = ${message} where id = ${id}`;
    throw err;
  }
}
