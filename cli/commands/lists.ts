// queue, calls, analyses, routines: filtered lists over the operator views.
import type { Sql } from "../../shared/db.ts";
import { CommandFailed, type Ctx, type Outcome, userId } from "../context.ts";
import { maskPhones, paintState, table } from "../output.ts";

interface ListFlags {
  user?: string;
  status?: string;
  since?: Date;
  limit: number;
}

type Row = Record<string, unknown>;

const flagsOf = (ctx: Ctx) => ctx.flags as unknown as ListFlags;
const userFilter = async (ctx: Ctx) => {
  const f = flagsOf(ctx);
  return f.user ? await userId(ctx.sql, f.user) : null;
};

function listed(ctx: Ctx, rows: Row[], columns: string[]): Outcome {
  const data = ctx.flags.reveal ? rows : maskPhones(rows);
  const paint = (c: string, t: string) => (c === "status" ? paintState(ctx.style, t) : t);
  return { data, text: table(ctx.style, columns, data, paint) };
}

/** Without --status: what is still in flight, soonest first; with it, newest first. */
export async function queue(ctx: Ctx): Promise<Outcome> {
  const f = flagsOf(ctx);
  const user = await userFilter(ctx);
  const since = f.since ?? null;
  const rows = f.status
    ? await ctx.sql<Row[]>`
        select * from public.operator_queue
         where status = ${f.status}
           and (${user}::uuid is null or user_id = ${user})
           and (${since}::timestamptz is null or created_at >= ${since})
         order by created_at desc limit ${f.limit}`
    : await ctx.sql<Row[]>`
        select * from public.operator_queue
         where status in ('queued', 'sending', 'unknown')
           and (${user}::uuid is null or user_id = ${user})
           and (${since}::timestamptz is null or created_at >= ${since})
         order by next_attempt_at limit ${f.limit}`;
  return listed(ctx, rows, [
    "id",
    "phone_number",
    "priority",
    "status",
    "waiting_because",
    "next_attempt_at",
    "body_preview",
  ]);
}

export async function calls(ctx: Ctx): Promise<Outcome> {
  const f = flagsOf(ctx);
  const user = await userFilter(ctx);
  const rows = await ctx.sql<Row[]>`
    select * from public.operator_calls
     where (${f.status ?? null}::text is null or status = ${f.status ?? null})
       and (${user}::uuid is null or user_id = ${user})
       and (${f.since ?? null}::timestamptz is null or scheduled_for >= ${f.since ?? null})
     order by scheduled_for desc limit ${f.limit}`;
  return listed(ctx, rows, [
    "id",
    "phone_number",
    "call_type",
    "status",
    "scheduled_local",
    "rrule",
    "last_error",
  ]);
}

export async function analyses(ctx: Ctx): Promise<Outcome> {
  const f = flagsOf(ctx);
  const user = await userFilter(ctx);
  const rows = await ctx.sql<Row[]>`
    select * from public.operator_analyses
     where (${f.status ?? null}::text is null or status = ${f.status ?? null})
       and (${user}::uuid is null or user_id = ${user})
       and (${f.since ?? null}::timestamptz is null or created_at >= ${f.since ?? null})
     order by created_at desc limit ${f.limit}`;
  return listed(ctx, rows, [
    "interaction_id",
    "phone_number",
    "channel",
    "status",
    "attempts",
    "runs",
    "cost_usd",
    "error",
  ]);
}

/** Routines arrive with their own migration; until then this says so. */
export async function requireRoutines(sql: Sql): Promise<void> {
  const [{ installed }] = await sql<{ installed: boolean }[]>`
    select public.operator_routines_installed() as installed`;
  if (!installed) {
    throw new CommandFailed(
      "routines are not installed: apply the routines migration (supabase db push)",
    );
  }
}

export async function routines(ctx: Ctx): Promise<Outcome> {
  await requireRoutines(ctx.sql);
  const f = flagsOf(ctx);
  const user = await userFilter(ctx);
  // Read as JSON so this keeps working whatever columns the routines table grows.
  const rows = await ctx.sql<{ r: Row }[]>`
    select to_jsonb(r) || jsonb_build_object('phone_number', u.phone_number) as r
      from public.routines r join public.users u on u.id = r.user_id
     where (${f.status ?? null}::text is null or r.status = ${f.status ?? null})
       and (${user}::uuid is null or r.user_id = ${user})
       and (${f.since ?? null}::timestamptz is null
            or (to_jsonb(r) ->> 'created_at')::timestamptz >= ${f.since ?? null})
     order by r.next_run_at nulls last limit ${f.limit}`;
  return listed(ctx, rows.map((x) => x.r), [
    "id",
    "phone_number",
    "name",
    "status",
    "rrule",
    "next_run_at",
  ]);
}
