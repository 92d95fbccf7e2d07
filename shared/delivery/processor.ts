// The message half of process-queue: claim due messages through SQL, render
// and check them with Claude, send through Twilio, record the outcomes. Every
// delivery rule is decided by claim_messages; this loop only does the I/O.
import { z } from "zod";
import type { Sql } from "../db.ts";
import { mapLimit } from "../concurrency.ts";
import type { SendOutcome } from "../twilio/client.ts";
import type { ClaudeLog, Complete } from "../claude/complete.ts";
import { writeClaudeLogs } from "../claude/actions_log.ts";
import { backoffMs, RENDER_BACKOFF, SEND_BACKOFF } from "./backoff.ts";
import {
  acceptRendered,
  FRESHNESS_SYSTEM,
  freshnessPrompt,
  parseFreshness,
  RENDER_SYSTEM,
  renderPrompt,
} from "./prompts.ts";

const claimedMessage = z.object({
  id: z.string(),
  user_id: z.string(),
  to: z.string(),
  agent_id: z.string(),
  priority: z.string(),
  message_data: z.unknown().nullable(),
  final_message: z.string().nullable(),
  requires_fresh_context: z.boolean(),
  created_at: z.string(),
  sequence_id: z.string().nullable(),
  sequence_position: z.number().nullable(),
  render_attempts: z.number(),
  attempts: z.number(),
});
type Claimed = z.infer<typeof claimedMessage>;

const claimResult = z.object({
  claim_token: z.string(),
  messages: z.array(claimedMessage),
  deferred: z.number(),
  expired: z.number(),
  cancelled: z.number(),
  requeued: z.number(),
  unknown: z.number(),
});

export interface DeliverySummary {
  claimed: number;
  sent: number;
  deferred: number;
  superseded: number;
  expired: number;
  cancelled: number;
  failed: number;
  retried: number;
  unknown: number;
  requeued: number;
  batches: number;
}

export interface DeliveryDeps {
  sql: Sql;
  sendSms: (msg: { to: string; body: string; statusCallback: string }) => Promise<SendOutcome>;
  /** Claude, for rendering message_data and freshness checks; null when not configured. */
  complete: Complete | null;
  renderModel: string;
  statusCallbackUrl: (messageId: string) => string;
  fromNumber: string;
  now: () => number;
  random: () => number;
  log: (message: string, fields?: Record<string, unknown>) => void;
}

export interface DeliveryOptions {
  /** No new batch is claimed after this instant (ms since epoch). */
  deadline: number;
  batchSize: number;
  leaseSeconds: number;
  concurrency: number;
}

type Outcome =
  | "sent"
  | "retry"
  | "render_retry"
  | "release"
  | "failed"
  | "opted_out"
  | "unknown"
  | "superseded";

interface Result {
  id: string;
  outcome: Outcome;
  twilio_sid?: string;
  from?: string;
  error_code?: string;
  error?: string;
  retry_at?: string;
}

interface Prepared {
  members: Claimed[];
  bodies: string[];
  /** Set when the unit must not be sent now. */
  results?: Result[];
}

export function emptyDeliverySummary(): DeliverySummary {
  return {
    claimed: 0,
    sent: 0,
    deferred: 0,
    superseded: 0,
    expired: 0,
    cancelled: 0,
    failed: 0,
    retried: 0,
    unknown: 0,
    requeued: 0,
    batches: 0,
  };
}

export async function deliverDueMessages(
  deps: DeliveryDeps,
  opts: DeliveryOptions,
): Promise<DeliverySummary> {
  const summary = emptyDeliverySummary();
  while (deps.now() < opts.deadline) {
    const [{ claim }] = await deps.sql<{ claim: unknown }[]>`
      select public.claim_messages(${opts.batchSize}, ${opts.leaseSeconds}) as claim`;
    const batch = claimResult.parse(claim);
    summary.deferred += batch.deferred;
    summary.expired += batch.expired;
    summary.cancelled += batch.cancelled;
    summary.requeued += batch.requeued;
    summary.unknown += batch.unknown;
    const didSomething = batch.messages.length + batch.deferred + batch.expired + batch.cancelled;
    if (batch.messages.length > 0) {
      summary.batches++;
      summary.claimed += batch.messages.length;
      await deliverBatch(deps, opts, batch.claim_token, batch.messages, summary);
    }
    if (didSomething === 0) break;
  }
  return summary;
}

async function deliverBatch(
  deps: DeliveryDeps,
  opts: DeliveryOptions,
  token: string,
  messages: Claimed[],
  summary: DeliverySummary,
): Promise<void> {
  const claudeLogs: ClaudeLog[] = [];
  const units = groupUnits(messages);
  const prepared = await mapLimit(
    units,
    opts.concurrency,
    (members) => prepareUnit(deps, opts, members, claudeLogs),
  );

  const results: Result[] = prepared.flatMap((p) => p.results ?? []);
  const toSend = prepared.filter((p) => !p.results);
  const items = toSend.flatMap((p) => p.members.map((m, i) => ({ id: m.id, body: p.bodies[i] })));
  const [{ allowed }] = items.length
    ? await deps.sql<{ allowed: string[] }[]>`
        select public.start_sending(${token}, ${JSON.stringify(items)}::text::jsonb) as allowed`
    : [{ allowed: [] as string[] }];
  const mayGo = new Set(allowed);

  const sendResults = await mapLimit(
    toSend,
    opts.concurrency,
    (unit) => sendUnit(deps, unit, mayGo),
  );
  results.push(...sendResults.flat());

  const [{ counts }] = await deps.sql<{ counts: Record<string, number> }[]>`
    select public.complete_messages(${token}, ${JSON.stringify(results)}::text::jsonb) as counts`;
  summary.sent += counts.sent ?? 0;
  summary.superseded += counts.superseded ?? 0;
  summary.failed += (counts.failed ?? 0) + (counts.opted_out ?? 0);
  summary.retried += (counts.retry ?? 0) + (counts.render_retry ?? 0);
  summary.unknown += counts.unknown ?? 0;
  if (claudeLogs.length) await writeClaudeLogs(deps.sql, claudeLogs);
}

/** A standalone message, or a whole sequence in position order. */
function groupUnits(messages: Claimed[]): Claimed[][] {
  const units = new Map<string, Claimed[]>();
  for (const m of messages) {
    const key = m.sequence_id ?? m.id;
    units.set(key, [...(units.get(key) ?? []), m]);
  }
  return [...units.values()].map((u) =>
    u.sort((a, b) => (a.sequence_position ?? 1) - (b.sequence_position ?? 1))
  );
}

const retryAt = (deps: DeliveryDeps, delayMs: number) =>
  new Date(deps.now() + delayMs).toISOString();

function allMembers(members: Claimed[], result: Omit<Result, "id">): Prepared {
  return { members, bodies: [], results: members.map((m) => ({ id: m.id, ...result })) };
}

async function prepareUnit(
  deps: DeliveryDeps,
  opts: DeliveryOptions,
  members: Claimed[],
  logs: ClaudeLog[],
): Promise<Prepared> {
  if (deps.now() >= opts.deadline) return allMembers(members, { outcome: "release" });
  const renderRetry = (error: string) =>
    allMembers(members, {
      outcome: "render_retry",
      error,
      retry_at: retryAt(
        deps,
        backoffMs(RENDER_BACKOFF, members[0].render_attempts + 1, deps.random),
      ),
    });

  const bodies: string[] = [];
  for (const m of members) {
    if (m.final_message !== null) {
      bodies.push(m.final_message);
      continue;
    }
    if (!deps.complete) return renderRetry("no Claude configuration to render message_data");
    try {
      const res = await deps.complete({
        model: deps.renderModel,
        system: RENDER_SYSTEM,
        user: renderPrompt(m.agent_id, m.message_data),
        maxTokens: 300,
      });
      logs.push({ ...res.log, userId: m.user_id, action: "render_message" });
      const body = acceptRendered(res.text);
      if (!body) return renderRetry("the rendered text was not plain SMS prose");
      bodies.push(body);
    } catch (err) {
      return renderRetry(`render failed: ${errorMessage(err)}`);
    }
  }

  for (const [i, m] of members.entries()) {
    if (!m.requires_fresh_context) continue;
    if (!deps.complete) return renderRetry("no Claude configuration for the freshness check");
    try {
      const since = await eventsSince(deps.sql, m.user_id, m.created_at);
      const res = await deps.complete({
        model: deps.renderModel,
        system: FRESHNESS_SYSTEM,
        user: freshnessPrompt(bodies[i], m.created_at, since),
        maxTokens: 200,
      });
      logs.push({ ...res.log, userId: m.user_id, action: "freshness_check" });
      const verdict = parseFreshness(res.text);
      if (!verdict) return renderRetry("the freshness check gave no verdict");
      if (!verdict.stillRelevant) {
        return allMembers(members, {
          outcome: "superseded",
          error: `no longer relevant: ${verdict.reason}`,
        });
      }
    } catch (err) {
      return renderRetry(`freshness check failed: ${errorMessage(err)}`);
    }
  }
  return { members, bodies };
}

async function eventsSince(sql: Sql, userId: string, since: string) {
  return await sql<{ at: string; kind: string; text: string }[]>`
    (select created_at::text as at, 'conversation (' || channel || ')' as kind,
            left(transcript, 1000) as text
       from public.interactions where user_id = ${userId} and created_at > ${since})
    union all
    (select created_at::text, direction || ' SMS', left(body, 500)
       from public.messages where user_id = ${userId} and created_at > ${since})
    order by at limit 20`;
}

/** Members go one after another; after one that did not go, the rest wait. */
async function sendUnit(deps: DeliveryDeps, unit: Prepared, mayGo: Set<string>): Promise<Result[]> {
  const results: Result[] = [];
  let stopped: Omit<Result, "id"> | null = null;
  for (const [i, m] of unit.members.entries()) {
    if (stopped || !mayGo.has(m.id)) {
      // Not sent: back to the queue (an opted-out user's are cancelled there).
      stopped ??= { outcome: "release", retry_at: retryAt(deps, 0) };
      results.push({ id: m.id, outcome: "release", retry_at: stopped.retry_at });
      continue;
    }
    const outcome = await deps.sendSms({
      to: m.to,
      body: unit.bodies[i],
      statusCallback: deps.statusCallbackUrl(m.id),
    });
    const result = toResult(deps, m, outcome);
    results.push(result);
    if (result.outcome !== "sent") stopped = { outcome: "release", retry_at: result.retry_at };
  }
  return results;
}

function toResult(deps: DeliveryDeps, m: Claimed, outcome: SendOutcome): Result {
  switch (outcome.kind) {
    case "accepted":
      return { id: m.id, outcome: "sent", twilio_sid: outcome.sid, from: deps.fromNumber };
    case "retry":
      return {
        id: m.id,
        outcome: "retry",
        error: `Twilio refused (${outcome.httpStatus ?? "no response"}): ${outcome.message}`,
        error_code: outcome.code === null ? undefined : String(outcome.code),
        retry_at: retryAt(deps, backoffMs(SEND_BACKOFF, m.attempts + 1, deps.random)),
      };
    case "rejected":
      return {
        id: m.id,
        outcome: outcome.optedOut ? "opted_out" : "failed",
        error: `Twilio rejected (${outcome.httpStatus}): ${outcome.message}`,
        error_code: outcome.code === null ? undefined : String(outcome.code),
      };
    case "unknown":
      deps.log("send outcome unknown", { message_id: m.id, error: outcome.message });
      return { id: m.id, outcome: "unknown", error: `send outcome unknown: ${outcome.message}` };
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
