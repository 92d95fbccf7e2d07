import {
  handle,
  HttpError,
  json,
  parseWith,
  readJson,
  requireBearer,
  requireMethod,
} from "../../../shared/http.ts";
import { analyzeRequest } from "./request.ts";
import type { AnalyzeResult } from "./run.ts";

export interface AnalyzeHandlerDeps {
  secret: string;
  /** Null when Claude is not configured: the job then waits for the per-minute run. */
  analyze: ((interactionId: string) => Promise<AnalyzeResult>) | null;
}

/**
 * 200 with what the run did (status failed when the model stopped on
 * max_tokens or a refusal, which is recorded and not retried); 202 when there is nothing to do now (busy, done);
 * 404 for an unknown interaction; 409 when the run lost its claim; 500 with the
 * error when the run failed (recorded, retried later); 503 without Claude.
 */
export function createAnalyzeHandler(deps: AnalyzeHandlerDeps) {
  return handle(async (req) => {
    requireMethod(req, "POST");
    requireBearer(req, deps.secret);
    const { interactionId } = parseWith(analyzeRequest, await readJson(req));
    if (!deps.analyze) {
      return json({
        error: "not_configured",
        message: "Claude is not configured (ANTHROPIC_API_KEY); the job waits for the next run",
        interaction_id: interactionId,
      }, 503);
    }
    const result = await deps.analyze(interactionId).catch((err) => {
      if ((err as { code?: unknown })?.code === "P0002") {
        throw new HttpError(
          404,
          "not_found",
          `unknown interaction ${interactionId}`,
        );
      }
      throw err;
    });
    switch (result.kind) {
      case "analysed":
        return json({
          status: "done",
          interaction_id: interactionId,
          actions: result.actions,
        });
      case "stopped":
        // Handled and recorded: the job is over, so nothing is gained by a retry.
        return json({
          status: "failed",
          interaction_id: interactionId,
          stop_reason: result.stopReason,
          actions: result.actions,
        });
      case "nothing":
        return json(
          {
            status: result.status,
            interaction_id: interactionId,
            detail: result.detail,
          },
          202,
        );
      case "stale":
        return json({
          error: "claim_lost",
          message: "another run holds this analysis now",
          interaction_id: interactionId,
        }, 409);
      case "failed":
        return json({
          error: "analysis_failed",
          message: result.error,
          interaction_id: interactionId,
          attempts: result.attempts,
          will_retry: result.willRetry,
        }, 500);
    }
  });
}
