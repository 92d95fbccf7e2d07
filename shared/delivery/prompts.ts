// What the processor asks Claude, and how it reads the answers. The system
// texts are static; everything per message goes in the user turn. They are far
// below the minimum cacheable length of every model, so they are not cached.

export const RENDER_SYSTEM = `RENDER_SMS
You write one SMS from a personal assistant to its user, from the structured update you are given.
Rules:
- Plain, warm, concise prose that fits one SMS segment: at most 160 characters.
- Plain ASCII punctuation: straight quotes and apostrophes, "-" for dashes, "..." for an ellipsis.
- No greeting formulas, no sign-off.
- Never output JSON, code, braces, field names or placeholders.
- Use only facts present in the update; do not invent times, names or numbers.
- Reply with the SMS text only.`;

export const FRESHNESS_SYSTEM = `FRESHNESS_CHECK
A message was queued for a user some time ago. Given what happened since it was queued, decide
whether sending it now still makes sense (it is not outdated, contradicted, already handled, or
made pointless by newer events). Reply with JSON only:
{"still_relevant": true|false, "reason": "<one short sentence>"}`;

export const MAX_SMS_CHARS = 1600;

/** The render's user turn; after a draft that ran to `previousSegments`, it asks for less. */
export function renderPrompt(
  agentId: string,
  data: unknown,
  previousSegments: number | null = null,
): string {
  const update = `Update from agent "${agentId}":\n${JSON.stringify(data, null, 2)}`;
  return previousSegments === null
    ? update
    : `${update}\n\nYour previous draft took ${previousSegments} SMS segments. Write it again, shorter: one segment, at most 160 characters.`;
}

/** The rendered text if it is fit to send to a person; null otherwise. */
export function acceptRendered(text: string): string | null {
  const body = text.trim().replace(/^"(.*)"$/s, "$1").trim();
  if (!body || body.length > MAX_SMS_CHARS) return null;
  // Anything that looks like structured data is not prose.
  if (/[{}]|```|^\s*\[|"\w+"\s*:/.test(body)) return null;
  return body;
}

export interface Freshness {
  stillRelevant: boolean;
  reason: string;
}

export function freshnessPrompt(
  message: string,
  queuedAt: string,
  since: { at: string; kind: string; text: string }[],
): string {
  const events = since.length
    ? since.map((e) => `- ${e.at} ${e.kind}: ${e.text}`).join("\n")
    : "(nothing has happened since)";
  return `Queued at ${queuedAt}:\n${message}\n\nSince then:\n${events}`;
}

export function parseFreshness(text: string): Freshness | null {
  const match = /\{[\s\S]*\}/.exec(text);
  if (!match) return null;
  try {
    const parsed = JSON.parse(match[0]);
    if (typeof parsed.still_relevant !== "boolean") return null;
    return {
      stillRelevant: parsed.still_relevant,
      reason: typeof parsed.reason === "string" ? parsed.reason.slice(0, 300) : "",
    };
  } catch {
    return null;
  }
}
