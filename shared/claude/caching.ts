// When a cache_control breakpoint can pay off. The API caches a prefix only
// when it reaches the model's minimum cacheable length and silently ignores
// shorter ones, so a breakpoint below it only uses up one of the four allowed.
// Minimums from platform.claude.com/docs/en/build-with-claude/prompt-caching
// (and anthropics/anthropic-sdk-python#1194, which observed 2,048 on Sonnet
// 4.6 where the docs say 1,024). Shared with the local scripted model, which
// applies the same minimums so tests can tell a cached prefix from an uncached one.

interface Minimum {
  /** The lowest version this minimum applies to, as major * 100 + minor. */
  from: number;
  tokens: number;
}

/** Newest first; a version newer than any listed takes the newest minimum. */
const MINIMUMS: Record<string, Minimum[]> = {
  // Fable and Mythos publish no figure: the largest minimum of the lineup.
  fable: [{ from: 0, tokens: 4096 }],
  mythos: [{ from: 0, tokens: 4096 }],
  opus: [{ from: 405, tokens: 4096 }, { from: 0, tokens: 1024 }],
  sonnet: [{ from: 406, tokens: 2048 }, { from: 0, tokens: 1024 }],
  haiku: [{ from: 405, tokens: 4096 }, { from: 0, tokens: 2048 }],
};

const FAMILY = /fable|mythos|opus|sonnet|haiku/;

/** The minimum cacheable prefix of a model, in tokens; an unknown model gets the largest. */
export function minimumCacheableTokens(model: string): number {
  const name = model.toLowerCase();
  const family = FAMILY.exec(name)?.[0];
  if (!family) return 4096;
  // claude-sonnet-4-5-20250929, claude-haiku-4-5 ... and the older claude-3-5-haiku-20241022.
  const match = new RegExp(`${family}-(\\d{1,2})(?!\\d)(?:[-.](\\d{1,2})(?!\\d))?`).exec(name) ??
    new RegExp(`claude-(\\d{1,2})(?:[-.](\\d))?-${family}`).exec(name);
  // An alias without a version (claude-sonnet-latest) names the newest model.
  const version = match ? Number(match[1]) * 100 + Number(match[2] ?? 0) : Infinity;
  const tiers = MINIMUMS[family];
  return (tiers.find((tier) => version >= tier.from) ?? tiers[tiers.length - 1]).tokens;
}

/** Rough but stable: the tokenizers average about four characters a token. */
export const estimateTokens = (chars: number): number => Math.ceil(chars / 4);

/** Whether a prefix of this many characters is long enough for the model to cache. */
export function cacheable(model: string, prefixChars: number): boolean {
  return estimateTokens(prefixChars) >= minimumCacheableTokens(model);
}
