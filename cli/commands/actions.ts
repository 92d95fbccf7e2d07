// The operator's actions, each through the product's own RPC (which holds the
// state rules), each confirmed first unless --yes.
import { maskPhone } from "../../shared/log.ts";
import { CommandFailed, type Ctx, type Outcome, userId } from "../context.ts";
import { requireRoutines } from "./lists.ts";

async function confirmed(ctx: Ctx, question: string): Promise<void> {
  if (!(await ctx.confirm(question))) throw new CommandFailed("not confirmed: nothing changed");
}

const reasonOf = (ctx: Ctx) => (ctx.flags.reason as string | undefined) ?? null;

function done(data: Record<string, unknown>, text: string): Outcome {
  return { data, text };
}

async function messageLine(ctx: Ctx): Promise<string> {
  const [m] = await ctx.sql<{ status: string; priority: string; body_preview: string }[]>`
    select status, priority, body_preview from public.operator_queue where id = ${ctx.target!}`;
  if (!m) throw new CommandFailed(`unknown message ${ctx.target}`);
  return `${m.priority} message ${ctx.target} (${m.status}): "${m.body_preview}"`;
}

export async function cancel(ctx: Ctx): Promise<Outcome> {
  await confirmed(ctx, `Cancel the ${await messageLine(ctx)}?`);
  const [{ r }] = await ctx.sql<{ r: { cancelled: string[] } }[]>`
    select public.cancel_message(${ctx.target!}, ${reasonOf(ctx)}) as r`;
  return done(r, `cancelled ${r.cancelled.length} message(s): ${r.cancelled.join(", ")}`);
}

export async function retry(ctx: Ctx): Promise<Outcome> {
  await confirmed(ctx, `Send the ${await messageLine(ctx)} again?`);
  const [{ r }] = await ctx.sql<{ r: { retried: string[] } }[]>`
    select public.retry_message(${ctx.target!}) as r`;
  return done(r, `queued again, due now: ${r.retried.join(", ")}`);
}

export async function redrive(ctx: Ctx): Promise<Outcome> {
  const [i] = await ctx.sql<{ status: string; error: string | null }[]>`
    select status, error from public.operator_analyses where interaction_id = ${ctx.target!}`;
  if (!i) throw new CommandFailed(`unknown interaction ${ctx.target}`);
  await confirmed(
    ctx,
    `Run the analysis of interaction ${ctx.target} (${i.status}: ${i.error ?? "no error"}) again?`,
  );
  const [{ r }] = await ctx.sql<{ r: { dispatched: boolean } }[]>`
    select public.redrive_analysis(${ctx.target!}) as r`;
  return done(
    r,
    r.dispatched
      ? "analysis pending again and sent to analyze-interaction"
      : "analysis pending again; the per-minute run sends it (Vault secrets missing?)",
  );
}

export async function skip(ctx: Ctx): Promise<Outcome> {
  const [c] = await ctx.sql<{ status: string; call_type: string; scheduled_local: string }[]>`
    select status, call_type, scheduled_local from public.operator_calls where id = ${ctx.target!}`;
  if (!c) throw new CommandFailed(`unknown call ${ctx.target}`);
  await confirmed(ctx, `Skip the ${c.call_type} call at ${c.scheduled_local} (${c.status})?`);
  const [{ next }] = await ctx.sql<{ next: string | null }[]>`
    select public.skip_scheduled_call(${ctx.target!}, ${
    reasonOf(ctx) ?? "skipped by an operator"
  }) as next`;
  return done(
    { call_id: ctx.target, status: "cancelled", next_call_id: next },
    next ? `skipped; the series goes on with call ${next}` : "skipped; no later occurrence",
  );
}

async function routineRpc(ctx: Ctx, action: "pause" | "resume"): Promise<Outcome> {
  await requireRoutines(ctx.sql);
  const [r] = await ctx.sql<{ name: string; status: string }[]>`
    select name, status from public.routines where id = ${ctx.target!}`;
  if (!r) throw new CommandFailed(`unknown routine ${ctx.target}`);
  await confirmed(
    ctx,
    `${action === "pause" ? "Pause" : "Resume"} routine "${r.name}" (${r.status})?`,
  );
  if (action === "pause") await ctx.sql`select public.pause_routine(${ctx.target!})`;
  else await ctx.sql`select public.resume_routine(${ctx.target!})`;
  const [after] = await ctx.sql<{ status: string }[]>`
    select status from public.routines where id = ${ctx.target!}`;
  return done(
    { routine_id: ctx.target, status: after.status },
    `routine ${ctx.target} is ${after.status}`,
  );
}

export const pause = (ctx: Ctx) => routineRpc(ctx, "pause");
export const resume = (ctx: Ctx) => routineRpc(ctx, "resume");

export async function forget(ctx: Ctx): Promise<Outcome> {
  const id = await userId(ctx.sql, ctx.target!);
  const [u] = await ctx.sql<{ phone_number: string }[]>`
    select phone_number from public.users where id = ${id}`;
  await confirmed(
    ctx,
    `Delete everything held about user ${id} (${
      maskPhone(u.phone_number)
    })? This cannot be undone.`,
  );
  const [{ r }] = await ctx.sql<{ r: { deleted: Record<string, number> } }[]>`
    select public.forget_user(${id}) as r`;
  const counts = Object.entries(r.deleted).map(([t, n]) => `${t} ${n}`).join(", ");
  return done(r, `forgot user ${id}: deleted ${counts || "the user row only"}`);
}
