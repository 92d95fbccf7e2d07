// Agent keys on the wire: `Authorization: Bearer oak_...`. The database finds
// the key by its SHA-256 (the secret itself is never compared, so there is no
// timing to measure) and counts the request in the key's one-minute window.
import { z } from "zod";
import type { Sql } from "../db.ts";
import { AgentError } from "./errors.ts";
import { isToolName } from "./registry.ts";
import type { ToolName } from "./schemas.ts";

export interface Principal {
  keyId: string;
  agentId: string;
  /** Null: every tool. */
  tools: ToolName[] | null;
  /** Null: every user. */
  userIds: string[] | null;
}

const admitted = z.object({
  key_id: z.string(),
  agent_id: z.string(),
  tools: z.array(z.string()).nullable(),
  user_ids: z.array(z.string()).nullable(),
  allowed: z.boolean(),
  retry_after_seconds: z.number().int(),
});

export function bearerToken(req: Request): string {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "");
  if (!match) throw new AgentError("unauthorized", "missing bearer agent key");
  return match[1];
}

/**
 * The principal of the request's key. `count` spends one request of the key's
 * rate; over it is a 429 with the seconds until the window ends.
 */
export async function authenticate(sql: Sql, req: Request, count = true): Promise<Principal> {
  const token = bearerToken(req);
  const [{ r }] = await sql<{ r: unknown }[]>`
    select public.agent_authenticate(p_key := ${token}, p_count := ${count}) as r`;
  if (r === null) throw new AgentError("unauthorized", "invalid or revoked agent key");
  const key = admitted.parse(r);
  if (!key.allowed) {
    throw new AgentError(
      "rate_limited",
      `over this key's rate; retry in ${key.retry_after_seconds} s`,
      null,
      key.retry_after_seconds,
    );
  }
  return {
    keyId: key.key_id,
    agentId: key.agent_id,
    tools: key.tools ? key.tools.filter(isToolName) : null,
    userIds: key.user_ids,
  };
}
