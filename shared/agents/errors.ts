// The front door's errors: one shape for both transports, {code, message,
// field}, with the HTTP status the agents function answers. Refusals by the
// database (SQLSTATE class 22, such as 22023 invalid value, and P0002 unknown
// id) become 400 and 404 naming the tool's own field, never a 500.
import type { z } from "zod";

export type ErrorCode =
  | "invalid_input"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "unknown_tool"
  | "conflict"
  | "not_ready"
  | "rate_limited"
  | "limit_exceeded"
  | "method_not_allowed"
  | "payload_too_large"
  | "internal";

const STATUS: Record<ErrorCode, number> = {
  invalid_input: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  unknown_tool: 404,
  conflict: 409,
  not_ready: 409,
  rate_limited: 429,
  limit_exceeded: 429,
  method_not_allowed: 405,
  payload_too_large: 413,
  internal: 500,
};

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  field: string | null;
}

export class AgentError extends Error {
  override name = "AgentError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field: string | null = null,
    readonly retryAfterSeconds?: number,
    /** For limit_exceeded: which limit (enqueue_message's constraint name). */
    readonly limit?: string,
  ) {
    super(message);
  }
  get status(): number {
    return STATUS[this.code];
  }
  toBody(): ErrorBody {
    return { code: this.code, message: this.message, field: this.field };
  }
}

/** A zod failure as one error: the first bad field named, every problem in the message. */
export function invalidInput(error: z.ZodError, prefix: string[] = []): AgentError {
  const problems = error.issues.map((issue) => {
    // A field that should not be there is named itself.
    const extra = issue.code === "unrecognized_keys" ? issue.keys.slice(0, 1) : [];
    const path = [...prefix, ...issue.path.map(String), ...extra].join(".");
    return { path, message: issue.message };
  });
  const message = problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join("; ");
  return new AgentError("invalid_input", message, problems[0]?.path || null);
}

export interface DbErrorContext {
  /** RPC parameter names (without p_) that are called differently in the tool's input. */
  renames?: Record<string, string>;
  /** The input's field names, so only a real field is named. */
  fields: readonly string[];
  /** The field to name when the database's message names none of the input's. */
  fallback?: string;
}

const UNKNOWN_ID = /^unknown (user|call|message|interaction|commitment)\b/;
const ID_FIELDS: Record<string, string[]> = {
  user: ["user_id"],
  call: ["call_id", "scheduled_call_id"],
  message: ["message_id"],
};

/** A Postgres refusal as an AgentError; anything else (a lost connection, a bug) is rethrown. */
export function fromDatabase(err: unknown, ctx: DbErrorContext): never {
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  const named = (name: string | undefined) => {
    const field = name ? (ctx.renames?.[name] ?? name) : undefined;
    return field && ctx.fields.includes(field) ? field : (ctx.fallback ?? null);
  };
  // Class 22 is every data exception: a refused value, a NUL byte, a value out of range.
  if (typeof code === "string" && (code.startsWith("22") || code === "23514")) {
    throw new AgentError("invalid_input", message, named(/\bp_([a-z_]+)/.exec(message)?.[1]));
  }
  if (code === "P0002") {
    const kind = UNKNOWN_ID.exec(message)?.[1] ?? "";
    const field = (ID_FIELDS[kind] ?? []).find((f) => ctx.fields.includes(f)) ?? null;
    throw new AgentError("not_found", message, field);
  }
  if (code === "54000") {
    // A delivery limit: the user's queue is full, or this agent's day for the user is spent.
    const limit = (err as { constraint_name?: string }).constraint_name;
    throw new AgentError("limit_exceeded", message, null, undefined, limit);
  }
  if (code === "55000") {
    // A state the product reaches on its own shortly (say, the next occurrence of a new series).
    throw new AgentError("not_ready", message, null, 60);
  }
  throw err;
}
