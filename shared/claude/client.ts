// The Anthropic client from configuration. ANTHROPIC_BASE_URL points it at
// another Anthropic-compatible endpoint (the local scripted model in tests and
// local runs); production sets only the key.
import Anthropic from "@anthropic-ai/sdk";
import { z } from "zod";

const envSchema = z.object({
  ANTHROPIC_API_KEY: z.string().optional(),
  ANTHROPIC_BASE_URL: z.url().optional(),
  ANALYSIS_MODEL: z.string().min(1).default("claude-sonnet-5-5"),
  RENDER_MODEL: z.string().min(1).default("claude-haiku-4-5"),
});

export interface ClaudeConfig {
  client: Anthropic | null;
  analysisModel: string;
  renderModel: string;
}

const blank = (v: string | undefined) => (v && v.trim() ? v.trim() : undefined);

export function claudeFromEnv(env: Record<string, string | undefined>): ClaudeConfig {
  const e = envSchema.parse({
    ANTHROPIC_API_KEY: blank(env.ANTHROPIC_API_KEY),
    ANTHROPIC_BASE_URL: blank(env.ANTHROPIC_BASE_URL),
    ANALYSIS_MODEL: blank(env.ANALYSIS_MODEL),
    RENDER_MODEL: blank(env.RENDER_MODEL),
  });
  const configured = e.ANTHROPIC_API_KEY || e.ANTHROPIC_BASE_URL;
  return {
    client: configured
      ? new Anthropic({
        // A local Anthropic-compatible endpoint needs no real key.
        apiKey: e.ANTHROPIC_API_KEY ?? "local-no-key",
        ...(e.ANTHROPIC_BASE_URL ? { baseURL: e.ANTHROPIC_BASE_URL } : {}),
        maxRetries: 1,
        timeout: 60_000,
      })
      : null,
    analysisModel: e.ANALYSIS_MODEL,
    renderModel: e.RENDER_MODEL,
  };
}
