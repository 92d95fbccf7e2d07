// The analysis agent: a bounded tool loop over one claimed interaction.
//
// Each turn sends the static prefix (tools, system) and the conversation so
// far; every tool call is validated with zod before anything runs, and an
// invalid or refused call comes back to the model as a tool_result with
// is_error, while the run goes on. Guardrails: at most maxTurns model turns and
// maxActions effects per run, per-tool caps (calls and messages), calls only
// between 1 minute and 90 days ahead (checked here and again in SQL, which also
// holds the per-user daily cap). Each effect carries an idempotency key made of
// the interaction, the tool, its target and its ordinal (idempotency.ts), never
// the wording, so a retried run that makes the call again gets the first result
// back. Effects earlier attempts of the same analysis already had count towards
// this run's caps, and the model is shown them.
//
// Each turn's usage and cost is recorded as the turn ends (recordTurn), so a
// run killed midway still leaves what it spent.
//
// The run ends when the model calls record_analysis (sentiment and session
// summary; the design's structured final answer), when it stops asking for
// tools, or at a limit. Without record_analysis the run still counts: sentiment
// and summary stay unset. Insights are consolidated in memory and stored by
// finish_analysis with everything else, so a failed run leaves no half-update.
import type Anthropic from "@anthropic-ai/sdk";
import { cacheable } from "../claude/caching.ts";
import type { ClaudeLog } from "../claude/complete.ts";
import { costUsd } from "../claude/pricing.ts";
import { addUsage, normaliseUsage, type TokenUsage } from "../claude/usage.ts";
import { type Executors, ToolRefused, type ToolResult } from "./executors.ts";
import type { ClaimedAnalysis, EarlierEffect, RunRecord } from "./jobs.ts";
import { effectKey } from "./idempotency.ts";
import { consolidate, type InsightItem, readInsights } from "./memory.ts";
import { analysisSystem, renderAnalysisInput, STATIC_PREFIX_CHARS } from "./prompt.ts";
import {
  ANALYSIS_TOOLS,
  isToolName,
  type ParsedToolCall,
  parseToolCall,
  type Sentiment,
  type ToolName,
} from "./tools.ts";

type MessageParam = Anthropic.Messages.MessageParam;
/** A turn of the conversation as this loop builds it. */
type Turn = { role: "user" | "assistant"; content: ContentBlockParam[] };
type ContentBlockParam = Anthropic.Messages.ContentBlockParam;
type ToolResultBlockParam = Anthropic.Messages.ToolResultBlockParam;
type ToolUseBlock = Anthropic.Messages.ToolUseBlock;
/** A valid call of a tool with an effect. */
type ToolCall = Exclude<Extract<ParsedToolCall, { ok: true }>, { tool: "record_analysis" }>;

export interface AgentLimits {
  maxTurns: number;
  maxActions: number;
  /** Effects of one tool per run. */
  perRun: Partial<Record<ToolName, number>>;
  maxTokens: number;
  /** No new turn starts after this long; a request never outlives it. */
  timeBudgetMs: number;
  requestTimeoutMs: number;
}

// The webhook waits 120 s and an edge function lives 150 s: the run ends well inside both.
export const AGENT_LIMITS: AgentLimits = {
  maxTurns: 6,
  maxActions: 10,
  perRun: { schedule_call: 3, queue_message: 3, set_contact_preferences: 1, set_routine: 1 },
  maxTokens: 4096,
  timeBudgetMs: 100_000,
  requestTimeoutMs: 60_000,
};

const MINUTE_MS = 60_000;
const CALL_HORIZON_MS = 90 * 24 * 60 * MINUTE_MS;

/** `timeout` bounds one HTTP attempt; `signal` aborts the call, retries included. */
export type CreateMessage = (
  params: Anthropic.Messages.MessageCreateParamsNonStreaming,
  options: { timeout: number; signal: AbortSignal },
) => Promise<Anthropic.Messages.Message>;

export interface AgentDeps {
  createMessage: CreateMessage;
  executors: Executors;
  model: string;
  now: () => number;
  /** Stores one model turn's usage and cost; awaited before the turn's tools run. */
  recordTurn: (log: ClaudeLog) => Promise<void>;
  /** What earlier attempts at this analysis already did. */
  earlierEffects?: readonly EarlierEffect[];
  limits?: AgentLimits;
}

export interface ActionRecord {
  tool: string;
  status: "ok" | "invalid" | "refused";
  idempotency_key?: string;
  input?: unknown;
  result?: unknown;
  error?: string;
}

export interface AnalysisOutcome {
  sentiment: Sentiment | null;
  sessionSummary: string | null;
  /** The consolidated profile items, or null when the run did not touch them. */
  insights: InsightItem[] | null;
  /** Every tool call, as also stored in the run record. */
  actions: ActionRecord[];
  run: RunRecord;
}

/** A run that could not finish; carries what it spent and did, for the record. */
export class AnalysisRunError extends Error {
  override name = "AnalysisRunError";
  constructor(message: string, readonly run: RunRecord) {
    super(message);
  }
}

/**
 * The conversation with one cache breakpoint on its newest block, so each turn
 * reads the last, once the prompt up to it is long enough for the model to cache.
 */
function withBreakpoint(turns: Turn[], model: string): MessageParam[] {
  if (!cacheable(model, STATIC_PREFIX_CHARS + JSON.stringify(turns).length)) return turns;
  return turns.map((turn, i) => {
    if (i < turns.length - 1 || turn.content.length === 0) return turn;
    const marked = {
      ...turn.content[turn.content.length - 1],
      cache_control: { type: "ephemeral" },
    } as ContentBlockParam;
    return { ...turn, content: [...turn.content.slice(0, -1), marked] };
  });
}

/** What the model said, as it is sent back: text and tool calls only. */
function echo(content: Anthropic.Messages.ContentBlock[]): ContentBlockParam[] {
  return content.flatMap((block): ContentBlockParam[] => {
    if (block.type === "text") return block.text ? [{ type: "text", text: block.text }] : [];
    if (block.type === "tool_use") {
      return [{ type: "tool_use", id: block.id, name: block.name, input: block.input }];
    }
    return [];
  });
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max)}…` : text);

/** What a call acts on, for its key: the row it changes, or nothing for a new row. */
function targetOf(call: ToolCall): string {
  switch (call.tool) {
    case "cancel_scheduled_call":
      return `${call.input.scope}:${call.input.call_id}`;
    case "update_commitment":
      return call.input.commitment_id;
    default:
      return "";
  }
}

export async function runAnalysisAgent(
  deps: AgentDeps,
  claim: ClaimedAnalysis,
): Promise<AnalysisOutcome> {
  const limits = deps.limits ?? AGENT_LIMITS;
  const started = deps.now();
  const deadline = started + limits.timeBudgetMs;
  const interactionId = claim.interaction.id;

  let usage: TokenUsage = normaliseUsage(null);
  let cost = 0;
  let model = deps.model;
  let turns = 0;
  let stopReason = "end_turn";
  const actions: ActionRecord[] = [];
  // Earlier attempts' effects count towards this run's caps.
  const earlier = deps.earlierEffects ?? [];
  const earlierKeys = new Set(earlier.map((e) => e.idempotency_key));
  const perTool = new Map<ToolName, number>();
  for (const e of earlier) {
    if (isToolName(e.tool)) perTool.set(e.tool, (perTool.get(e.tool) ?? 0) + 1);
  }
  let effects = earlierKeys.size;
  /** Effects had so far per tool and target: the next one's ordinal is one more. */
  const ordinals = new Map<string, number>();
  let sentiment: Sentiment | null = null;
  let sessionSummary: string | null = null;
  let insights: InsightItem[] | null = null;
  let finished = false;

  const record = (): RunRecord => ({
    model,
    duration_ms: Math.round(deps.now() - started),
    input_tokens: usage.inputTokens,
    output_tokens: usage.outputTokens,
    cache_read_tokens: usage.cacheReadTokens,
    cache_write_tokens: usage.cacheWriteTokens,
    cost_usd: Math.round(cost * 1e6) / 1e6,
    turns,
    stop_reason: stopReason,
    actions,
  });

  const reply = (id: string, content: unknown, isError = false): ToolResultBlockParam => ({
    type: "tool_result",
    tool_use_id: id,
    content: typeof content === "string" ? content : JSON.stringify(content),
    ...(isError ? { is_error: true } : {}),
  });

  const refuse = (block: ToolUseBlock, action: ActionRecord, error: string) => {
    actions.push({ ...action, status: "refused", error });
    return reply(block.id, error, true);
  };

  const effect = async (call: ToolCall, key: string): Promise<ToolResult> => {
    switch (call.tool) {
      case "update_user_insights": {
        insights = consolidate(insights ?? readInsights(claim.user.insights), call.input, {
          interactionId,
          at: new Date(deps.now()).toISOString(),
        });
        return { items_stored: insights.length };
      }
      case "schedule_call":
        return await deps.executors.schedule_call(call.input, key);
      case "cancel_scheduled_call":
        return await deps.executors.cancel_scheduled_call(call.input, key);
      case "record_commitment":
        return await deps.executors.record_commitment(call.input, key);
      case "update_commitment":
        return await deps.executors.update_commitment(call.input, key);
      case "queue_message":
        return await deps.executors.queue_message(call.input, key);
      case "set_contact_preferences":
        return await deps.executors.set_contact_preferences(call.input, key);
      case "set_routine":
        return await deps.executors.set_routine(call.input, key);
    }
  };

  /** Runs the effect; only one that happened takes up its ordinal. */
  const perform = async (
    block: ToolUseBlock,
    call: ToolCall,
    action: ActionRecord,
    slot: string,
    key: string,
  ): Promise<ToolResultBlockParam> => {
    try {
      const result = await effect(call, key);
      ordinals.set(slot, (ordinals.get(slot) ?? 0) + 1);
      actions.push({ ...action, idempotency_key: key, result });
      return reply(block.id, result);
    } catch (err) {
      if (err instanceof ToolRefused) {
        return refuse(block, { ...action, idempotency_key: key }, err.message);
      }
      throw err;
    }
  };

  const runTool = async (block: ToolUseBlock): Promise<ToolResultBlockParam> => {
    const parsed = parseToolCall(block.name, block.input);
    if (!parsed.ok) {
      actions.push({
        tool: clip(block.name, 64),
        status: "invalid",
        input: clip(JSON.stringify(block.input) ?? "", 500),
        error: parsed.error,
      });
      return reply(block.id, parsed.error, true);
    }
    if (parsed.tool === "record_analysis") {
      sentiment = parsed.input.sentiment;
      sessionSummary = parsed.input.session_summary;
      finished = true;
      return reply(block.id, { recorded: true });
    }
    const action: ActionRecord = { tool: parsed.tool, status: "ok", input: parsed.input };
    const slot = `${parsed.tool}:${targetOf(parsed)}`;
    const ordinal = (ordinals.get(slot) ?? 0) + 1;
    const key = effectKey(interactionId, parsed.tool, targetOf(parsed), ordinal);
    // The same place as an earlier attempt's effect: the database answers with
    // that effect, which is no new one, so no cap applies.
    if (earlierKeys.has(key)) return await perform(block, parsed, action, slot, key);
    if (effects >= limits.maxActions) {
      return refuse(block, action, `this run has taken its ${limits.maxActions} actions; no more`);
    }
    const cap = limits.perRun[parsed.tool];
    if (cap !== undefined && (perTool.get(parsed.tool) ?? 0) >= cap) {
      return refuse(block, action, `at most ${cap} ${parsed.tool} calls per conversation`);
    }
    if (parsed.tool === "schedule_call") {
      const at = Date.parse(parsed.input.scheduled_for);
      const now = deps.now();
      if (at < now + MINUTE_MS || at > now + CALL_HORIZON_MS) {
        return refuse(block, action, "scheduled_for must be between 1 minute and 90 days from now");
      }
    }
    effects++;
    perTool.set(parsed.tool, (perTool.get(parsed.tool) ?? 0) + 1);
    return await perform(block, parsed, action, slot, key);
  };

  const messages: Turn[] = [{
    role: "user",
    content: [{ type: "text", text: renderAnalysisInput(claim, new Date(started), earlier) }],
  }];

  try {
    while (!finished) {
      if (turns >= limits.maxTurns) {
        stopReason = "turn_limit";
        break;
      }
      const remaining = deadline - deps.now();
      if (remaining <= 0) {
        stopReason = "time_budget";
        break;
      }
      const callStarted = deps.now();
      const abort = new AbortController();
      const timer = setTimeout(
        () => abort.abort(new Error("the analysis ran out of time")),
        remaining,
      );
      const res = await deps.createMessage({
        model: deps.model,
        max_tokens: limits.maxTokens,
        system: analysisSystem(deps.model),
        tools: [...ANALYSIS_TOOLS],
        messages: withBreakpoint(messages, deps.model),
      }, { timeout: Math.min(limits.requestTimeoutMs, remaining), signal: abort.signal })
        .finally(() => clearTimeout(timer));
      turns++;
      model = res.model;
      const turnUsage = normaliseUsage(res.usage);
      const turnCost = costUsd(res.model, res.usage);
      usage = addUsage(usage, turnUsage);
      cost += turnCost;
      await deps.recordTurn({
        userId: claim.user.id,
        agentId: "analyze-interaction",
        action: "analysis_turn",
        model: res.model,
        usage: turnUsage,
        costUsd: turnCost,
        durationMs: Math.round(deps.now() - callStarted),
        details: {
          interaction_id: interactionId,
          turn: turns,
          message_id: res.id,
          stop_reason: res.stop_reason,
        },
      });

      const calls = res.content.filter((b): b is ToolUseBlock => b.type === "tool_use");
      stopReason = res.stop_reason ?? "end_turn";
      if (res.stop_reason !== "tool_use" || calls.length === 0) break;
      messages.push({ role: "assistant", content: echo(res.content) });
      const results: ToolResultBlockParam[] = [];
      for (const call of calls) results.push(await runTool(call));
      messages.push({ role: "user", content: results });
    }
    if (finished) stopReason = "finished";
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    stopReason = "error";
    throw new AnalysisRunError(message, record());
  }

  return {
    sentiment,
    sessionSummary,
    insights,
    actions,
    run: record(),
  };
}
