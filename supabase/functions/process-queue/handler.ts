import { z } from "zod";
import {
  handle,
  json,
  parseWith,
  readJson,
  requireBearer,
  requireMethod,
} from "../../../shared/http.ts";
import type { RunRequest, RunSummary } from "./run.ts";

// Edge functions get 150 s of wall time on the free plan; the default leaves
// room to finish the last batch.
const processRequest = z.object({
  source: z.string().min(1).max(64).default("manual"),
  time_budget_ms: z.number().int().min(100).max(140_000).default(50_000),
  batch_size: z.number().int().min(1).max(500).default(100),
}).strict();

export function createProcessQueueHandler(deps: {
  secret: string;
  run: (req: RunRequest) => Promise<RunSummary>;
}) {
  return handle(async (req) => {
    requireMethod(req, "POST");
    requireBearer(req, deps.secret);
    const body = parseWith(processRequest, await readJson(req));
    const summary = await deps.run({
      source: body.source,
      timeBudgetMs: body.time_budget_ms,
      batchSize: body.batch_size,
    });
    return json({ function: "process-queue", ...summary });
  });
}
