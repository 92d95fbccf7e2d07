// The one-shot completer the processor renders and checks freshness with.
import assert from "node:assert/strict";
import type Anthropic from "@anthropic-ai/sdk";
import { createCompleter } from "../../../shared/claude/complete.ts";
import { FRESHNESS_SYSTEM, RENDER_SYSTEM } from "../../../shared/delivery/prompts.ts";

Deno.test("render and freshness prompts go without cache_control; a long system prompt keeps it", async () => {
  const sent: Anthropic.Messages.MessageCreateParamsNonStreaming[] = [];
  const client = {
    messages: {
      create: (params: Anthropic.Messages.MessageCreateParamsNonStreaming) => {
        sent.push(params);
        return Promise.resolve({
          id: "msg_1",
          model: params.model,
          content: [{ type: "text", text: "ok" }],
          stop_reason: "end_turn",
          usage: { input_tokens: 10, output_tokens: 2 },
        });
      },
    },
  } as unknown as Anthropic;
  const complete = createCompleter(client, "test");
  for (const system of [RENDER_SYSTEM, FRESHNESS_SYSTEM, "x".repeat(8000)]) {
    await complete({ model: "claude-haiku-4-5", system, user: "u", maxTokens: 100 });
    await complete({ model: "claude-sonnet-4-5", system, user: "u", maxTokens: 100 });
  }
  const marked = sent.map((p) => JSON.stringify(p.system).includes("cache_control"));
  assert.deepEqual(marked, [false, false, false, false, false, true]);
  assert.equal(sent[0].system, RENDER_SYSTEM);
});
