// Driving the front door from tests: agent keys made through the SQL API, and
// the agents function called over HTTP as any client would.
import { db, functionUrl } from "./helpers.ts";

export interface KeyOptions {
  tools?: string[];
  userIds?: string[];
  requestsPerMinute?: number;
}

export async function agentKey(
  o: KeyOptions = {},
): Promise<{ agentId: string; key: string }> {
  const agentId = `test-${crypto.randomUUID().slice(0, 8)}`;
  const [{ key }] = await db()<{ key: string }[]>`
    select public.create_agent_key(
      p_agent_id := ${agentId}, p_tools := ${o.tools ?? null}::text[],
      p_user_ids := ${o.userIds ?? null}::uuid[],
      p_requests_per_minute := ${o.requestsPerMinute ?? 10_000}) as key`;
  return { agentId, key };
}

export interface Reply {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
  headers: Headers;
}

export async function postAgents(
  key: string | null,
  body: unknown,
  init: RequestInit = {},
): Promise<Reply> {
  const res = await fetch(functionUrl("agents"), {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

/** Rows a tool could have written for a user, to show that a refused call wrote none. */
export async function footprint(userId: string): Promise<Record<string, number | string>> {
  const [row] = await db()<Record<string, number | string>[]>`
    select (select count(*)::int from public.message_queue where user_id = ${userId}) as messages,
           (select count(*)::int from public.scheduled_calls where user_id = ${userId}) as calls,
           (select count(*)::int from public.scheduled_calls
             where user_id = ${userId} and status = 'cancelled') as cancelled_calls,
           (select count(*)::int from public.interactions where user_id = ${userId}) as interactions,
           (select count(*)::int from public.agent_idempotency where user_id = ${userId})
             as idempotency,
           (select insights::text from public.users where id = ${userId}) as insights,
           (select quiet_hours_start::text || '-' || quiet_hours_end::text
              from public.users where id = ${userId}) as quiet_hours`;
  return row;
}

export const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();
