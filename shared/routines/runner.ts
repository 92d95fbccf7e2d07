// One run-routines tick: plan the next occurrences, then claim due runs under a
// lease and execute their steps in order, each recorded as it finishes, until
// nothing is due or the time budget is spent. A run cut off by the budget is
// released and resumed by the next tick after its last finished step.
import { z } from "zod";
import { mapLimit } from "../concurrency.ts";
import type { Sql } from "../db.ts";
import type { Tx } from "../agents/tools.ts";
import { localParts } from "../time/zoned.ts";
import { conditionHolds } from "./conditions.ts";
import { planRoutines } from "./plan.ts";
import { STEP_TOOLS, type StepToolName } from "./schemas.ts";
import {
  IN_TRANSACTION,
  OUTSIDE,
  type StepDeps,
  StepError,
  type StepResult,
  type StepTarget,
} from "./steps.ts";
import { render, type Scope } from "./templates.ts";

export interface RunnerDeps extends StepDeps {
  sql: Sql;
  /** Monotonic milliseconds, for durations. */
  clock: () => number;
  log: (message: string, fields?: Record<string, unknown>) => void;
}

export interface RunnerOptions {
  timeBudgetMs: number;
  batchSize: number;
  concurrency: number;
  leaseSeconds: number;
}

export interface RunnerSummary {
  planned: number;
  claimed: number;
  succeeded: number;
  retrying: number;
  failed: number;
  released: number;
  lost: number;
}

const stepDef = z.object({
  id: z.string(),
  uses: z.string(),
  with: z.record(z.string(), z.unknown()).optional(),
  when: z.string().optional(),
});

const claimedRun = z.object({
  run_id: z.string(),
  lease_token: z.string(),
  routine_id: z.string(),
  user_id: z.string(),
  timezone: z.string(),
  occurrence: z.string(),
  trigger: z.record(z.string(), z.unknown()),
  done: z.record(z.string(), z.looseObject({ status: z.string(), output: z.unknown().optional() })),
  attempt: z.number().int(),
  steps: z.array(stepDef),
  params: z.record(z.string(), z.unknown()),
});
type ClaimedRun = z.infer<typeof claimedRun>;
type Outcome = "succeeded" | "retrying" | "failed" | "released" | "lost";

// Outputs and inputs are kept whole up to this size: get_user_context is at most 8 KB.
const MAX_RECORD_CHARS = 16_384;
const bounded = (value: unknown) => {
  const text = JSON.stringify(value ?? null);
  return text.length <= MAX_RECORD_CHARS
    ? value ?? null
    : { truncated: true, preview: text.slice(0, MAX_RECORD_CHARS) };
};

const pad = (n: number) => String(n).padStart(2, "0");

/** What templates and conditions read: earlier outputs, params (and the trigger), the user. */
export function scopeOf(run: ClaimedRun, now: number): Scope {
  const occurrence = new Date(run.occurrence);
  const local = localParts(occurrence, run.timezone);
  const steps: Record<string, unknown> = {};
  for (const [id, rec] of Object.entries(run.done)) {
    if (rec.status === "succeeded") steps[id] = rec.output;
  }
  const followUp = "commitment" in run.trigger
    ? { call_at: new Date(now + 5 * 60_000).toISOString() }
    : {};
  return {
    steps,
    params: { ...run.params, ...run.trigger, ...followUp },
    user: {
      id: run.user_id,
      timezone: run.timezone,
      local_date: `${local.year}-${pad(local.month)}-${pad(local.day)}`,
      local_time: `${pad(local.hour)}:${pad(local.minute)}`,
    },
    occurrence: occurrence.toISOString(),
  };
}

const isLeaseLost = (err: unknown) => (err as { code?: string })?.code === "55000";

function parseInput(uses: StepToolName, rendered: unknown): unknown {
  const parsed = STEP_TOOLS[uses].input.safeParse(rendered);
  if (!parsed.success) {
    throw new StepError(
      parsed.error.issues.map((i) =>
        `with${i.path.length ? "." : ""}${i.path.join(".")}: ${i.message}`
      ).join("; "),
    );
  }
  return parsed.data;
}

/**
 * Writes a finished step. A step that acts on the database runs in the transaction that records
 * it, with the run's lease locked first (hold_routine_run), so its effect commits only with its
 * record and only under the lease. Anything else (a false condition, a reply from Claude or an
 * endpoint, a read) has nothing to undo: it is recorded by one statement, which checks the lease.
 */
async function record(
  deps: RunnerDeps,
  opts: RunnerOptions,
  run: ClaimedRun,
  stepId: string,
  build: (result: StepResult | null) => Record<string, unknown>,
  effect?: { run: (tx: Tx) => Promise<StepResult>; acts: boolean },
): Promise<StepResult | null> {
  const write = (q: Sql | Tx, result: StepResult | null) =>
    q`select public.record_routine_step(${run.run_id}, ${run.lease_token}, ${stepId},
        ${JSON.stringify({ ...build(result), finished_at: new Date(deps.now()).toISOString() })}
          ::text::jsonb, ${opts.leaseSeconds})`;
  if (!effect) {
    await write(deps.sql, null);
    return null;
  }
  return await deps.sql.begin(async (tx) => {
    if (effect.acts) await tx`select public.hold_routine_run(${run.run_id}, ${run.lease_token})`;
    const result = await effect.run(tx);
    await write(tx, result);
    return result;
  });
}

async function executeStep(
  deps: RunnerDeps,
  opts: RunnerOptions,
  run: ClaimedRun,
  scope: Scope,
  step: z.infer<typeof stepDef>,
): Promise<void> {
  const started = deps.clock();
  const attempts = run.attempt + 1;
  const elapsed = () => Math.round(deps.clock() - started);
  const data = { steps: scope.steps, params: scope.params, user: scope.user };
  if (step.when !== undefined && !conditionHolds(step.when, data)) {
    await record(deps, opts, run, step.id, () => ({
      status: "skipped",
      reason: "its when condition was false",
      attempts,
      duration_ms: elapsed(),
    }));
    return;
  }
  if (!Object.hasOwn(STEP_TOOLS, step.uses)) throw new StepError(`unknown tool ${step.uses}`);
  const uses = step.uses as StepToolName;
  const input = parseInput(uses, render(step.with ?? {}, scope));
  const target: StepTarget = {
    runId: run.run_id,
    routineId: run.routine_id,
    userId: run.user_id,
    stepId: step.id,
  };
  const succeeded = (r: StepResult | null) => ({
    status: "succeeded",
    attempts,
    input: bounded(input),
    output: bounded(r?.output),
    duration_ms: elapsed(),
    ...(r?.usage ?? {}),
  });
  const checked = (r: StepResult) => ({ ...r, output: STEP_TOOLS[uses].output.parse(r.output) });
  const outside = OUTSIDE[uses];
  let result: StepResult;
  if (outside) {
    result = checked(await outside(deps, target, input as never));
    await record(deps, opts, run, step.id, () => succeeded(result));
  } else {
    result = (await record(deps, opts, run, step.id, succeeded, {
      run: async (tx) =>
        checked(await IN_TRANSACTION[uses]!(tx, target, input as never, deps.now())),
      acts: uses !== "context.read",
    }))!;
  }
  scope.steps[step.id] = result.output;
}

async function executeRun(
  deps: RunnerDeps,
  opts: RunnerOptions,
  run: ClaimedRun,
  deadline: number,
): Promise<Outcome> {
  const scope = scopeOf(run, deps.now());
  for (const step of run.steps) {
    const done = run.done[step.id];
    if (done && (done.status === "succeeded" || done.status === "skipped")) continue;
    if (deps.now() > deadline) {
      await deps.sql`select public.release_routine_run(${run.run_id}, ${run.lease_token})`;
      return "released";
    }
    const started = deps.clock();
    try {
      await executeStep(deps, opts, run, scope, step);
    } catch (err) {
      if (isLeaseLost(err)) return "lost";
      const error = err instanceof Error ? err.message : String(err);
      deps.log("routine step failed", { run_id: run.run_id, step: step.id, error });
      const [{ status }] = await deps.sql<{ status: string | null }[]>`
        select public.fail_routine_step(${run.run_id}, ${run.lease_token}, ${step.id},
          ${
        JSON.stringify({
          status: "error",
          attempts: run.attempt + 1,
          error,
          duration_ms: Math.round(deps.clock() - started),
        })
      }::text::jsonb, ${error}) as status`;
      return status === null ? "lost" : status === "failed" ? "failed" : "retrying";
    }
  }
  const [{ finished }] = await deps.sql<{ finished: boolean }[]>`
    select public.finish_routine_run(${run.run_id}, ${run.lease_token}) as finished`;
  return finished ? "succeeded" : "lost";
}

export async function runRoutines(
  deps: RunnerDeps,
  opts: RunnerOptions,
): Promise<RunnerSummary> {
  const deadline = deps.now() + opts.timeBudgetMs;
  const summary: RunnerSummary = {
    planned: 0,
    claimed: 0,
    succeeded: 0,
    retrying: 0,
    failed: 0,
    released: 0,
    lost: 0,
  };
  await deps.sql`
    select public.sync_routine_http_origins(${[...deps.http.allowlist]}::text[])`;
  // Claims first: a run already due should not wait for next occurrences to be computed.
  while (deps.now() < deadline) {
    const [{ runs }] = await deps.sql<{ runs: unknown }[]>`
      select public.claim_routine_runs(${opts.batchSize}, ${opts.leaseSeconds}) as runs`;
    const claimed = z.array(claimedRun).parse(runs);
    summary.claimed += claimed.length;
    const outcomes = await mapLimit(
      claimed,
      opts.concurrency,
      (run) =>
        executeRun(deps, opts, run, deadline).catch((err) => {
          // A lost connection or a bug: the lease lapses and the next tick resumes the run.
          deps.log("routine run interrupted", { run_id: run.run_id, error: String(err) });
          return "lost" as const;
        }),
    );
    for (const outcome of outcomes) summary[outcome]++;
    // The routines whose occurrences were just made into runs, and new ones, learn their next.
    const planned = await planRoutines(deps, opts.batchSize);
    summary.planned += planned;
    if (claimed.length === 0 && planned === 0) break;
  }
  return summary;
}
