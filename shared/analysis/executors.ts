// The SQL side of each tool. Every call carries the claim (token and
// interaction), never a user id: the RPC acts for the claimed interaction's
// user, and only while the claim is current. A refusal by the database (bad
// value, unknown or foreign id, a cap) is a ToolRefused the model is told
// about; anything else (connection lost, a lapsed claim) fails the run.
import type { Sql } from "../db.ts";
import type {
  CancelScheduledCallInput,
  QueueMessageInput,
  RecordCommitmentInput,
  ScheduleCallInput,
  SetContactPreferencesInput,
  SetRoutineInput,
  UpdateCommitmentInput,
} from "./tools.ts";

export class ToolRefused extends Error {
  override name = "ToolRefused";
}

export type ToolResult = Record<string, unknown>;

/** The tools with an effect in the database; each takes the call's idempotency key. */
export interface Executors {
  schedule_call(input: ScheduleCallInput, key: string): Promise<ToolResult>;
  cancel_scheduled_call(input: CancelScheduledCallInput, key: string): Promise<ToolResult>;
  record_commitment(input: RecordCommitmentInput, key: string): Promise<ToolResult>;
  update_commitment(input: UpdateCommitmentInput, key: string): Promise<ToolResult>;
  queue_message(input: QueueMessageInput, key: string): Promise<ToolResult>;
  set_contact_preferences(input: SetContactPreferencesInput, key: string): Promise<ToolResult>;
  set_routine(input: SetRoutineInput, key: string): Promise<ToolResult>;
}

export interface ClaimRef {
  claimToken: string;
  interactionId: string;
}

// Invalid value (22), integrity (23) and unknown ids (P0002).
const REFUSAL_CLASSES = ["22", "23", "P0"];

function asRefusal(err: unknown): unknown {
  const code = (err as { code?: unknown })?.code;
  if (
    err instanceof Error && typeof code === "string" && REFUSAL_CLASSES.includes(code.slice(0, 2))
  ) {
    return new ToolRefused(err.message);
  }
  return err;
}

export function createExecutors(sql: Sql, claim: ClaimRef): Executors {
  const { claimToken: token, interactionId: id } = claim;
  const call = async (run: () => Promise<{ r: ToolResult }[]>): Promise<ToolResult> => {
    try {
      const [{ r }] = await run();
      return r;
    } catch (err) {
      throw asRefusal(err);
    }
  };
  return {
    schedule_call: (input, key) =>
      call(() =>
        sql`select public.analysis_schedule_call(
          p_claim_token := ${token}, p_interaction_id := ${id},
          p_call_type := ${input.call_type}, p_scheduled_for := ${input.scheduled_for},
          p_custom_instructions := ${input.custom_instructions ?? null},
          p_rrule := ${input.rrule ?? null}, p_idempotency_key := ${key}) as r`
      ),
    cancel_scheduled_call: (input, key) =>
      call(() =>
        sql`select public.analysis_cancel_scheduled_call(
          p_claim_token := ${token}, p_interaction_id := ${id}, p_call_id := ${input.call_id},
          p_reason := ${input.reason}, p_idempotency_key := ${key},
          p_scope := ${input.scope}) as r`
      ),
    record_commitment: (input, key) =>
      call(() =>
        sql`select public.record_commitment(
          p_claim_token := ${token}, p_interaction_id := ${id},
          p_description := ${input.description}, p_due_at := ${input.due_at ?? null},
          p_idempotency_key := ${key}) as r`
      ),
    update_commitment: (input, key) =>
      call(() =>
        sql`select public.update_commitment(
          p_claim_token := ${token}, p_interaction_id := ${id},
          p_commitment_id := ${input.commitment_id}, p_status := ${input.status ?? null},
          p_due_at := ${input.due_at ?? null}, p_description := ${input.description ?? null},
          p_idempotency_key := ${key}) as r`
      ),
    queue_message: (input, key) =>
      call(() =>
        sql`select public.analysis_queue_message(
          p_claim_token := ${token}, p_interaction_id := ${id}, p_text := ${input.text},
          p_priority := ${input.priority}, p_send_at := ${input.send_at ?? null},
          p_expires_at := ${input.expires_at ?? null}, p_idempotency_key := ${key}) as r`
      ),
    set_contact_preferences: (input, key) =>
      call(() =>
        sql`select public.analysis_set_preferred_hours(
          p_claim_token := ${token}, p_interaction_id := ${id},
          p_start := ${input.preferred_hours_start}::time, p_end := ${input.preferred_hours_end}::time,
          p_idempotency_key := ${key}) as r`
      ),
    set_routine: ({ template, enabled, ...params }, key) =>
      call(() =>
        sql`select public.analysis_set_routine(
          p_claim_token := ${token}, p_interaction_id := ${id}, p_template := ${template},
          p_enabled := ${enabled}, p_params := ${JSON.stringify(params)}::text::jsonb,
          p_idempotency_key := ${key}) as r`
      ),
  };
}
