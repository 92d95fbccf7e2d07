import assert from "node:assert/strict";
import { cacheable, minimumCacheableTokens } from "../../../shared/claude/caching.ts";
import { costUsd } from "../../../shared/claude/pricing.ts";
import { addUsage, normaliseUsage } from "../../../shared/claude/usage.ts";

const M = 1_000_000;
const inOut = (input: number, output: number) => ({ input_tokens: input, output_tokens: output });

Deno.test("costUsd prices input and output per million tokens by model", () => {
  assert.equal(costUsd("claude-sonnet-4-5-20250929", inOut(M, M)), 18);
  assert.equal(costUsd("claude-sonnet-5-5", inOut(M, M)), 12);
  assert.equal(costUsd("claude-opus-5-5", inOut(M, M)), 24);
  assert.equal(costUsd("claude-opus-4-5-20251101", inOut(M, M)), 30);
  assert.equal(costUsd("claude-opus-4-1-20250805", inOut(M, M)), 90);
  assert.equal(costUsd("claude-opus-4-20250514", inOut(M, M)), 90);
  assert.equal(costUsd("claude-haiku-4-5-20251001", inOut(M, M)), 6);
  assert.equal(costUsd("claude-fable-5-1", inOut(M, M)), 60);
});

Deno.test("costUsd reads versions from older and provider-prefixed model names", () => {
  assert.equal(costUsd("claude-3-opus-20240229", inOut(M, 0)), 15);
  assert.equal(costUsd("claude-3-5-haiku-20241022", inOut(M, 0)), 0.8);
  assert.equal(costUsd("claude-3-haiku-20240307", inOut(M, 0)), 0.25);
  assert.equal(costUsd("us.anthropic.claude-3-7-sonnet-20250219-v1:0", inOut(M, 0)), 3);
  assert.equal(costUsd("claude-opus-4-1@20250805", inOut(M, 0)), 15);
  assert.equal(costUsd("CLAUDE-HAIKU-5-5", inOut(100_000, 0)), 0.01);
});

Deno.test("costUsd prices cache writes at 1.25x input and reads at the published hit rate", () => {
  const cached = (write: number, read: number) => ({
    ...inOut(0, 0),
    cache_creation_input_tokens: write,
    cache_read_input_tokens: read,
  });
  assert.equal(costUsd("claude-sonnet-4-5", cached(M, 0)), 3.75);
  assert.equal(costUsd("claude-sonnet-4-5", cached(0, M)), 0.3);
  assert.equal(costUsd("claude-haiku-5-5", cached(50_000, 50_000)), 0.00675);
  // Opus 5.5 and Sonnet 5.5 hits are published at 0.05x input.
  assert.equal(costUsd("claude-opus-5-5", cached(M, M)), 5.2);
  assert.equal(costUsd("claude-sonnet-5-5", cached(0, M)), 0.1);
  // Haiku 3 has its own published cache rates.
  assert.equal(costUsd("claude-3-haiku-20240307", cached(M, M)), 0.33);
  assert.equal(
    costUsd("claude-sonnet-4-5", {
      ...inOut(10, 10),
      cache_creation_input_tokens: null,
      cache_read_input_tokens: null,
    }),
    0.00018,
  );
});

Deno.test("Haiku 5.5 bills a prompt over 100k tokens at the long-prompt rate", () => {
  assert.equal(costUsd("claude-haiku-5-5", inOut(1000, 500)), 0.00035);
  assert.equal(costUsd("claude-haiku-5-5", inOut(100_000, 0)), 0.01);
  assert.equal(costUsd("claude-haiku-5-5", inOut(200_000, 1000)), 0.1025);
  assert.equal(
    costUsd("claude-haiku-5-5", {
      ...inOut(1000, 0),
      cache_read_input_tokens: 100_000,
    }),
    0.0055,
  );
});

Deno.test("unknown models and bare aliases fall back sensibly", () => {
  const currentSonnet = costUsd("claude-sonnet-5-5", inOut(12_345, 678));
  assert.equal(costUsd("some-new-model", inOut(12_345, 678)), currentSonnet);
  assert.equal(costUsd("claude-sonnet-latest", inOut(12_345, 678)), currentSonnet);
  assert.equal(costUsd("haiku", inOut(100_000, 0)), 0.01);
});

Deno.test("costUsd rounds to six decimals", () => {
  assert.equal(costUsd("claude-haiku-5-5", inOut(1, 0)), 0);
  assert.equal(costUsd("claude-sonnet-4-5", inOut(7, 0)), 0.000021);
  assert.equal(costUsd("claude-sonnet-4-5", inOut(1, 1)), 0.000018);
  assert.equal(costUsd("claude-sonnet-4-5", inOut(0, 0)), 0);
});

Deno.test("normaliseUsage turns API usage into four numbers, nulls as zero", () => {
  assert.deepEqual(
    normaliseUsage({
      input_tokens: 10,
      output_tokens: 20,
      cache_creation_input_tokens: null,
      cache_read_input_tokens: 30,
    }),
    { inputTokens: 10, outputTokens: 20, cacheReadTokens: 30, cacheWriteTokens: 0 },
  );
  assert.deepEqual(normaliseUsage({ input_tokens: 1, output_tokens: 2 }), {
    inputTokens: 1,
    outputTokens: 2,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
  });
  assert.deepEqual(normaliseUsage(null), {
    inputTokens: 0,
    outputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
  });
});

Deno.test("addUsage adds field by field", () => {
  const a = { inputTokens: 1, outputTokens: 2, cacheReadTokens: 3, cacheWriteTokens: 4 };
  const b = { inputTokens: 10, outputTokens: 20, cacheReadTokens: 30, cacheWriteTokens: 40 };
  assert.deepEqual(addUsage(a, b), {
    inputTokens: 11,
    outputTokens: 22,
    cacheReadTokens: 33,
    cacheWriteTokens: 44,
  });
  assert.deepEqual(a, { inputTokens: 1, outputTokens: 2, cacheReadTokens: 3, cacheWriteTokens: 4 });
});

Deno.test("minimum cacheable lengths follow the model family and version", () => {
  const cases: [string, number][] = [
    ["claude-haiku-4-5-20251001", 4096],
    ["claude-3-5-haiku-20241022", 2048],
    ["claude-3-haiku-20240307", 2048],
    ["claude-sonnet-4-5-20250929", 1024],
    ["claude-sonnet-4-6", 2048],
    ["us.anthropic.claude-3-7-sonnet-20250219-v1:0", 1024],
    ["claude-opus-4-5-20251101", 4096],
    ["claude-opus-4-6", 4096],
    ["claude-opus-4-1-20250805", 1024],
    ["claude-opus-4-20250514", 1024],
    ["claude-sonnet-latest", 2048],
    ["some-other-model", 4096],
  ];
  for (const [model, tokens] of cases) assert.equal(minimumCacheableTokens(model), tokens, model);
  assert.equal(cacheable("claude-sonnet-4-5", 4096), true);
  assert.equal(cacheable("claude-sonnet-4-5", 4092), false);
});
