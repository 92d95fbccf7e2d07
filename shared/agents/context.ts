// get_user_context must fit in 8 KB of JSON whatever the user's history: long
// texts are cut first, then the least useful list items are dropped, longest
// list first, until it fits. Pure.
import type { ToolOutput } from "./schemas.ts";

export type UserContext = ToolOutput<"get_user_context">;

export const CONTEXT_MAX_BYTES = 8192;

const encoder = new TextEncoder();
export const jsonBytes = (value: unknown) => encoder.encode(JSON.stringify(value)).length;

/** Cut to at most `max` characters (by code point), marking the cut. */
export function clip(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : chars.slice(0, Math.max(0, max - 1)).join("") + "…";
}

// Lists that may lose items, in the order a tie is broken: the last of each
// list is its least useful item (oldest interaction, latest call or message,
// memory seen longest ago).
const DROPPABLE = [
  "queued_messages",
  "last_interactions",
  "pending_calls",
  "open_commitments",
  "memory",
] as const;

export function boundContext(context: UserContext, maxBytes = CONTEXT_MAX_BYTES): UserContext {
  if (jsonBytes(context) <= maxBytes) return context;
  const out: UserContext = {
    ...context,
    truncated: true,
    memory: [...context.memory],
    open_commitments: [...context.open_commitments],
    pending_calls: [...context.pending_calls],
    queued_messages: [...context.queued_messages],
    last_interactions: context.last_interactions.map((i) => ({
      ...i,
      excerpt: clip(i.excerpt, 200),
    })),
  };
  while (jsonBytes(out) > maxBytes) {
    const longest = DROPPABLE.reduce((best, name) =>
      out[name].length > out[best].length ? name : best
    );
    if (out[longest].length > 0) {
      out[longest].pop();
    } else if (out.session_summary && out.session_summary.length > 0) {
      out.session_summary = clip(out.session_summary, Math.floor(out.session_summary.length / 2));
      if (out.session_summary.length <= 1) out.session_summary = null;
    } else {
      break;
    }
  }
  return out;
}
