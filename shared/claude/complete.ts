// One Claude call with a static system prompt, measured: tokens (cache
// included), cost and duration, ready for agent_actions_log. The system prompt
// carries cache_control only when it reaches the model's minimum cacheable
// length (caching.ts); the rendering and freshness prompts are a few hundred
// tokens, far below it, so today they go uncached.
import type Anthropic from "@anthropic-ai/sdk";
import { cacheable } from "./caching.ts";
import { costUsd } from "./pricing.ts";
import { normaliseUsage, type TokenUsage } from "./usage.ts";

export interface CompleteRequest {
  model: string;
  /** Static text, identical across users and runs. */
  system: string;
  user: string;
  maxTokens: number;
  /** The request is abandoned after this long (the caller's deadline). */
  timeoutMs?: number;
}

export interface ClaudeLog {
  userId?: string;
  agentId: string;
  action: string;
  model: string;
  usage: TokenUsage;
  costUsd: number;
  durationMs: number;
  details?: Record<string, unknown>;
}

export interface CompleteResult {
  text: string;
  log: Omit<ClaudeLog, "userId" | "action">;
}

export type Complete = (req: CompleteRequest) => Promise<CompleteResult>;

export function createCompleter(
  client: Anthropic,
  agentId: string,
  now: () => number = () => performance.now(),
): Complete {
  return async (req) => {
    const started = now();
    const res = await client.messages.create({
      model: req.model,
      max_tokens: req.maxTokens,
      system: cacheable(req.model, req.system.length)
        ? [{ type: "text", text: req.system, cache_control: { type: "ephemeral" } }]
        : req.system,
      messages: [{ role: "user", content: req.user }],
    }, req.timeoutMs === undefined ? undefined : { timeout: req.timeoutMs, maxRetries: 0 });
    const usage = normaliseUsage(res.usage);
    const text = res.content.map((block) => (block.type === "text" ? block.text : "")).join("");
    return {
      text,
      log: {
        agentId,
        model: res.model,
        usage,
        costUsd: costUsd(res.model, res.usage),
        durationMs: Math.round(now() - started),
        details: { request_id: res.id, stop_reason: res.stop_reason },
      },
    };
  };
}
