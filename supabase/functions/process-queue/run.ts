// One process-queue run: a processor_runs row saying what it did, around the
// delivery loop.
import type { Sql } from "../../../shared/db.ts";
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
  calls_dispatched: number;
  analyses_redispatched: number;
  duration_ms: number;
}

export interface RunDeps {
  sql: Sql;
  /** Null when Twilio is not configured: messages then stay queued. */
  delivery: Omit<DeliveryDeps, "sql" | "now"> | null;
  now: () => number;
  concurrency: number;
  leaseSeconds: number;
}

export async function runProcessQueue(deps: RunDeps, req: RunRequest): Promise<RunSummary> {
  const started = deps.now();
  const [{ id }] = await deps.sql<{ id: string }[]>`
    insert into public.processor_runs (source) values (${req.source}) returning id::text`;
  try {
    const delivery = deps.delivery
      ? await deliverDueMessages({ ...deps.delivery, sql: deps.sql, now: deps.now }, {
        deadline: started + req.timeBudgetMs,
        batchSize: req.batchSize,
        leaseSeconds: deps.leaseSeconds,
        concurrency: deps.concurrency,
      })
      : emptyDeliverySummary();
    const summary: RunSummary = {
      run_id: id,
      source: req.source,
      twilio: deps.delivery ? "configured" : "not configured",
      ...delivery,
      calls_dispatched: 0,
      analyses_redispatched: 0,
      duration_ms: Math.round(deps.now() - started),
    };
    await deps.sql`
      update public.processor_runs set finished_at = now(), summary = ${JSON.stringify(summary)}::text::jsonb
       where id = ${id}`;
    return summary;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await deps.sql`
      update public.processor_runs set finished_at = now(), error = ${message} where id = ${id}`;
    throw err;
  }
}
