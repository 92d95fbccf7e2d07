// Idempotency keys for tool effects. A key names the effect's place in the
// analysis, never its wording: the interaction, the tool, what the tool acts on
// (the call or commitment id for tools that change an existing row, plus the
// scope of a cancellation) and the ordinal of that tool's effect on that target
// within the run. A retried analysis of the same interaction walks the same
// places, so its first schedule_call gets the first attempt's call back however
// it words it, and the per-tool caps bound how many places there are.
//
// Why not hash the input: a retry words custom_instructions, a description or a
// message differently, and a hash of the words then schedules a second call.
// Why not only tell the retry what was done and refuse the rest: that trusts the
// model to read it. The retry is also told (analysis_context.earlier_attempt),
// so it can carry on where the first attempt stopped instead of repeating it.
import type { ToolName } from "./tools.ts";

export function effectKey(
  interactionId: string,
  tool: ToolName,
  target: string,
  ordinal: number,
): string {
  return `analysis:${interactionId}:${tool}:${target ? `${target}:` : ""}${ordinal}`;
}
