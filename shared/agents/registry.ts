// The one tool registry both transports serve. A call is: the tool exists and
// is in the key's scope, the input is valid, the user it acts for is in the
// key's scope, then the tool runs in one transaction (with its idempotency
// record), so an error leaves nothing written. Every call ends in one
// agent_calls row: who, which tool, which user, the outcome and the time taken.
import type { Sql } from "../db.ts";
import type { Principal } from "./auth.ts";
import { AgentError, fromDatabase, invalidInput } from "./errors.ts";
import {
  type ParsedInput,
  TOOL_DESCRIPTIONS,
  TOOL_NAMES,
  TOOL_SCHEMAS,
  type ToolName,
  type ToolOutput,
} from "./schemas.ts";
import { type ToolContext, TOOLS, type Tx } from "./tools.ts";

export type Transport = "agents" | "mcp";

export interface RegistryDeps {
  sql: Sql;
  now: () => Date;
  /** Monotonic milliseconds, for durations. */
  clock: () => number;
}

export interface ToolDefinition {
  name: ToolName;
  description: string;
  input: (typeof TOOL_SCHEMAS)[ToolName]["input"];
  output: (typeof TOOL_SCHEMAS)[ToolName]["output"];
}

export const TOOL_DEFINITIONS: readonly ToolDefinition[] = TOOL_NAMES.map((name) => ({
  name,
  description: TOOL_DESCRIPTIONS[name],
  ...TOOL_SCHEMAS[name],
}));

export function isToolName(name: string): name is ToolName {
  return Object.hasOwn(TOOL_SCHEMAS, name);
}

/** The tools a key may call, in registry order. */
export function toolsFor(principal: Principal): readonly ToolDefinition[] {
  return TOOL_DEFINITIONS.filter((t) => !principal.tools || principal.tools.includes(t.name));
}

const OUTCOMES: Partial<Record<AgentError["code"], string>> = {
  invalid_input: "invalid_input",
  forbidden: "forbidden",
  not_found: "not_found",
  unknown_tool: "not_found",
  conflict: "conflict",
  not_ready: "conflict",
  limit_exceeded: "limited",
};

/** Runs one tool call for a principal; throws an AgentError for anything the caller did wrong. */
export async function callTool(
  deps: RegistryDeps,
  principal: Principal,
  transport: Transport,
  tool: string,
  rawInput: unknown,
): Promise<unknown> {
  const started = deps.clock();
  let userId: string | null = null;
  try {
    const result = await authorisedCall(deps, principal, tool, rawInput, (id) => (userId = id));
    // The effect is committed: a log that cannot be written must not turn it into an error.
    await logCall(deps, principal, transport, tool, userId, "ok", null, started).catch(logFailed);
    return result;
  } catch (err) {
    const agentError = err instanceof AgentError ? err : null;
    if (agentError?.code === "limit_exceeded" && userId) {
      // The refusal rolled back with the call's transaction: on record here, apart from it.
      await recordRefusal(deps, principal, userId, agentError).catch(logFailed);
    }
    await logCall(
      deps,
      principal,
      transport,
      tool,
      userId,
      (agentError && OUTCOMES[agentError.code]) ?? "error",
      agentError?.code ?? "internal",
      started,
    ).catch(logFailed);
    throw err;
  }
}

async function authorisedCall(
  deps: RegistryDeps,
  principal: Principal,
  tool: string,
  rawInput: unknown,
  actsFor: (userId: string) => void,
): Promise<unknown> {
  if (!isToolName(tool)) {
    throw new AgentError("unknown_tool", `there is no tool named ${tool}`, "tool");
  }
  if (principal.tools && !principal.tools.includes(tool)) {
    throw new AgentError("forbidden", `this key may not use ${tool}`, "tool");
  }
  const parsed = TOOL_SCHEMAS[tool].input.safeParse(rawInput ?? {});
  if (!parsed.success) throw invalidInput(parsed.error);
  const output = await runInTransaction(deps, principal, tool, parsed.data, actsFor);
  // A tool that breaks its own contract is a bug: surfaced, not sent on.
  return TOOL_SCHEMAS[tool].output.parse(output);
}

function runInTransaction<T extends ToolName>(
  deps: RegistryDeps,
  principal: Principal,
  tool: T,
  input: ParsedInput<T>,
  actsFor: (userId: string) => void,
): Promise<ToolOutput<T>> {
  const impl = TOOLS[tool];
  const fields = Object.keys(TOOL_SCHEMAS[tool].input.shape);
  return deps.sql.begin(async (tx) => {
    try {
      const userId = await impl.owner(tx, input);
      actsFor(userId);
      if (principal.userIds && !principal.userIds.includes(userId)) {
        const field = "user_id" in input ? "user_id" : fields[0];
        throw new AgentError("forbidden", "this key may not act for that user", field);
      }
      const key = (input as { idempotency_key?: string }).idempotency_key ?? null;
      const ctx: ToolContext = {
        tx,
        agentId: principal.agentId,
        idempotencyKey: key ? `agent:${principal.agentId}:${key}` : null,
        now: deps.now(),
      };
      if (!key) return await impl.run(ctx, input);
      return await idempotent(tx, principal, tool, userId, key, input, () => impl.run(ctx, input));
    } catch (err) {
      if (err instanceof AgentError) throw err;
      return fromDatabase(err, { renames: impl.renames, fields, fallback: impl.fallbackField });
    }
  }) as Promise<ToolOutput<T>>;
}

/** JSON with keys sorted, instants in UTC: the same input however it was spelt. */
export function canonicalJson(value: unknown): string {
  const normalise = (v: unknown): unknown => {
    if (typeof v === "string" && /^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v))) {
      return new Date(v).toISOString();
    }
    if (Array.isArray(v)) return v.map(normalise);
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(
        Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
          .map((k) => [k, normalise((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return JSON.stringify(normalise(value));
}

async function inputHash(input: unknown): Promise<string> {
  const { idempotency_key: _, ...rest } = input as Record<string, unknown>;
  const bytes = new TextEncoder().encode(canonicalJson(rest));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The first result for this key, or the effect now and its record. A
 * concurrent call with the same key waits on the record's row and replays it.
 */
async function idempotent<R>(
  tx: Tx,
  principal: Principal,
  tool: ToolName,
  userId: string,
  key: string,
  input: unknown,
  run: () => Promise<R>,
): Promise<R> {
  const hash = await inputHash(input);
  const inserted = await tx`
    insert into public.agent_idempotency (agent_id, user_id, tool, idempotency_key, input_hash)
    values (${principal.agentId}, ${userId}, ${tool}, ${key}, ${hash})
    on conflict do nothing
    returning 1`;
  if (inserted.length === 0) {
    const [prior] = await tx<{ input_hash: string; result: R }[]>`
      select input_hash, result from public.agent_idempotency
       where agent_id = ${principal.agentId} and user_id = ${userId} and tool = ${tool}
         and idempotency_key = ${key}`;
    if (prior.input_hash !== hash) {
      throw new AgentError(
        "conflict",
        "this idempotency_key was already used with a different input",
        "idempotency_key",
      );
    }
    return { ...prior.result, replayed: true };
  }
  const result = await run();
  await tx`
    update public.agent_idempotency set result = ${JSON.stringify(result)}::text::jsonb
     where agent_id = ${principal.agentId} and user_id = ${userId} and tool = ${tool}
       and idempotency_key = ${key}`;
  return result;
}

async function recordRefusal(
  deps: RegistryDeps,
  principal: Principal,
  userId: string,
  err: AgentError,
): Promise<void> {
  await deps.sql`
    select public.record_enqueue_refusal(${userId}, ${`agent:${principal.agentId}`},
                                         ${err.limit ?? "limit"}, ${err.message})`;
}

function logFailed(err: unknown): void {
  console.error("agents: could not log a call:", err instanceof Error ? err.message : String(err));
}

async function logCall(
  deps: RegistryDeps,
  principal: Principal,
  transport: Transport,
  tool: string,
  userId: string | null,
  outcome: string,
  errorCode: string | null,
  started: number,
): Promise<void> {
  await deps.sql`
    insert into public.agent_calls (key_id, agent_id, transport, tool, user_id, outcome, error_code,
                                    duration_ms)
    values (${principal.keyId}, ${principal.agentId}, ${transport}, ${tool.slice(0, 64) || "?"},
            -- A user that does not exist is logged as none.
            (select id from public.users where id = ${userId}::uuid), ${outcome}, ${errorCode},
            ${Math.max(0, Math.round(deps.clock() - started))})`;
}
