// Driving routines from tests: the run-routines function with its per-minute
// job paused (so a test's tick is the only one claiming), routines made due by
// moving next_run_at into the past rather than by waiting, and their runs.
import type { Sql } from "../../shared/db.ts";
import { db, functionUrl, stack, stackTest } from "./helpers.ts";

export interface TickSummary {
  planned: number;
  claimed: number;
  succeeded: number;
  retrying: number;
  failed: number;
  released: number;
  lost: number;
}

export async function runRoutinesTick(body: Record<string, unknown> = {}): Promise<TickSummary> {
  const res = await fetch(functionUrl("run-routines"), {
    method: "POST",
    headers: { authorization: `Bearer ${stack.secret}`, "content-type": "application/json" },
    body: JSON.stringify({ source: "test", time_budget_ms: 20_000, ...body }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`run-routines: ${res.status} ${text}`);
  return JSON.parse(text);
}

async function withoutRoutineCron(fn: () => Promise<void>): Promise<void> {
  await db()`update cron.job set active = false where jobname = 'run-routines'`;
  try {
    await fn();
  } finally {
    await db()`update cron.job set active = true where jobname = 'run-routines'`;
  }
}

/** A test whose ticks are its own: the per-minute run-routines job is paused meanwhile. */
export function routineTest(name: string, fn: () => Promise<void>): void {
  stackTest(name, () => withoutRoutineCron(fn));
}

export interface RoutineSpec {
  name?: string;
  steps: unknown[];
  rrule?: string;
  runAt?: Date;
  params?: Record<string, unknown>;
  missed?: "once" | "each";
}

export async function createRoutine(userId: string, r: RoutineSpec, sql: Sql = db()) {
  const [{ id }] = await sql<{ id: string }[]>`
    select public.create_routine(
      p_user_id := ${userId}, p_name := ${r.name ?? "test routine"},
      p_steps := ${JSON.stringify(r.steps)}::text::jsonb,
      p_rrule := ${r.rrule ?? null}, p_run_at := ${r.runAt ?? null}::timestamptz,
      p_params := ${JSON.stringify(r.params ?? {})}::text::jsonb,
      p_missed := ${r.missed ?? "once"})::text as id`;
  return id;
}

/**
 * Makes the routine's next occurrence one that came a minute ago, in a series that began a day
 * before it (an occurrence never comes before its series' start).
 */
export async function makeDue(routineId: string, sql: Sql = db()): Promise<void> {
  await sql`
    update public.routines
       set next_run_known = true, next_run_at = now() - interval '1 minute',
           series_start = least(series_start, now() - interval '1 day 1 minute')
     where id = ${routineId}`;
}

export interface RunRow {
  id: string;
  status: string;
  reason: string | null;
  failed_step: string | null;
  error: string | null;
  occurrence: string;
  local_time: string;
  // deno-lint-ignore no-explicit-any
  steps: Record<string, any>;
  attempt: number;
  claims: number;
}

export async function runsOf(routineId: string, sql: Sql = db()): Promise<RunRow[]> {
  return await sql<RunRow[]>`
    select r.id::text, r.status, r.reason, r.failed_step, r.error, r.attempt, r.claims, r.steps,
           to_char(r.occurrence at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as occurrence,
           to_char(r.occurrence at time zone u.timezone, 'Dy HH24:MI') as local_time
      from public.routine_runs r join public.users u on u.id = r.user_id
     where r.routine_id = ${routineId} order by r.occurrence, r.created_at`;
}

export async function messagesOf(userId: string, sql: Sql = db()) {
  return await sql<
    {
      id: string;
      final_message: string | null;
      priority: string;
      can_delay: boolean;
      status: string;
      idempotency_key: string | null;
      status_reason: string | null;
    }[]
  >`
    select id::text, final_message, priority, can_delay, status, idempotency_key, status_reason
      from public.message_queue where user_id = ${userId} order by created_at`;
}
