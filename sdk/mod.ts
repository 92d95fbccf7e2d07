// The orchestrator's SDK: one typed method per front-door tool, on a
// supabase-js client's functions.invoke('agents'). Results have supabase-js's
// { data, error } shape; an API error (bad input, scope, rate, network) is an
// `error`, never a throw. Types come from the server's own zod schemas, and
// only as types: at run time this module needs nothing but the client given.
import type { ToolInput, ToolName, ToolOutput } from "../shared/agents/schemas.ts";

export type { ToolInput, ToolName, ToolOutput };

/** What the SDK needs of a supabase-js client (any v2 `SupabaseClient` has it). */
export interface FunctionsClientLike {
  functions: {
    invoke(
      name: string,
      options: {
        body: Record<string, unknown>;
        headers: Record<string, string>;
        method?: "POST";
      },
    ): Promise<{ data: unknown; error: unknown }>;
  };
}

export type ErrorCode =
  | "invalid_input"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "unknown_tool"
  | "conflict"
  | "not_ready"
  | "rate_limited"
  | "network"
  | "internal";

export class OrchestratorError extends Error {
  override name = "OrchestratorError";
  constructor(
    readonly code: ErrorCode | string,
    message: string,
    /** The input field at fault, when one is. */
    readonly field: string | null,
    /** The HTTP status; 0 when no response came. */
    readonly status: number,
    /** Seconds to wait before retrying, on rate_limited. */
    readonly retryAfterSeconds: number | null = null,
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

export type Result<T> =
  | { data: T; error: null }
  | { data: null; error: OrchestratorError };

export interface Orchestrator {
  /** Any tool by name: what the typed methods call. */
  call<T extends ToolName>(
    tool: T,
    input: ToolInput<T>,
  ): Promise<Result<ToolOutput<T>>>;
  queueMessage(
    input: ToolInput<"queue_message">,
  ): Promise<Result<ToolOutput<"queue_message">>>;
  getMessageStatus(
    input: ToolInput<"get_message_status">,
  ): Promise<Result<ToolOutput<"get_message_status">>>;
  scheduleCall(
    input: ToolInput<"schedule_call">,
  ): Promise<Result<ToolOutput<"schedule_call">>>;
  cancelScheduledCall(
    input: ToolInput<"cancel_scheduled_call">,
  ): Promise<Result<ToolOutput<"cancel_scheduled_call">>>;
  getUserContext(
    input: ToolInput<"get_user_context">,
  ): Promise<Result<ToolOutput<"get_user_context">>>;
  recordInteraction(
    input: ToolInput<"record_interaction">,
  ): Promise<Result<ToolOutput<"record_interaction">>>;
  searchInteractions(
    input: ToolInput<"search_interactions">,
  ): Promise<Result<ToolOutput<"search_interactions">>>;
  remember(
    input: ToolInput<"remember">,
  ): Promise<Result<ToolOutput<"remember">>>;
  setContactPreferences(
    input: ToolInput<"set_contact_preferences">,
  ): Promise<Result<ToolOutput<"set_contact_preferences">>>;
}

export interface OrchestratorOptions {
  supabase: FunctionsClientLike;
  /** An agent key from create_agent_key ("oak_..."). */
  agentKey: string;
  /** The function's name, when deployed under another. */
  functionName?: string;
}

export function createOrchestrator(options: OrchestratorOptions): Orchestrator {
  const { supabase, agentKey, functionName = "agents" } = options;
  async function call<T extends ToolName>(
    tool: T,
    input: ToolInput<T>,
  ): Promise<Result<ToolOutput<T>>> {
    let reply: { data: unknown; error: unknown };
    try {
      reply = await supabase.functions.invoke(functionName, {
        method: "POST",
        body: { tool, input },
        headers: { Authorization: `Bearer ${agentKey}` },
      });
    } catch (err) {
      return { data: null, error: networkError(err) };
    }
    if (reply.error) {
      return { data: null, error: await toOrchestratorError(reply.error) };
    }
    const body = reply.data as { data?: ToolOutput<T> } | null;
    if (!body || typeof body !== "object" || !("data" in body)) {
      return {
        data: null,
        error: new OrchestratorError(
          "internal",
          "unexpected reply from the agents function",
          null,
          200,
        ),
      };
    }
    return { data: body.data as ToolOutput<T>, error: null };
  }
  return {
    call,
    queueMessage: (input) => call("queue_message", input),
    getMessageStatus: (input) => call("get_message_status", input),
    scheduleCall: (input) => call("schedule_call", input),
    cancelScheduledCall: (input) => call("cancel_scheduled_call", input),
    getUserContext: (input) => call("get_user_context", input),
    recordInteraction: (input) => call("record_interaction", input),
    searchInteractions: (input) => call("search_interactions", input),
    remember: (input) => call("remember", input),
    setContactPreferences: (input) => call("set_contact_preferences", input),
  };
}

function networkError(err: unknown): OrchestratorError {
  const message = err instanceof Error ? err.message : String(err);
  return new OrchestratorError("network", message, null, 0, null, err);
}

/**
 * supabase-js's error as ours. A FunctionsHttpError carries the Response as
 * `context`: its body is the front door's {"error": {code, message, field}}.
 */
async function toOrchestratorError(err: unknown): Promise<OrchestratorError> {
  const context = (err as { context?: unknown }).context;
  if (!(context instanceof Response)) return networkError(err);
  const retryAfter = Number(context.headers.get("retry-after"));
  let body: {
    error?: { code?: string; message?: string; field?: string | null };
  } = {};
  try {
    body = await context.clone().json();
  } catch {
    // Not the front door's JSON (a gateway page, say): the status still says what happened.
  }
  return new OrchestratorError(
    body.error?.code ??
      (context.status >= 500 ? "internal" : `http_${context.status}`),
    body.error?.message ?? `the agents function answered ${context.status}`,
    body.error?.field ?? null,
    context.status,
    Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
    err,
  );
}
