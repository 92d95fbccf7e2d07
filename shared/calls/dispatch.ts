// The call half of process-queue (SPEC section 7): claim due calls through SQL,
// hand each to the voice system, record the outcomes. Every state change is
// made in SQL (claim_due_calls, complete_call_dispatch, record_next_occurrences);
// this loop only does the I/O, and the RRULE arithmetic SQL cannot do comes from
// recurrence.ts.
import { z } from "zod";
import type { Sql } from "../db.ts";
import { mapLimit } from "../concurrency.ts";
import { markUntrusted } from "../analysis/untrusted.ts";
import { backoffMs, type BackoffPolicy } from "../delivery/backoff.ts";
import { type NextOccurrences, occurrencesAfterDispatch } from "./recurrence.ts";

// A call placed much later than asked is of little use: retries stay within
// minutes (complete_call_dispatch gives up after 5 attempts).
const CALL_BACKOFF: BackoffPolicy = { baseMs: 60_000, capMs: 600_000 };
// What a refusal's response body may add to last_error.
const ERROR_BODY_CHARS = 200;

const voiceEnv = z.object({
  // z.url, not z.httpUrl: the latter wants a domain name and refuses 127.0.0.1.
  VOICE_DISPATCH_URL: z.url({
    protocol: /^https?$/,
    error: "VOICE_DISPATCH_URL must be an http(s) URL",
  }),
  VOICE_DISPATCH_SECRET: z.string({
    error: "VOICE_DISPATCH_SECRET is required when VOICE_DISPATCH_URL is set",
  }).min(16, "VOICE_DISPATCH_SECRET must be at least 16 characters"),
});

export interface VoiceConfig {
  voiceUrl: string;
  voiceSecret: string;
}

/** The voice system's endpoint and shared secret; null when VOICE_DISPATCH_URL is unset. */
export function voiceConfigFromEnv(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): VoiceConfig | null {
  if (!env.VOICE_DISPATCH_URL) return null;
  const result = voiceEnv.safeParse(env);
  if (!result.success) {
    throw new Error(
      `configuration: ${
        result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")
      }`,
    );
  }
  return {
    voiceUrl: result.data.VOICE_DISPATCH_URL,
    voiceSecret: result.data.VOICE_DISPATCH_SECRET,
  };
}

const claimedCall = z.object({
  id: z.string(),
  user_id: z.string(),
  call_type: z.string(),
  scheduled_for: z.string(),
  custom_instructions: z.string().nullable(),
  rrule: z.string().nullable(),
  attempts: z.number().int(),
  recurrence_of: z.string().nullable(),
  series_start: z.string(),
  user: z.object({ phone_number: z.string(), timezone: z.string() }),
  brief: z.object({
    insights: z.record(z.string(), z.unknown()),
    open_commitments: z.array(z.object({
      id: z.string(),
      description: z.string(),
      due_at: z.string().nullable(),
      created_at: z.string(),
    })),
    session_summary: z.string().nullable(),
    recent_interactions: z.array(z.object({
      created_at: z.string(),
      channel: z.string(),
      sentiment: z.string().nullable(),
      transcript: z.string(),
    })),
  }),
});
type ClaimedCall = z.infer<typeof claimedCall>;

const claimResult = z.object({
  claim_token: z.string(),
  rescued: z.number(),
  calls: z.array(claimedCall),
});

const completeResult = z.object({
  dispatched: z.number(),
  retried: z.number(),
  failed: z.number(),
  ignored: z.number(),
  next_occurrences: z.number(),
});

export interface CallDispatchDeps {
  sql: Sql;
  fetch: typeof fetch;
  voiceUrl: string;
  voiceSecret: string;
  now: () => number;
  random: () => number;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface CallDispatchOptions {
  /** No new batch is claimed after this instant (ms since epoch). */
  deadline: number;
  batchSize: number;
  concurrency: number;
  /** Per request to the voice system. */
  timeoutMs: number;
}

export interface CallDispatchSummary {
  dispatched: number;
  retried: number;
  failed: number;
}

interface CallResult extends NextOccurrences {
  id: string;
  outcome: "dispatched" | "retry" | "failed";
  error?: string;
  retry_at?: string;
}

export async function dispatchDueCalls(
  deps: CallDispatchDeps,
  opts: CallDispatchOptions,
): Promise<CallDispatchSummary> {
  const summary: CallDispatchSummary = { dispatched: 0, retried: 0, failed: 0 };
  // The lease outlasts the slowest possible batch: every round of `concurrency`
  // requests running into the timeout, plus time to record the outcomes.
  const rounds = Math.ceil(opts.batchSize / opts.concurrency);
  const leaseSeconds = Math.min(3600, Math.ceil((rounds * opts.timeoutMs) / 1000) + 30);
  while (deps.now() < opts.deadline) {
    const [{ claim }] = await deps.sql<{ claim: unknown }[]>`
      select public.claim_due_calls(${opts.batchSize}, ${leaseSeconds}) as claim`;
    const batch = claimResult.parse(claim);
    if (batch.rescued > 0) {
      deps.log("calls whose lease lapsed claimed again", { rescued: batch.rescued });
    }
    if (batch.calls.length === 0) break;

    const results = await mapLimit(
      batch.calls,
      opts.concurrency,
      (call) => dispatchCall(deps, opts, call),
    );
    const [{ counts }] = await deps.sql<{ counts: unknown }[]>`
      select public.complete_call_dispatch(
        ${batch.claim_token}, ${JSON.stringify(results)}::text::jsonb) as counts`;
    const recorded = completeResult.parse(counts);
    summary.dispatched += recorded.dispatched;
    summary.retried += recorded.retried;
    summary.failed += recorded.failed;
    // A short batch means nothing else is due; a retry is not taken again in this run.
    if (batch.calls.length < opts.batchSize) break;
  }
  return summary;
}

async function dispatchCall(
  deps: CallDispatchDeps,
  opts: CallDispatchOptions,
  call: ClaimedCall,
): Promise<CallResult> {
  const recurrence = call.rrule === null ? {} : nextOf(deps, call);
  const result = (outcome: CallResult["outcome"], error?: string): CallResult => ({
    id: call.id,
    outcome,
    ...(error === undefined ? {} : { error }),
    ...recurrence,
  });
  const retry = (error: string): CallResult => {
    deps.log("call dispatch will be retried", { call_id: call.id, error });
    const delay = backoffMs(CALL_BACKOFF, call.attempts + 1, deps.random);
    return { ...result("retry", error), retry_at: new Date(deps.now() + delay).toISOString() };
  };

  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`no response within ${opts.timeoutMs} ms`)),
    opts.timeoutMs,
  );
  try {
    const res = await deps.fetch(deps.voiceUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${deps.voiceSecret}`,
        // The voice system places each call once, however often it is handed over.
        "idempotency-key": call.id,
      },
      body: JSON.stringify(voicePayload(call)),
      // A redirect must not carry the secret elsewhere: it counts as a failure.
      redirect: "manual",
      signal: controller.signal,
    });
    if (res.ok) {
      await res.body?.cancel();
      return result("dispatched");
    }
    const error = `voice system answered ${res.status}: ${
      (await res.text()).slice(0, ERROR_BODY_CHARS)
    }`;
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
      deps.log("call dispatch refused", { call_id: call.id, error });
      return result("failed", error);
    }
    return retry(error);
  } catch (err) {
    return retry(`voice system unreachable: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Text that came from transcripts is marked untrusted (shared/analysis/untrusted.ts). */
function voicePayload(call: ClaimedCall) {
  return markUntrusted({
    call: {
      id: call.id,
      call_type: call.call_type,
      scheduled_for: call.scheduled_for,
      custom_instructions: call.custom_instructions,
      rrule: call.rrule,
      recurrence_of: call.recurrence_of,
      attempt: call.attempts + 1,
    },
    user: { id: call.user_id, ...call.user },
    brief: call.brief,
  });
}

/** What follows this occurrence in its series; SQL records it once this call is done with. */
function nextOf(deps: CallDispatchDeps, call: ClaimedCall): NextOccurrences {
  const series = {
    rrule: call.rrule!,
    seriesStart: new Date(call.series_start),
    tz: call.user.timezone,
  };
  const next = occurrencesAfterDispatch(
    series,
    new Date(call.scheduled_for),
    new Date(deps.now()),
  );
  if (next.series_end_reason) {
    deps.log("call series ends", { call_id: call.id, reason: next.series_end_reason });
  }
  return next;
}
