// The routine tools of the front door, on the routine RPCs. Each runs inside the
// registry's transaction for an authorised user; a routine named by id acts
// for its owner.
import { AgentError } from "../agents/errors.ts";
import type { ToolImpl, Tx } from "../agents/tools.ts";
import type { ROUTINE_TOOL_SCHEMAS } from "./agent_schemas.ts";

type RoutineToolName = keyof typeof ROUTINE_TOOL_SCHEMAS;

async function ownerOf(tx: Tx, input: { routine_id: string }): Promise<string> {
  const [row] = await tx<{ user_id: string }[]>`
    select user_id::text from public.routines where id = ${input.routine_id}`;
  if (!row) throw new AgentError("not_found", `unknown routine ${input.routine_id}`, "routine_id");
  return row.user_id;
}

const fromInput = (_tx: Tx, input: { user_id: string }) => Promise.resolve(input.user_id);

type State = {
  routine_id: string;
  status: "active" | "paused" | "ended";
  snoozed_until: string | null;
  next_run_at: string | null;
  params: Record<string, unknown>;
};

async function stateOf(tx: Tx, id: string): Promise<State> {
  const [row] = await tx<State[]>`
    select id::text as routine_id, status, params,
           to_char(snoozed_until at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as snoozed_until,
           to_char(next_run_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as next_run_at
      from public.routines where id = ${id}`;
  return row;
}

const withoutParams = ({ params: _, ...state }: State) => state;

const byId = (
  action: (tx: Tx, id: string) => Promise<unknown>,
) => ({
  owner: ownerOf,
  async run({ tx }: { tx: Tx }, i: { routine_id: string }) {
    await action(tx, i.routine_id);
    return withoutParams(await stateOf(tx, i.routine_id));
  },
});

export const ROUTINE_TOOLS: { [T in RoutineToolName]: ToolImpl<T> } = {
  create_routine: {
    owner: fromInput,
    async run({ tx, agentId, idempotencyKey }, i) {
      const [{ id }] = await tx<{ id: string }[]>`
        select public.create_routine(
          p_user_id := ${i.user_id}, p_name := ${i.name},
          p_steps := ${JSON.stringify(i.steps)}::text::jsonb,
          p_rrule := ${i.rrule ?? null}, p_run_at := ${i.run_at ?? null}::timestamptz,
          p_params := ${JSON.stringify(i.params ?? {})}::text::jsonb,
          p_idempotency_key := ${idempotencyKey}, p_missed := ${i.missed ?? "once"},
          p_created_by := ${`agent:${agentId}`})::text as id`;
      return { ...withoutParams(await stateOf(tx, id)), replayed: false };
    },
  },
  pause_routine: byId((tx, id) => tx`select public.pause_routine(${id})`),
  resume_routine: byId((tx, id) => tx`select public.resume_routine(${id})`),
  end_routine: byId((tx, id) => tx`select public.end_routine(${id})`),
  snooze_routine: {
    owner: ownerOf,
    async run({ tx }, i) {
      await tx`select public.snooze_routine(${i.routine_id}, ${i.until}::timestamptz)`;
      return withoutParams(await stateOf(tx, i.routine_id));
    },
  },
  run_routine_now: {
    owner: ownerOf,
    async run({ tx }, i) {
      const [{ id }] = await tx<{ id: string }[]>`
        select public.run_routine_now(${i.routine_id})::text as id`;
      return { routine_id: i.routine_id, run_id: id };
    },
  },
  enable_builtin_routine: {
    owner: fromInput,
    async run({ tx }, i) {
      const [{ id }] = await tx<{ id: string }[]>`
        select public.enable_builtin_routine(${i.user_id}, ${i.template},
          ${JSON.stringify(i.params ?? {})}::text::jsonb)::text as id`;
      return await stateOf(tx, id);
    },
  },
};
