// The message half of process-queue: claim due messages through SQL, render
// and check them with Claude, send through Twilio, record the outcomes. Every
// delivery rule is decided by claim_messages; this loop only does the I/O.
import { z } from "zod";
import type { Sql } from "../db.ts";
import type { SendOutcome, SmsToSend } from "../twilio/client.ts";
import type { ClaudeLog, Complete, CompleteRequest, CompleteResult } from "../claude/complete.ts";
import { writeClaudeLogs } from "../claude/actions_log.ts";
import { backoffMs, RENDER_BACKOFF, SEND_BACKOFF } from "./backoff.ts";
import { type SmsText, toSmsText } from "./gsm.ts";
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
  rendered_body: z.string().nullable(),
  requires_fresh_context: z.boolean(),
  created_at: z.string(),
  sequence_id: z.string().nullable(),
  sequence_position: z.number().nullable(),
  render_attempts: z.number(),
  attempts: z.number(),
  valid_until: z.string().nullable(),
});
type Claimed = z.infer<typeof claimedMessage>;

const claimResult = z.object({
  claim_token: z.string(),
  messages: z.array(claimedMessage),
  deferred: z.number(),
  expired: z.number(),
  cancelled: z.number(),
  failed: z.number(),
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
  /**
   * Marks each message just before its request. One per process, so the runs an
   * isolate serves at once are marked together.
   */
  starter: SendStarter;
  sendSms: (msg: SmsToSend) => Promise<SendOutcome>;
  /** Claude, for rendering message_data and freshness checks; null when not configured. */
  complete: Complete | null;
  renderModel: string;
  /** A render over this many segments is asked again once, then failed (RENDER_MAX_SEGMENTS). */
  renderMaxSegments: number;
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
  | "superseded"
  | "render_too_long";

interface Result {
  id: string;
  outcome: Outcome;
  twilio_sid?: string;
  from?: string;
  error_code?: string;
  error?: string;
  retry_at?: string;
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
  const logs: ClaudeLog[] = [];
  const outcomes = new Outcomes(deps.sql, summary);
  // Claimed units not yet started. Workers take them one at a time, so a slow
  // render holds up only its own unit. The next batch is claimed while the last
  // workers of this one are still busy, so no worker waits on a claim it could
  // have had ready.
  const ready: ClaimedUnit[] = [];
  let exhausted = false;
  const claimFailures: unknown[] = [];
  let claiming: Promise<void> | null = null;
  const refill = () =>
    claiming ??= claimBatch(deps, opts, summary).then((units) => {
      ready.push(...units.ready);
      if (!units.progressed) exhausted = true;
    }, (error) => {
      // What is already claimed still goes out; the run then reports the failure.
      claimFailures.push(error);
      exhausted = true;
    }).finally(() => (claiming = null));
  const mayClaim = () => !exhausted && deps.now() < opts.deadline;
  const worker = async () => {
    for (;;) {
      const unit = ready.shift();
      if (unit) {
        if (ready.length < opts.concurrency && mayClaim()) void refill();
        await deliverUnit(deps, opts, unit, summary, outcomes, logs);
        continue;
      }
      if (!mayClaim()) return;
      await refill();
    }
  };
  // Every worker ends before the run does, and what Twilio answered is written
  // even when one of them failed.
  const ended = await Promise.allSettled(Array.from({ length: opts.concurrency }, worker));
  try {
    await outcomes.flush();
  } finally {
    if (logs.length) await writeClaudeLogs(deps.sql, logs);
  }
  for (const e of ended) if (e.status === "rejected") throw e.reason;
  if (claimFailures.length > 0) throw claimFailures[0];
  return summary;
}

interface ClaimedUnit {
  token: string;
  members: Claimed[];
}

/** One claim_messages call; `progressed` is false when it found nothing to decide. */
async function claimBatch(
  deps: DeliveryDeps,
  opts: DeliveryOptions,
  summary: DeliverySummary,
): Promise<{ ready: ClaimedUnit[]; progressed: boolean }> {
  const [{ claim }] = await deps.sql<{ claim: unknown }[]>`
    select public.claim_messages(${opts.batchSize}, ${opts.leaseSeconds}) as claim`;
  const batch = claimResult.parse(claim);
  summary.deferred += batch.deferred;
  summary.expired += batch.expired;
  summary.cancelled += batch.cancelled;
  summary.failed += batch.failed;
  summary.requeued += batch.requeued;
  summary.unknown += batch.unknown;
  if (batch.messages.length > 0) summary.batches++;
  summary.claimed += batch.messages.length;
  const decided = batch.messages.length + batch.deferred + batch.expired + batch.cancelled +
    batch.failed;
  return {
    ready: groupUnits(batch.messages).map((members) => ({ token: batch.claim_token, members })),
    progressed: decided > 0,
  };
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

/** Prepares one unit, then sends its members one after another, each recorded at once. */
async function deliverUnit(
  deps: DeliveryDeps,
  opts: DeliveryOptions,
  unit: ClaimedUnit,
  summary: DeliverySummary,
  outcomes: Outcomes,
  logs: ClaudeLog[],
): Promise<void> {
  const prepared = deps.now() >= opts.deadline
    ? { results: unit.members.map((m) => release(deps, m)) }
    : await prepareUnit(deps, opts, unit, logs);
  if ("results" in prepared) {
    outcomes.record(unit.token, prepared.results);
    return;
  }
  for (const [i, m] of unit.members.entries()) {
    const rest = unit.members.slice(i);
    if (deps.now() >= opts.deadline) {
      outcomes.record(unit.token, rest.map((r) => release(deps, r)));
      return;
    }
    const sms = toSmsText(prepared.bodies[i]);
    const verdict = await deps.starter.start(unit.token, m.id, sms);
    if (verdict !== "go") {
      tallyRefusal(summary, verdict);
      outcomes.record(unit.token, rest.slice(1).map((r) => release(deps, r)));
      return;
    }
    const result = toResult(
      deps,
      m,
      await deps.sendSms({
        to: m.to,
        body: sms.text,
        statusCallback: deps.statusCallbackUrl(m.id),
        validUntil: m.valid_until === null ? undefined : new Date(m.valid_until),
      }),
    );
    // After a member that did not go, the rest of its sequence waits with it.
    const after = result.outcome === "sent"
      ? []
      : rest.slice(1).map((r) => release(deps, r, result.retry_at));
    outcomes.record(unit.token, [result, ...after]);
    if (result.outcome !== "sent") return;
  }
}

const startVerdicts = z.record(
  z.string(),
  z.enum(["go", "cancelled", "expired", "deferred", "lost"]),
);
type StartVerdict = z.infer<typeof startVerdicts>[string];

interface StartRequest {
  token: string;
  id: string;
  sms: SmsText;
  settle: (verdict: Promise<StartVerdict>) => void;
}

/**
 * Marks each message just before its own request (start_sending), and says
 * whether it may go. Messages asked for within GATHER_MS of each other, or
 * while a mark is on its way, go together in one statement: a statement costs
 * about as much for one message as for ten, and with slow answers from Twilio
 * the workers' requests come apart (measured at 50 ms a send: 9,048 statements
 * for 20,000 texts without the wait, 3,464 with it, and a third less database
 * time). A message's request still leaves as soon as its own mark returns.
 */
export class SendStarter {
  static readonly GATHER_MS = 2;
  private waiting: StartRequest[] = [];
  private marking = false;

  constructor(private sql: Sql) {}

  start(token: string, id: string, sms: SmsText): Promise<StartVerdict> {
    return new Promise((settle) => {
      this.waiting.push({ token, id, sms, settle });
      if (!this.marking) void this.markWaiting();
    });
  }

  private async markWaiting(): Promise<void> {
    this.marking = true;
    await new Promise((r) => setTimeout(r, SendStarter.GATHER_MS));
    while (this.waiting.length > 0) {
      const group = this.waiting.splice(0);
      const marked = this.mark(group);
      for (const r of group) r.settle(marked.then((verdicts) => verdicts[r.id] ?? "lost"));
      await marked.catch(() => {});
    }
    this.marking = false;
  }

  private async mark(group: StartRequest[]): Promise<Record<string, StartVerdict>> {
    const items = group.map((r) => ({
      claim_token: r.token,
      id: r.id,
      body: r.sms.text,
      encoding: r.sms.encoding,
      segments: r.sms.segments,
    }));
    const [{ verdicts }] = await this.sql<{ verdicts: unknown }[]>`
      select public.start_sending(${JSON.stringify(items)}::text::jsonb) as verdicts`;
    return startVerdicts.parse(verdicts);
  }
}

function tallyRefusal(summary: DeliverySummary, verdict: Exclude<StartVerdict, "go">): void {
  if (verdict === "cancelled") summary.cancelled++;
  else if (verdict === "expired") summary.expired++;
  else if (verdict === "deferred") summary.deferred++;
}

/**
 * Outcomes, written in one call whatever claims they belong to (the next batch
 * is claimed while this one's last sends go): at once when WRITE_AT are
 * waiting, or WAIT_MS after the first of them, so a slow trickle of sends
 * still shows "sent" promptly. A call has a large fixed cost (4,000 outcomes
 * took 798 ms in calls of 20 and 425 ms in calls of 100). Each message is
 * still marked just before its own request, so an outcome not yet written
 * when the process dies leaves its message "unknown", and reconciliation
 * settles it.
 */
export class Outcomes {
  static readonly WRITE_AT = 100;
  static readonly WAIT_MS = 250;
  private pending: (Result & { claim_token: string })[] = [];
  private writing: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushing = false;
  private failures: unknown[] = [];

  constructor(private sql: Sql, private summary: DeliverySummary) {}

  record(token: string, results: Result[]): void {
    for (const r of results) this.pending.push({ claim_token: token, ...r });
    this.schedule();
  }

  /** Writes what is left; throws what any write met. */
  async flush(): Promise<void> {
    this.flushing = true;
    clearTimeout(this.timer);
    await this.writing;
    await this.write().catch((err) => this.failures.push(err));
    if (this.failures.length > 0) throw this.failures[0];
  }

  // The writer looks again when it is done, so one write is on its way at a time.
  private schedule(): void {
    if (this.writing || this.flushing || this.pending.length === 0) return;
    if (this.pending.length >= Outcomes.WRITE_AT) this.startWriting();
    else this.timer ??= setTimeout(() => this.startWriting(), Outcomes.WAIT_MS);
  }

  private startWriting(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.writing = this.write().catch((err) => {
      this.failures.push(err);
    }).finally(() => {
      this.writing = null;
      this.schedule();
    });
  }

  private async write(): Promise<void> {
    if (this.pending.length === 0) return;
    const results = this.pending;
    this.pending = [];
    const [{ counts }] = await this.sql<{ counts: Record<string, number> }[]>`
      select public.complete_messages(${JSON.stringify(results)}::text::jsonb) as counts`;
    this.summary.sent += counts.sent ?? 0;
    this.summary.superseded += counts.superseded ?? 0;
    this.summary.failed += (counts.failed ?? 0) + (counts.opted_out ?? 0) +
      (counts.render_too_long ?? 0);
    this.summary.retried += (counts.retry ?? 0) + (counts.render_retry ?? 0);
    this.summary.unknown += counts.unknown ?? 0;
  }
}

function release(deps: DeliveryDeps, m: Claimed, at?: string): Result {
  return { id: m.id, outcome: "release", retry_at: at ?? retryAt(deps, 0) };
}

function allMembers(members: Claimed[], result: Omit<Result, "id">): { results: Result[] } {
  return { results: members.map((m) => ({ id: m.id, ...result })) };
}

/** The bodies to send, or the results that say why the unit does not go now. */
async function prepareUnit(
  deps: DeliveryDeps,
  opts: DeliveryOptions,
  unit: ClaimedUnit,
  logs: ClaudeLog[],
): Promise<{ bodies: string[] } | { results: Result[] }> {
  const { members, token } = unit;
  const renderRetry = (error: string) =>
    allMembers(members, {
      outcome: "render_retry",
      error,
      retry_at: retryAt(
        deps,
        backoffMs(RENDER_BACKOFF, members[0].render_attempts + 1, deps.random),
      ),
    });
  // Each Claude call ends by the run's deadline, so it never outlives the lease.
  const ask: Ask = (req) =>
    deps.complete!({ ...req, timeoutMs: Math.max(1_000, opts.deadline - deps.now()) });

  const bodies: string[] = [];
  for (const m of members) {
    const kept = m.final_message ?? m.rendered_body;
    if (kept !== null) {
      bodies.push(kept);
      continue;
    }
    if (!deps.complete) return renderRetry("no Claude configuration to render message_data");
    try {
      const rendered = await renderWithinSegments(deps, m, ask, logs);
      if (rendered.kind === "not_prose") {
        return renderRetry("the rendered text was not plain SMS prose");
      }
      if (rendered.kind === "too_long") {
        return allMembers(members, {
          outcome: "render_too_long",
          error:
            `the render was ${rendered.segments} SMS segments twice, over the maximum of ${deps.renderMaxSegments}`,
        });
      }
      await deps.sql`select public.keep_rendered_body(${token}, ${m.id}, ${rendered.body})`;
      bodies.push(rendered.body);
    } catch (err) {
      return renderRetry(`render failed: ${errorMessage(err)}`);
    }
  }

  for (const [i, m] of members.entries()) {
    if (!m.requires_fresh_context) continue;
    if (!deps.complete) return renderRetry("no Claude configuration for the freshness check");
    try {
      const since = await eventsSince(deps.sql, m.user_id, m.created_at);
      const res = await ask({
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
  return { bodies };
}

type Ask = (req: Omit<CompleteRequest, "timeoutMs">) => Promise<CompleteResult>;

/** Renders message_data to prose; a render over the segment maximum is asked again, once. */
async function renderWithinSegments(
  deps: DeliveryDeps,
  m: Claimed,
  ask: Ask,
  logs: ClaudeLog[],
): Promise<
  { kind: "ok"; body: string } | { kind: "not_prose" } | { kind: "too_long"; segments: number }
> {
  let segments = 0;
  for (const attempt of [1, 2]) {
    const res = await ask({
      model: deps.renderModel,
      system: RENDER_SYSTEM,
      user: renderPrompt(m.agent_id, m.message_data, attempt === 1 ? null : segments),
      maxTokens: 300,
    });
    logs.push({ ...res.log, userId: m.user_id, action: "render_message" });
    const body = acceptRendered(res.text);
    if (!body) return { kind: "not_prose" };
    segments = toSmsText(body).segments;
    if (segments <= deps.renderMaxSegments) return { kind: "ok", body };
  }
  return { kind: "too_long", segments };
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
