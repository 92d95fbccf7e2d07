// analyze-interaction's answers, with the analysis itself faked.
import assert from "node:assert/strict";
import { createAnalyzeHandler } from "../../../supabase/functions/analyze-interaction/handler.ts";
import type { AnalyzeResult } from "../../../supabase/functions/analyze-interaction/run.ts";

const secret = "unit-test-secret-0123456789";
const id = crypto.randomUUID();

async function post(
  analyze: ((id: string) => Promise<AnalyzeResult>) | null,
  body: unknown = { interaction_id: id },
) {
  const res = await createAnalyzeHandler({ secret, analyze })(
    new Request("http://local/analyze-interaction", {
      method: "POST",
      headers: { authorization: `Bearer ${secret}` },
      body: JSON.stringify(body),
    }),
  );
  return { status: res.status, body: await res.json() };
}

Deno.test("without Claude: 503, and nothing is claimed", async () => {
  const res = await post(null);
  assert.equal(res.status, 503);
  assert.equal(res.body.error, "not_configured");
  assert.equal(res.body.interaction_id, id);
});

Deno.test("the webhook payload and {interaction_id} reach the analysis alike", async () => {
  const seen: string[] = [];
  const analyze = (i: string) => {
    seen.push(i);
    return Promise.resolve<AnalyzeResult>({ kind: "analysed", actions: [], sentiment: null });
  };
  await post(analyze);
  await post(analyze, {
    type: "INSERT",
    table: "interactions",
    schema: "public",
    record: { id, transcript: "hi" },
    old_record: null,
  });
  assert.deepEqual(seen, [id, id]);
});

Deno.test("each outcome has its status", async () => {
  const cases: [AnalyzeResult, number, Record<string, unknown>][] = [
    [
      {
        kind: "analysed",
        actions: [{ tool: "record_commitment", status: "ok" }],
        sentiment: "positive",
      },
      200,
      { status: "done", actions: [{ tool: "record_commitment", status: "ok" }] },
    ],
    [
      { kind: "stopped", actions: [], stopReason: "max_tokens" },
      200,
      { status: "failed", stop_reason: "max_tokens" },
    ],
    [{ kind: "nothing", status: "busy", detail: "x" }, 202, { status: "busy" }],
    [{ kind: "nothing", status: "done", detail: "done" }, 202, { status: "done" }],
    [{ kind: "stale" }, 409, { error: "claim_lost" }],
    [
      { kind: "failed", error: "overloaded", willRetry: true, attempts: 1 },
      500,
      { error: "analysis_failed", message: "overloaded", will_retry: true, attempts: 1 },
    ],
  ];
  for (const [result, status, expected] of cases) {
    const res = await post(() => Promise.resolve(result));
    assert.equal(res.status, status, result.kind);
    assert.equal(res.body.interaction_id, id);
    for (const [k, v] of Object.entries(expected)) assert.deepEqual(res.body[k], v, k);
  }
});

Deno.test("an unknown interaction is a 404", async () => {
  const unknown = Object.assign(new Error("unknown interaction"), { code: "P0002" });
  const res = await post(() => Promise.reject(unknown));
  assert.equal(res.status, 404);
  assert.equal(res.body.error, "not_found");
});
