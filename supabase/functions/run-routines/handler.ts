import { z } from "zod";
import {
  handle,
  json,
  parseWith,
  readJson,
  requireBearer,
  requireMethod,
} from "../../../shared/http.ts";
import type { RunnerOptions, RunnerSummary } from "../../../shared/routines/runner.ts";

// Edge functions get 150 s of wall time on the free plan; a run cut off by the
// budget resumes on the next tick.
const runRequest = z.object({
  source: z.string().min(1).max(64).default("manual"),
  time_budget_ms: z.number().int().min(100).max(140_000).default(50_000),
  batch_size: z.number().int().min(1).max(500).default(100),
}).strict();

export function createRunRoutinesHandler(deps: {
  secret: string;
  run: (opts: Pick<RunnerOptions, "timeBudgetMs" | "batchSize">) => Promise<RunnerSummary>;
  clock: () => number;
}) {
  return handle(async (req) => {
    requireMethod(req, "POST");
    requireBearer(req, deps.secret);
    const body = parseWith(runRequest, await readJson(req));
    const started = deps.clock();
    const summary = await deps.run({
      timeBudgetMs: body.time_budget_ms,
      batchSize: body.batch_size,
    });
    return json({
      function: "run-routines",
      source: body.source,
      ...summary,
      duration_ms: Math.round(deps.clock() - started),
    });
  });
}
