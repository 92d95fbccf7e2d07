// What each tool does, on the product's own RPCs and rules: enqueue_message,
// schedule_call, cancel_scheduled_call, skip_scheduled_call, the interactions
// insert (and its analysis trigger), the analysis's memory consolidation. Each
// runs inside the registry's transaction for one already-authorised user.
import type postgres from "postgres";
import { consolidate, normaliseKey, readInsights, writeInsights } from "../analysis/memory.ts";
import { boundContext, clip, type UserContext } from "./context.ts";
import { AgentError } from "./errors.ts";
import type { ParsedInput, ToolName, ToolOutput } from "./schemas.ts";
import { ROUTINE_TOOLS } from "../routines/agent_tools.ts";

/** The registry's transaction. */
export type Tx = postgres.TransactionSql;

export interface ToolContext {
  tx: Tx;
  agentId: string;
  /** The key the product's own RPCs store, namespaced by agent; null without one. */
  idempotencyKey: string | null;
  now: Date;
}

export interface ToolImpl<T extends ToolName> {
  /** The user the call acts for: from the input, or the owner of the id it names (404 if none). */
  owner(tx: Tx, input: ParsedInput<T>): Promise<string>;
  run(ctx: ToolContext, input: ParsedInput<T>): Promise<ToolOutput<T>>;
  /** RPC parameter names (without p_) that the input calls otherwise. */
  renames?: Record<string, string>;
  /** The field to name for a database refusal that names none. */
  fallbackField?: string;
}

type Row = { r: never };
const one = async <T>(rows: Promise<Row[]>): Promise<T> => (await rows)[0].r as T;
const fromInput = <T extends ToolName>(_tx: Tx, input: ParsedInput<T>) =>
  Promise.resolve((input as { user_id: string }).user_id);

function found(rows: { user_id: string }[], what: string, id: string, field: string): string {
  if (!rows[0]) throw new AgentError("not_found", `unknown ${what} ${id}`, field);
  return rows[0].user_id;
}

const json = (value: unknown) => (value === undefined ? null : JSON.stringify(value));

export const TOOLS: { [T in ToolName]: ToolImpl<T> } = {
  queue_message: {
    owner: fromInput,
    renames: { final_message: "text", message_data: "data" },
    async run({ tx, agentId, idempotencyKey }, i) {
      const [{ id }] = await tx<{ id: string }[]>`
        select public.enqueue_message(
          p_user_id := ${i.user_id},
          p_agent_id := ${`agent:${agentId}`},
          p_priority := ${i.priority},
          p_message_data := ${json(i.data)}::text::jsonb,
          p_final_message := ${i.text ?? null},
          p_can_delay := ${i.can_delay},
          p_requires_fresh_context := ${i.requires_fresh_context},
          p_scheduled_for := coalesce(${i.scheduled_for ?? null}::timestamptz, now()),
          p_expires_at := ${i.expires_at ?? null}::timestamptz,
          p_idempotency_key := ${idempotencyKey},
          -- Namespaced: one agent's supersede key never drops another's messages.
          p_supersede_key := ${i.supersede_key ? `agent:${agentId}:${i.supersede_key}` : null}
        )::text as id`;
      const [row] = await tx<{ status: ToolOutput<"queue_message">["status"] }[]>`
        select status from public.message_queue where id = ${id}`;
      return { message_id: id, status: row.status, replayed: false };
    },
  },

  get_message_status: {
    owner: async (tx, i) =>
      found(
        await tx`select user_id from public.message_queue where id = ${i.message_id}`,
        "message",
        i.message_id,
        "message_id",
      ),
    run: ({ tx }, i) =>
      one(tx`
        select jsonb_build_object(
          'message_id', m.id, 'user_id', m.user_id, 'status', m.status,
          'reason', m.status_reason, 'error_code', m.error_code,
          'twilio_status', (select s.status from public.messages s
                             where s.message_queue_id = m.id and s.direction = 'outbound'
                             order by s.created_at desc limit 1),
          'scheduled_for', m.scheduled_for,
          'next_attempt_at', case when m.status = 'queued' then m.next_attempt_at end,
          'sent_at', m.sent_at, 'delivered_at', m.delivered_at) as r
          from public.message_queue m where m.id = ${i.message_id}`),
  },

  schedule_call: {
    owner: fromInput,
    async run({ tx, idempotencyKey }, i) {
      const [{ id }] = await tx<{ id: string }[]>`
        select public.schedule_call(
          p_user_id := ${i.user_id}, p_call_type := ${i.call_type},
          p_scheduled_for := ${i.scheduled_for}::timestamptz,
          p_custom_instructions := ${i.custom_instructions ?? null},
          p_rrule := ${i.rrule ?? null}, p_idempotency_key := ${idempotencyKey})::text as id`;
      const row = await one<{ status: string; scheduled_for: string }>(tx`
        select jsonb_build_object('status', status, 'scheduled_for', scheduled_for) as r
          from public.scheduled_calls where id = ${id}`);
      return { call_id: id, ...row, replayed: false };
    },
  },

  cancel_scheduled_call: {
    owner: async (tx, i) =>
      found(
        await tx`select user_id from public.scheduled_calls where id = ${i.call_id}`,
        "call",
        i.call_id,
        "call_id",
      ),
    async run({ tx }, i) {
      if (i.scope === "occurrence") {
        const [before] = await tx<{ status: string }[]>`
          select status from public.scheduled_calls where id = ${i.call_id} for update`;
        const [{ next }] = await tx<{ next: string | null }[]>`
          select public.skip_scheduled_call(p_call_id := ${i.call_id}, p_reason := ${i.reason})::text
            as next`;
        return {
          call_id: i.call_id,
          scope: i.scope,
          cancelled: before.status === "pending",
          next_call_id: next,
        };
      }
      // The series: its pending occurrence, whichever occurrence's id was given.
      const rows = await tx<{ cancelled: boolean }[]>`
        select public.cancel_scheduled_call(p_call_id := c.id, p_reason := ${i.reason}) as cancelled
          from public.scheduled_calls c, public.scheduled_calls given
         where given.id = ${i.call_id}
           and (c.id = given.id or c.id = given.recurrence_of
                or c.recurrence_of = coalesce(given.recurrence_of, given.id))
           and c.status = 'pending'`;
      return {
        call_id: i.call_id,
        scope: i.scope,
        cancelled: rows.some((r) => r.cancelled),
        next_call_id: null,
      };
    },
  },

  get_user_context: {
    owner: fromInput,
    async run({ tx }, i) {
      const context = await one<UserContext | null>(tx`
        select case when u.id is null then null else jsonb_build_object(
          'user_id', u.id,
          'timezone', u.timezone,
          'local_time', to_char(now() at time zone u.timezone, 'Dy YYYY-MM-DD HH24:MI'),
          'quiet_hours', jsonb_build_object(
            'start', to_char(u.quiet_hours_start, 'HH24:MI'),
            'end', to_char(u.quiet_hours_end, 'HH24:MI'),
            'now', case
              when u.quiet_hours_start = u.quiet_hours_end then false
              when u.quiet_hours_start < u.quiet_hours_end
                then (now() at time zone u.timezone)::time >= u.quiet_hours_start
                 and (now() at time zone u.timezone)::time < u.quiet_hours_end
              else (now() at time zone u.timezone)::time >= u.quiet_hours_start
                or (now() at time zone u.timezone)::time < u.quiet_hours_end
            end),
          'preferred_hours', null,
          'active_now', coalesce(u.last_inbound_at > now() - interval '10 minutes', false),
          'sms_opted_out', u.sms_opted_out_at is not null,
          'budget', (
            select jsonb_build_object(
              'daily_limit', u.daily_message_limit,
              'used_today', coalesce(b.units_used, 0),
              'left_today', greatest(u.daily_message_limit - coalesce(b.units_used, 0), 0),
              'hourly_limit', u.hourly_message_limit)
              from (select 1) one
              left join public.user_message_budget b
                on b.user_id = u.id and b.local_date = (now() at time zone u.timezone)::date),
          'memory', coalesce((
            select jsonb_agg(jsonb_build_object(
                     'key', m ->> 'key', 'value', m ->> 'value',
                     'category', coalesce(m ->> 'category', 'other'),
                     'last_seen', coalesce(m ->> 'last_seen', ''))
                   order by m ->> 'last_seen' desc nulls last)
              from jsonb_array_elements(
                case when jsonb_typeof(u.insights -> 'items') = 'array'
                     then u.insights -> 'items' else '[]'::jsonb end) m
             where jsonb_typeof(m) = 'object' and m ? 'key' and m ? 'value'), '[]'::jsonb),
          'session_summary', (select nullif(s.context_summary, '') from public.user_sessions s
                               where s.user_id = u.id),
          'open_commitments', coalesce((
            select jsonb_agg(jsonb_build_object('id', c.id, 'description', left(c.description, 300),
                                                'due_at', c.due_at)
                             order by c.due_at nulls last, c.created_at)
              from (select * from public.commitments where user_id = u.id and status = 'open'
                     order by due_at nulls last, created_at limit 10) c), '[]'::jsonb),
          'pending_calls', coalesce((
            select jsonb_agg(jsonb_build_object('id', c.id, 'call_type', c.call_type,
                                                'scheduled_for', c.scheduled_for, 'rrule', c.rrule)
                             order by c.scheduled_for)
              from (select * from public.scheduled_calls where user_id = u.id and status = 'pending'
                     order by scheduled_for limit 10) c), '[]'::jsonb),
          'queued_messages', coalesce((
            select jsonb_agg(jsonb_build_object(
                     'id', m.id, 'priority', m.priority, 'scheduled_for', m.scheduled_for,
                     'preview', left(coalesce(m.final_message, m.message_data::text), 120))
                   order by m.next_attempt_at)
              from (select * from public.message_queue where user_id = u.id and status = 'queued'
                     order by next_attempt_at limit 10) m), '[]'::jsonb),
          'last_interactions', coalesce((
            select jsonb_agg(jsonb_build_object(
                     'id', x.id, 'channel', x.channel, 'created_at', x.created_at,
                     'sentiment', x.sentiment, 'excerpt', left(x.transcript, 400))
                   order by x.created_at desc)
              from (select * from public.interactions where user_id = u.id
                     order by created_at desc limit 5) x), '[]'::jsonb),
          'truncated', false) end as r
          from (select ${i.user_id}::uuid as id) wanted
          left join public.users u on u.id = wanted.id`);
      if (!context) throw new AgentError("not_found", `unknown user ${i.user_id}`, "user_id");
      return boundContext({
        ...context,
        memory: context.memory.map((m) => ({ ...m, value: clip(m.value, 300) })),
      });
    },
  },

  record_interaction: {
    owner: fromInput,
    async run({ tx }, i) {
      await requireUser(tx, i.user_id);
      if (i.scheduled_call_id) {
        // Another user's call is reported exactly like one that does not exist.
        const [call] = await tx`
          select 1 from public.scheduled_calls
           where id = ${i.scheduled_call_id} and user_id = ${i.user_id}`;
        if (!call) {
          throw new AgentError(
            "not_found",
            `unknown call ${i.scheduled_call_id}`,
            "scheduled_call_id",
          );
        }
      }
      const [row] = await tx<{ id: string; analysis_status: string }[]>`
        insert into public.interactions (user_id, call_type, channel, transcript, scheduled_call_id)
        values (${i.user_id}, ${i.call_type}, ${i.channel}, ${i.transcript},
                ${i.scheduled_call_id ?? null})
        returning id::text, analysis_status`;
      return { interaction_id: row.id, analysis_status: row.analysis_status, replayed: false };
    },
  },

  search_interactions: {
    owner: fromInput,
    async run({ tx }, i) {
      await requireUser(tx, i.user_id);
      const results = await one<ToolOutput<"search_interactions">["results"]>(tx`
        with q as (select websearch_to_tsquery('english', ${i.query}) as q),
        hits as (
          select s.interaction_id, s.created_at, ts_rank_cd(s.document, q.q) as rank
            from public.interaction_search s, q
           where s.user_id = ${i.user_id} and s.document @@ q.q
           order by rank desc, s.created_at desc
           limit ${i.limit}
        ),
        summary as (
          select s.updated_at as created_at,
                 ts_rank_cd(public.search_document(s.context_summary), q.q) as rank,
                 s.context_summary
            from public.user_sessions s, q
           where s.user_id = ${i.user_id}
             and public.search_document(s.context_summary) @@ q.q
        ),
        found as (
          -- Snippets only for what is returned: ts_headline reads the whole text.
          select 'interaction' as kind, h.interaction_id, x.channel, h.created_at, h.rank,
                 ts_headline('english', x.transcript, q.q,
                   'StartSel=**, StopSel=**, MaxFragments=2, MaxWords=18, MinWords=6') as snippet
            from hits h join public.interactions x on x.id = h.interaction_id, q
          union all
          select 'session_summary', null, null, m.created_at, m.rank,
                 ts_headline('english', m.context_summary, q.q,
                   'StartSel=**, StopSel=**, MaxFragments=2, MaxWords=18, MinWords=6')
            from summary m, q
        )
        select coalesce(jsonb_agg(jsonb_build_object(
                 'kind', kind, 'interaction_id', interaction_id, 'channel', channel,
                 'created_at', created_at, 'rank', round(rank::numeric, 4), 'snippet', snippet)
               order by rank desc, created_at desc), '[]'::jsonb) as r
          from (select * from found order by rank desc, created_at desc limit ${i.limit}) f`);
      return { results };
    },
  },

  remember: {
    owner: fromInput,
    async run({ tx, agentId, now }, i) {
      const [user] = await tx<{ insights: unknown }[]>`
        select insights from public.users where id = ${i.user_id} for no key update`;
      if (!user) throw new AgentError("not_found", `unknown user ${i.user_id}`, "user_id");
      const before = readInsights(user.insights);
      const at = now.toISOString();
      // The same consolidation as the analysis, with the agent as the source.
      const after = consolidate(before, { items: i.items, retire: i.retire }, {
        interactionId: `agent:${agentId}`,
        at,
      });
      const had = new Set(before.map((item) => item.key));
      const has = new Set(after.map((item) => item.key));
      const touched = [...new Set((i.items ?? []).map((item) => normaliseKey(item.key)))]
        .filter((key) => has.has(key));
      await tx`
        update public.users
           set insights = ${JSON.stringify(writeInsights(user.insights, after, at))}::text::jsonb
         where id = ${i.user_id}`;
      return {
        items_stored: after.length,
        added: touched.filter((key) => !had.has(key)),
        refreshed: touched.filter((key) => had.has(key)),
        retired: [...had].filter((key) => !has.has(key)),
      };
    },
  },

  set_contact_preferences: {
    owner: fromInput,
    renames: { start: "quiet_hours_start", end: "quiet_hours_end" },
    fallbackField: "quiet_hours_start",
    async run({ tx }, i) {
      if (i.quiet_hours_start !== undefined || i.quiet_hours_end !== undefined) {
        await tx`select public.set_quiet_hours(
          p_user_id := ${i.user_id}, p_start := ${i.quiet_hours_start ?? null}::time,
          p_end := ${i.quiet_hours_end ?? null}::time)`;
      }
      if (i.preferred_hours_start !== undefined) {
        await tx`select public.set_preferred_hours(
          p_user_id := ${i.user_id}, p_start := ${i.preferred_hours_start}::time,
          p_end := ${i.preferred_hours_end ?? null}::time)`;
      }
      return await one(tx`
        select jsonb_build_object(
          'user_id', id,
          'quiet_hours_start', to_char(quiet_hours_start, 'HH24:MI'),
          'quiet_hours_end', to_char(quiet_hours_end, 'HH24:MI'),
          'preferred_hours_start', to_char(preferred_hours_start, 'HH24:MI'),
          'preferred_hours_end', to_char(preferred_hours_end, 'HH24:MI')) as r
          from public.users where id = ${i.user_id}`);
    },
  },
  ...ROUTINE_TOOLS,
};

async function requireUser(tx: Tx, userId: string): Promise<void> {
  const [row] = await tx`select 1 from public.users where id = ${userId}`;
  if (!row) throw new AgentError("not_found", `unknown user ${userId}`, "user_id");
}
