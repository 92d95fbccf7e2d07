// Messages whose send outcome is unknown (the request left, no answer came
// back) are reconciled, not abandoned: after a quiet period Twilio's Messages
// list is asked whether the message exists. Found: it takes Twilio's status.
// Certainly absent: record_reconciliation queues it to go once more. Not
// certain: asked again later. Every decision is made in SQL.
import { z } from "zod";
import type { Sql } from "../db.ts";
import { mapLimit } from "../concurrency.ts";
import type { LookupOutcome } from "../twilio/client.ts";

export interface ReconcileDeps {
  sql: Sql;
  lookUp: (sms: { to: string; body: string; createdAfter: Date }) => Promise<LookupOutcome>;
  now: () => number;
}

export interface ReconcileOptions {
  /** Seconds after its send began before an unknown message is looked up. */
  afterSeconds: number;
  deadline: number;
  batchSize: number;
  concurrency: number;
}

export interface ReconcileSummary {
  found: number;
  resent: number;
  failed: number;
  unresolved: number;
}

const claimed = z.object({
  claim_token: z.string(),
  messages: z.array(z.object({
    id: z.string(),
    to: z.string(),
    body: z.string().nullable(),
    send_started_at: z.string(),
  })),
});

interface Reconciled {
  id: string;
  outcome: LookupOutcome["kind"];
  twilio_sid?: string;
  twilio_status?: string;
  error_code?: string;
  retry_at?: string;
}

export async function reconcileUnknownMessages(
  deps: ReconcileDeps,
  opts: ReconcileOptions,
): Promise<ReconcileSummary> {
  const summary: ReconcileSummary = { found: 0, resent: 0, failed: 0, unresolved: 0 };
  while (deps.now() < opts.deadline) {
    const [{ batch }] = await deps.sql<{ batch: unknown }[]>`
      select public.claim_unknown_messages(${opts.batchSize}, ${opts.afterSeconds}) as batch`;
    const { claim_token, messages } = claimed.parse(batch);
    if (messages.length === 0) break;
    const results = await mapLimit(messages, opts.concurrency, async (m): Promise<Reconciled> => {
      const outcome = m.body === null
        ? { kind: "unknown" as const, message: "no body was recorded" }
        : await deps.lookUp({ to: m.to, body: m.body, createdAfter: new Date(m.send_started_at) });
      return toReconciled(deps, opts, m.id, outcome);
    });
    const [{ counts }] = await deps.sql<{ counts: Record<string, number> }[]>`
      select public.record_reconciliation(${claim_token}, ${JSON.stringify(results)}::text::jsonb)
        as counts`;
    summary.found += counts.found ?? 0;
    summary.resent += counts.resent ?? 0;
    summary.failed += counts.failed ?? 0;
    summary.unresolved += counts.unknown ?? 0;
  }
  return summary;
}

function toReconciled(
  deps: ReconcileDeps,
  opts: ReconcileOptions,
  id: string,
  outcome: LookupOutcome,
): Reconciled {
  switch (outcome.kind) {
    case "found":
      return {
        id,
        outcome: "found",
        twilio_sid: outcome.sid,
        twilio_status: outcome.status,
        error_code: outcome.errorCode === null ? undefined : String(outcome.errorCode),
      };
    case "absent":
      return { id, outcome: "absent" };
    case "unknown":
      // Asked again after another quiet period.
      return {
        id,
        outcome: "unknown",
        retry_at: new Date(deps.now() + opts.afterSeconds * 1000).toISOString(),
      };
  }
}
