import assert from "node:assert/strict";
import { analyzeRequest } from "../../../supabase/functions/analyze-interaction/request.ts";
import { HttpError, parseWith } from "../../../shared/http.ts";

const id = "6186ee8e-4057-4988-97d0-f41d7de8df95";

Deno.test("analyze-interaction accepts the Database Webhook payload", () => {
  const parsed = parseWith(analyzeRequest, {
    type: "INSERT",
    table: "interactions",
    schema: "public",
    record: { id, user_id: id, transcript: "hi" },
    old_record: null,
  });
  assert.deepEqual(parsed, { interactionId: id });
});

Deno.test("analyze-interaction accepts {interaction_id}", () => {
  assert.deepEqual(parseWith(analyzeRequest, { interaction_id: id }), { interactionId: id });
});

Deno.test("analyze-interaction rejects an UPDATE webhook and names the field", () => {
  assert.throws(
    () =>
      parseWith(analyzeRequest, {
        type: "UPDATE",
        table: "interactions",
        schema: "public",
        record: { id },
        old_record: { id },
      }),
    (err) => err instanceof HttpError && err.status === 400 && /type/.test(err.message),
  );
});

Deno.test("analyze-interaction rejects extra fields next to interaction_id", () => {
  assert.throws(
    () => parseWith(analyzeRequest, { interaction_id: id, user_id: id }),
    (err) => err instanceof HttpError && err.status === 400,
  );
});
