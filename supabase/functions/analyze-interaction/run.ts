// One analysis of one interaction: claim the job, read what earlier attempts
// already did, run the agent, then record the outcome (finish_analysis) or the
// failure (fail_analysis, which retries with backoff until the job runs out of
// attempts). Each model turn's usage goes to agent_actions_log as the turn
// ends, so a run killed midway still shows what it spent.
import {
  type ActionRecord,
  type AnalysisOutcome,
  AnalysisRunError,
  type CreateMessage,
  runAnalysisAgent,
} from "../../../shared/analysis/agent.ts";
import { createExecutors } from "../../../shared/analysis/executors.ts";
import {
  claimAnalysis,
  type ClaimedAnalysis,
  earlierEffects,
  failAnalysis,
  finishAnalysis,
  type RunRecord,
} from "../../../shared/analysis/jobs.ts";
import { writeInsights } from "../../../shared/analysis/memory.ts";
import type { Sql } from "../../../shared/db.ts";
import { writeClaudeLogs } from "../../../shared/claude/actions_log.ts";

export interface AnalyzeDeps {
  sql: Sql;
  createMessage: CreateMessage;
  model: string;
  now: () => number;
  /** Longer than the function can live, so a live run never loses its claim. */
  leaseSeconds: number;
  log: (message: string, fields?: Record<string, unknown>) => void;
}

/** What the function answers for each tool call: its outcome, not its input. */
export type ActionSummary = Omit<ActionRecord, "input" | "idempotency_key">;

export type AnalyzeResult =
  | { kind: "analysed"; actions: ActionSummary[]; sentiment: string | null }
  /** The model stopped on max_tokens or a refusal: recorded as failed, not retried. */
  | { kind: "stopped"; actions: ActionSummary[]; stopReason: string }
  | { kind: "nothing"; status: "busy" | "done"; detail: string }
  | { kind: "failed"; error: string; willRetry: boolean; attempts: number }
  /** The claim lapsed while running: another run owns the job now, or may. */
  | { kind: "stale" };

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

const summarise = (actions: ActionRecord[]): ActionSummary[] =>
  actions.map(({ input: _input, idempotency_key: _key, ...rest }) => rest);

export async function analyzeInteraction(
  deps: AnalyzeDeps,
  interactionId: string,
): Promise<AnalyzeResult> {
  const claim = await claimAnalysis(deps.sql, interactionId, deps.leaseSeconds);
  if (claim.status === "busy") return { kind: "nothing", status: "busy", detail: claim.reason };
  if (claim.status === "done") {
    return { kind: "nothing", status: "done", detail: claim.analysis_status };
  }
  const ref = { claimToken: claim.claim_token, interactionId };
  const fail = async (err: unknown, run: RunRecord | null): Promise<AnalyzeResult> => {
    const error = errorText(err);
    const failed = await failAnalysis(deps.sql, ref, error, run);
    deps.log("analysis failed", { interaction_id: interactionId, error, ...failed });
    if (failed.status === "stale") return { kind: "stale" };
    return {
      kind: "failed",
      error,
      willRetry: failed.will_retry ?? false,
      attempts: failed.attempts ?? claim.attempt,
    };
  };

  let outcome: AnalysisOutcome;
  try {
    outcome = await runAnalysisAgent({
      createMessage: deps.createMessage,
      executors: createExecutors(deps.sql, ref),
      model: deps.model,
      now: deps.now,
      recordTurn: (log) => writeClaudeLogs(deps.sql, [log]),
      earlierEffects: await earlierEffects(deps.sql, ref),
    }, claim);
  } catch (err) {
    return await fail(err, err instanceof AnalysisRunError ? err.run : null);
  }
  let status: "done" | "failed" | "stale";
  try {
    status = await finishAnalysis(deps.sql, ref, finishRequest(claim, outcome, deps.now()));
  } catch (err) {
    return await fail(err, outcome.run);
  }
  deps.log("analysed", { interaction_id: interactionId, status, turns: outcome.run.turns });
  if (status === "stale") return { kind: "stale" };
  const actions = summarise(outcome.actions);
  if (status === "failed") return { kind: "stopped", actions, stopReason: outcome.run.stop_reason };
  return { kind: "analysed", actions, sentiment: outcome.sentiment };
}

function finishRequest(claim: ClaimedAnalysis, outcome: AnalysisOutcome, now: number) {
  return {
    sentiment: outcome.sentiment,
    insights: outcome.insights
      ? writeInsights(claim.user.insights, outcome.insights, new Date(now).toISOString())
      : null,
    session_summary: outcome.sessionSummary,
    run: outcome.run,
  };
}
