// The analysis job's SQL side: claim, earlier effects, finish, fail and
// re-dispatch, through the RPCs of migrations 0008 and 20261201000300. Claim results are validated, so a schema drift is a
// clear error rather than a confused prompt.
import { z } from "zod";
import type { Sql } from "../db.ts";
import type { Sentiment } from "./tools.ts";

const row = z.looseObject({});

const claimedSchema = z.object({
  status: z.literal("claimed"),
  claim_token: z.uuid(),
  attempt: z.number().int(),
  max_attempts: z.number().int(),
  interaction: z.object({
    id: z.uuid(),
    channel: z.string(),
    call_type: z.string(),
    created_at: z.string(),
    scheduled_call_id: z.string().nullable(),
    transcript: z.string(),
  }),
  user: z.object({
    id: z.uuid(),
    timezone: z.string(),
    local_time: z.string(),
    quiet_hours_start: z.string(),
    quiet_hours_end: z.string(),
    sms_opted_out: z.boolean(),
    insights: z.record(z.string(), z.unknown()),
  }),
  context: z.object({
    session_summary: z.string(),
    open_commitments: z.array(row),
    recent_interactions: z.array(row),
    pending_calls: z.array(row),
    queued_messages: z.array(row),
  }),
});

const claimSchema = z.discriminatedUnion("status", [
  claimedSchema,
  z.object({ status: z.literal("busy"), reason: z.string() }),
  z.object({ status: z.literal("done"), analysis_status: z.string() }),
]);

export type ClaimedAnalysis = z.infer<typeof claimedSchema>;
export type Claim = z.infer<typeof claimSchema>;

/** What a run cost and did, as stored in sdk_actions. */
export interface RunRecord {
  model: string;
  duration_ms: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  cost_usd: number;
  turns: number;
  stop_reason: string;
  actions: unknown[];
}

/** extracted_commitments are read by finish_analysis from the commitments this interaction recorded. */
export interface FinishRequest {
  sentiment: Sentiment | null;
  /** The whole profile to store, or null when the run did not change it. */
  insights: Record<string, unknown> | null;
  session_summary: string | null;
  run: RunRecord;
}

const asJson = (value: unknown) => JSON.stringify(value);

export async function claimAnalysis(
  sql: Sql,
  interactionId: string,
  leaseSeconds: number,
): Promise<Claim> {
  const [{ claim }] = await sql<{ claim: unknown }[]>`
    select public.claim_analysis(${interactionId}, ${leaseSeconds}) as claim`;
  return claimSchema.parse(claim);
}

const earlierEffectSchema = z.object({
  tool: z.string(),
  idempotency_key: z.string(),
  result: z.record(z.string(), z.unknown()),
  /** What the effect's row holds now (the call, commitment or message). */
  state: z.record(z.string(), z.unknown()).nullable(),
});

export type EarlierEffect = z.infer<typeof earlierEffectSchema>;

/** The effects earlier attempts at this analysis already had, oldest first. */
export async function earlierEffects(
  sql: Sql,
  claim: { claimToken: string; interactionId: string },
): Promise<EarlierEffect[]> {
  const [{ effects }] = await sql<{ effects: unknown }[]>`
    select public.analysis_earlier_effects(${claim.claimToken}, ${claim.interactionId}) as effects`;
  return z.array(earlierEffectSchema).parse(effects);
}

/**
 * `done`; `failed` when the model stopped on max_tokens or a refusal (recorded
 * as such, not retried); `stale` when the lease lapsed, so a newer run of the
 * user may have written their memory, or another run took the job.
 */
export async function finishAnalysis(
  sql: Sql,
  claim: { claimToken: string; interactionId: string },
  result: FinishRequest,
): Promise<"done" | "failed" | "stale"> {
  const [{ status }] = await sql<{ status: "done" | "failed" | "stale" }[]>`
    select public.finish_analysis(
      ${claim.claimToken}, ${claim.interactionId}, ${asJson(result)}::text::jsonb
    ) ->> 'status' as status`;
  return status;
}

export interface FailResult {
  status: "retry" | "failed" | "stale";
  attempts?: number;
  will_retry?: boolean;
}

export async function failAnalysis(
  sql: Sql,
  claim: { claimToken: string; interactionId: string },
  error: string,
  run: RunRecord | null,
): Promise<FailResult> {
  const [{ result }] = await sql<{ result: FailResult }[]>`
    select public.fail_analysis(
      ${claim.claimToken}, ${claim.interactionId}, ${error}, ${
    run ? asJson(run) : null
  }::text::jsonb
    ) as result`;
  return result;
}

/** For the per-minute run: re-sends due jobs; returns how many were sent. */
export async function redispatchAnalysisJobs(sql: Sql, limit = 50): Promise<number> {
  const [{ sent }] = await sql<{ sent: number }[]>`
    select public.redispatch_analysis_jobs(${limit}) as sent`;
  return sent;
}
