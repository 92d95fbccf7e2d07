// Driving delivery from tests: the queue RPC, the process-queue function, and
// the control APIs of the local SMS catcher and scripted model.
import type { Sql } from "../../shared/db.ts";
import { createUser, db, functionUrl, stack, stackTest, waitFor } from "./helpers.ts";

const required = (name: string) => {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set: run the suite with npm test`);
  return value;
};
const catcherUrl = () => required("TEST_CATCHER_URL");
const claudeUrl = () => required("TEST_CLAUDE_URL");

async function call(url: string, init?: RequestInit): Promise<unknown> {
  const res = await fetch(url, init);
  const text = await res.text();
  if (!res.ok) throw new Error(`${init?.method ?? "GET"} ${url}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
const post = (url: string, body: unknown) =>
  call(url, { method: "POST", body: JSON.stringify(body) });

export interface Caught {
  sid: string;
  to: string;
  body: string;
  statusCallback: string | null;
}

export const catcher = {
  messages: async (to?: string) => {
    const all = (await call(`${catcherUrl()}/__catcher/messages`)) as Caught[];
    return to ? all.filter((m) => m.to === to) : all;
  },
  behaviour: (b: Record<string, unknown>) => post(`${catcherUrl()}/__catcher/behaviour`, b),
  status: (b: { url: string; sid: string; status: string; errorCode?: string }) =>
    post(`${catcherUrl()}/__catcher/status`, b) as Promise<{ status: number; body: string }>,
  inbound: (b: { from: string; body: string; to?: string }) =>
    post(`${catcherUrl()}/__catcher/inbound`, {
      url: functionUrl("twilio-inbound"),
      to: "+12015550100",
      ...b,
    }) as Promise<{ status: number; body: string }>,
};

export const scripted = {
  script: (steps: unknown[]) => post(`${claudeUrl()}/__scripted/script`, steps),
  requests: async () =>
    (await call(`${claudeUrl()}/__scripted/requests`)) as {
      body: { system?: unknown; messages: { content: unknown }[]; tools?: unknown[] };
    }[],
  reset: () => post(`${claudeUrl()}/__scripted/reset`, {}),
};

export type Summary = Record<string, number | string>;

export async function processQueue(body: Record<string, unknown> = {}): Promise<Summary> {
  return (await call(functionUrl("process-queue"), {
    method: "POST",
    headers: { authorization: `Bearer ${stack.secret}`, "content-type": "application/json" },
    body: JSON.stringify({ source: "test", ...body }),
  })) as Summary;
}

export interface Enqueue {
  userId: string;
  priority?: string;
  data?: Record<string, unknown>;
  text?: string;
  scheduledFor?: Date;
  expiresAt?: Date;
  sequence?: { id: string; position: number; total: number };
  idempotencyKey?: string;
  supersedeKey?: string;
  freshContext?: boolean;
}

export async function enqueue(e: Enqueue, sql: Sql = db()): Promise<string> {
  const [{ id }] = await sql<{ id: string }[]>`
    select public.enqueue_message(
      p_user_id := ${e.userId},
      p_agent_id := 'test-agent',
      p_priority := ${e.priority ?? "medium"},
      p_message_data := ${e.data ? JSON.stringify(e.data) : null}::text::jsonb,
      p_final_message := ${e.text ?? null},
      p_requires_fresh_context := ${e.freshContext ?? false},
      p_scheduled_for := ${e.scheduledFor ?? new Date()},
      p_expires_at := ${e.expiresAt ?? null},
      p_sequence_id := ${e.sequence?.id ?? null},
      p_sequence_position := ${e.sequence?.position ?? null},
      p_sequence_total := ${e.sequence?.total ?? null},
      p_idempotency_key := ${e.idempotencyKey ?? null},
      p_supersede_key := ${e.supersedeKey ?? null}
    ) as id`;
  return id;
}

export async function statusOf(
  id: string,
): Promise<{ status: string; status_reason: string | null }> {
  const [row] = await db()<{ status: string; status_reason: string | null }[]>`
    select status, status_reason from public.message_queue where id = ${id}`;
  return row;
}

const SETTLED = new Set([
  "sent",
  "delivered",
  "failed",
  "superseded",
  "expired",
  "cancelled",
  "unknown",
]);

/** Runs the processor until the message leaves the states a run passes through. */
export async function processUntilSettled(id: string, what = "the message to settle") {
  return await waitFor(what, async () => {
    const row = await statusOf(id);
    if (SETTLED.has(row.status)) return row;
    await processQueue({ time_budget_ms: 5_000 });
    const after = await statusOf(id);
    return SETTLED.has(after.status) ? after : null;
  });
}

/** A user with no quiet hours and room in the budget unless told otherwise. */
export async function deliveryUser(
  sql: Sql,
  fields: Partial<{
    timezone: string;
    quiet_hours_start: string;
    quiet_hours_end: string;
    daily_message_limit: number;
    hourly_message_limit: number;
  }> = {},
): Promise<{ id: string; phone_number: string }> {
  const user = await createUser(sql, { timezone: fields.timezone });
  await sql`
    update public.users
       set quiet_hours_start = ${fields.quiet_hours_start ?? "00:00"},
           quiet_hours_end = ${fields.quiet_hours_end ?? "00:00"},
           daily_message_limit = ${fields.daily_message_limit ?? 100},
           hourly_message_limit = ${fields.hourly_message_limit ?? 100}
     where id = ${user.id}`;
  return user;
}

/**
 * Pauses the per-minute pg_cron run and the fast lane, for tests that play a
 * processor by hand and must be the only one claiming.
 */
export async function withoutCron(fn: () => Promise<void>): Promise<void> {
  await setBackgroundRuns(false);
  try {
    await fn();
  } finally {
    await setBackgroundRuns(true);
  }
}

async function setBackgroundRuns(on: boolean): Promise<void> {
  await db()`update cron.job set active = ${on} where jobname = 'process-queue'`;
  await db()`update public.orchestrator_settings set value = ${on ? 1 : 0}
              where name = 'fast_lane_enabled'`;
}

/** A test that plays a processor by hand, with the per-minute run paused. */
export function soleProcessorTest(name: string, fn: () => Promise<void>): void {
  stackTest(name, () => withoutCron(fn));
}
