// agent_actions_log rows for Claude calls, one statement for a whole batch.
import type { Sql } from "../db.ts";
import type { ClaudeLog } from "./complete.ts";

export async function writeClaudeLogs(sql: Sql, logs: ClaudeLog[]): Promise<void> {
  const rows = logs.map((l) => ({
    user_id: l.userId ?? null,
    agent_id: l.agentId,
    action: l.action,
    model: l.model,
    input_tokens: l.usage.inputTokens,
    output_tokens: l.usage.outputTokens,
    cache_read_tokens: l.usage.cacheReadTokens,
    cache_write_tokens: l.usage.cacheWriteTokens,
    cost_usd: l.costUsd,
    duration_ms: l.durationMs,
    details: l.details ?? {},
  }));
  await sql`
    insert into public.agent_actions_log (user_id, agent_id, action, model, input_tokens,
      output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, duration_ms, details)
    select user_id, agent_id, action, model, input_tokens, output_tokens, cache_read_tokens,
           cache_write_tokens, cost_usd, duration_ms, details
      from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as x(
        user_id uuid, agent_id text, action text, model text, input_tokens int, output_tokens int,
        cache_read_tokens int, cache_write_tokens int, cost_usd numeric, duration_ms int,
        details jsonb)`;
}
