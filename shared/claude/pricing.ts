// What a Messages API call cost, in USD, from the usage it reported. Prices are
// USD per million tokens, from platform.claude.com/docs/en/about-claude/pricing and
// the model overview pages (lineup of late 2026: Fable 5.1, Opus 5.5, Sonnet 5.5,
// Haiku 5.5). Every cache write is priced at the 5-minute rate: usage reports one
// total, not the 1-hour writes (2x input) separately.

/** The usage fields that cost money; the SDK's `Usage` fits, nulls included. */
export interface PricedUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

interface Price {
  input: number;
  output: number;
  cacheWrite: number;
  cacheRead: number;
}

/** The usual rates: cache writes at 1.25x input and cache hits at 0.1x, unless published otherwise. */
const price = (input: number, output: number, cacheRead = input * 0.1): Price => ({
  input,
  output,
  cacheWrite: input * 1.25,
  cacheRead,
});

interface Tier {
  /** The lowest version this tier prices, as `version(major, minor)`. */
  from: number;
  price: Price;
  /** Haiku 5.5 bills every token of a request at a higher rate once its prompt is long. */
  longPrompt?: { above: number; price: Price };
}

const version = (major: number, minor = 0) => major * 100 + minor;

const FABLE: Tier[] = [
  { from: version(5, 1), price: price(10, 50, 0.25) },
  { from: 0, price: price(10, 50) },
];

/** Newest tier first; a model takes the first tier its version reaches. */
const FAMILIES: Record<string, Tier[]> = {
  fable: FABLE,
  mythos: FABLE,
  opus: [
    { from: version(5, 5), price: price(4, 20, 0.2) },
    { from: version(4, 5), price: price(5, 25) },
    { from: 0, price: price(15, 75) },
  ],
  sonnet: [
    // Sonnet 5.5 cache hits were cut to 0.05x input on 2026-10-07.
    { from: version(5, 5), price: price(2, 10, 0.1) },
    { from: version(5), price: price(2, 10) },
    { from: 0, price: price(3, 15) },
  ],
  haiku: [
    {
      from: version(5, 5),
      price: price(0.1, 0.5),
      longPrompt: { above: 100_000, price: price(0.5, 2.5) },
    },
    { from: version(4, 5), price: price(1, 5) },
    { from: version(3, 5), price: price(0.8, 4) },
    { from: 0, price: { input: 0.25, output: 1.25, cacheWrite: 0.3, cacheRead: 0.03 } },
  ],
};

const FAMILY = /fable|mythos|opus|sonnet|haiku/;

function tierFor(model: string): Tier {
  const name = model.toLowerCase();
  const family = FAMILY.exec(name)?.[0];
  // An unknown model is priced as the current Sonnet, the middle of the range, so
  // its calls still count towards spend without being wildly over- or under-stated.
  if (!family) return FAMILIES.sonnet[0];
  // claude-opus-4-5-20251101, claude-haiku-5-5, claude-opus-4-1@20250805 ...
  const current = new RegExp(`${family}-(\\d{1,2})(?!\\d)(?:[-.](\\d{1,2})(?!\\d))?`).exec(name);
  // ... and the older claude-3-5-haiku-20241022, claude-3-opus-20240229.
  const legacy = new RegExp(`claude-(\\d{1,2})(?:[-.](\\d))?-${family}`).exec(name);
  const match = current ?? legacy;
  // An alias without a version (claude-sonnet-latest) names the newest model.
  const v = match ? version(Number(match[1]), Number(match[2] ?? 0)) : Infinity;
  const tiers = FAMILIES[family];
  return tiers.find((tier) => v >= tier.from) ?? tiers[tiers.length - 1];
}

export function costUsd(model: string, usage: PricedUsage): number {
  const read = usage.cache_read_input_tokens ?? 0;
  const write = usage.cache_creation_input_tokens ?? 0;
  const tier = tierFor(model);
  const prompt = usage.input_tokens + read + write;
  const p = tier.longPrompt && prompt > tier.longPrompt.above ? tier.longPrompt.price : tier.price;
  const usd = (usage.input_tokens * p.input + usage.output_tokens * p.output +
    write * p.cacheWrite + read * p.cacheRead) / 1_000_000;
  return Math.round(usd * 1e6) / 1e6;
}
