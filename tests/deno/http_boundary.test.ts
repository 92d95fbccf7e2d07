import assert from "node:assert/strict";
import { functionUrl, stack, stackTest } from "./helpers.ts";

const authed = (extra: HeadersInit = {}) => ({
  authorization: `Bearer ${stack.secret}`,
  "content-type": "application/json",
  ...extra,
});

async function call(name: string, init: RequestInit) {
  const res = await fetch(functionUrl(name), init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

stackTest("health answers GET with the database connection state", async () => {
  const res = await call("health", { method: "GET" });
  assert.equal(res.status, 200);
  assert.equal(res.body.status, "ok");
  assert.equal(res.body.database.connected, true);
  assert.equal(typeof res.body.database.latency_ms, "number");
});

stackTest("health refuses other methods with 405", async () => {
  const res = await call("health", { method: "POST", body: "{}" });
  assert.equal(res.status, 405);
  assert.equal(res.body.error, "method_not_allowed");
});

for (const name of ["analyze-interaction", "process-queue"]) {
  stackTest(`${name}: a missing bearer secret gets 401`, async () => {
    const res = await call(name, { method: "POST", body: "{}" });
    assert.equal(res.status, 401);
    assert.equal(res.body.error, "unauthorized");
  });

  stackTest(`${name}: a wrong bearer secret gets 401`, async () => {
    const res = await call(name, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.secret}x` },
      body: "{}",
    });
    assert.equal(res.status, 401);
  });

  stackTest(`${name}: GET gets 405`, async () => {
    const res = await call(name, { method: "GET", headers: authed() });
    assert.equal(res.status, 405);
  });

  stackTest(`${name}: a body that is not JSON gets 400`, async () => {
    const res = await call(name, { method: "POST", headers: authed(), body: "{nope" });
    assert.equal(res.status, 400);
    assert.equal(res.body.error, "invalid_json");
  });

  stackTest(`${name}: an oversized body gets 413`, async () => {
    const big = JSON.stringify({ pad: "x".repeat(1_100_000) });
    const res = await call(name, { method: "POST", headers: authed(), body: big });
    assert.equal(res.status, 413);
    assert.equal(res.body.error, "payload_too_large");
  });
}

stackTest("analyze-interaction: a bad interaction id gets 400 naming the field", async () => {
  const res = await call("analyze-interaction", {
    method: "POST",
    headers: authed(),
    body: JSON.stringify({ interaction_id: "not-a-uuid" }),
  });
  assert.equal(res.status, 400);
  assert.equal(res.body.error, "invalid_request");
  assert.match(res.body.message, /interaction_id/);
});

stackTest("analyze-interaction: a webhook payload for another table gets 400", async () => {
  const res = await call("analyze-interaction", {
    method: "POST",
    headers: authed(),
    body: JSON.stringify({
      type: "INSERT",
      table: "users",
      schema: "public",
      record: { id: crypto.randomUUID() },
      old_record: null,
    }),
  });
  assert.equal(res.status, 400);
  assert.match(res.body.message, /table/);
});

stackTest("process-queue: an authenticated run returns its summary", async () => {
  const res = await call("process-queue", {
    method: "POST",
    headers: authed(),
    body: JSON.stringify({ source: "test" }),
  });
  assert.equal(res.status, 200);
  for (
    const key of [
      "sent",
      "deferred",
      "superseded",
      "expired",
      "failed",
      "calls_dispatched",
      "analyses_redispatched",
    ]
  ) {
    assert.equal(typeof res.body[key], "number", key);
  }
});

stackTest("process-queue: an unknown field gets 400 naming it", async () => {
  const res = await call("process-queue", {
    method: "POST",
    headers: authed(),
    body: JSON.stringify({ limit: "lots" }),
  });
  assert.equal(res.status, 400);
  assert.match(res.body.message, /limit/);
});

stackTest("the gateway answers 404 for a function that does not exist", async () => {
  const res = await call("no-such-function", { method: "GET" });
  assert.equal(res.status, 404);
});
