// Idempotency keys for tool effects: the interaction, the tool and a hash of
// the normalised input, so a retried run that makes the same call again
// (whitespace, key order or the offset of an instant aside) finds the effect
// the first run had instead of making a second one.
import type { ToolName } from "./tools.ts";

/** Strings trimmed with inner whitespace collapsed, instants in UTC, keys sorted. */
export function canonicalJson(value: unknown): string {
  const normalise = (v: unknown): unknown => {
    if (typeof v === "string") {
      const s = v.trim().replace(/\s+/g, " ");
      const ms = /^\d{4}-\d{2}-\d{2}T/.test(s) ? Date.parse(s) : NaN;
      return Number.isNaN(ms) ? s : new Date(ms).toISOString();
    }
    if (Array.isArray(v)) return v.map(normalise);
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(
        Object.entries(v).filter(([, x]) => x !== undefined).sort(([a], [b]) =>
          a < b ? -1 : a > b ? 1 : 0
        ).map(([k, x]) => [k, normalise(x)]),
      );
    }
    return v;
  };
  return JSON.stringify(normalise(value));
}

export async function idempotencyKey(
  interactionId: string,
  tool: ToolName,
  input: unknown,
): Promise<string> {
  const bytes = new TextEncoder().encode(canonicalJson(input));
  // 128 bits of SHA-256: no collision between two calls of one interaction.
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes), 0, 16);
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  return `analysis:${interactionId}:${tool}:${hex}`;
}
