import assert from "node:assert/strict";
import type { Sql } from "../../../shared/db.ts";
import { createHealthHandler } from "../../../supabase/functions/health/handler.ts";

const get = () => new Request("http://localhost/health", { method: "GET" });

/** A database whose every query fails the way the driver does. */
const failingSql = (err: Error) => (() => Promise.reject(err)) as unknown as Sql;

Deno.test("health answers 503 with a generic message and keeps the driver's error in the log", async () => {
  const driverError = Object.assign(
    new Error('password authentication failed for user "svc_admin" at db.internal:6543'),
    { code: "28P01" },
  );
  const logged: unknown[] = [];
  const handler = createHealthHandler({
    sql: failingSql(driverError),
    logFailure: (err) => logged.push(err),
  });
  const res = await handler(get());
  assert.equal(res.status, 503);
  const text = await res.text();
  assert.deepEqual(JSON.parse(text), {
    status: "unavailable",
    database: { connected: false, error: "database unreachable" },
  });
  assert.doesNotMatch(text, /svc_admin|db\.internal|28P01|password/);
  assert.deepEqual(logged, [driverError]);
});

Deno.test("health logs the failure masked by default", async () => {
  const lines: string[] = [];
  const { error } = console;
  console.error = (line: string) => lines.push(line);
  try {
    const handler = createHealthHandler({
      sql: failingSql(new Error("connect to +12015550156 refused")),
    });
    assert.equal((await handler(get())).status, 503);
  } finally {
    console.error = error;
  }
  assert.equal(lines.length, 1);
  const line = JSON.parse(lines[0]);
  assert.equal(line.scope, "health");
  assert.equal(line.error.message, "connect to +*******0156 refused");
  assert.doesNotMatch(lines[0], /12015550156/);
});

Deno.test("health answers 200 with the latency when the database answers", async () => {
  let clock = 10;
  const handler = createHealthHandler({
    sql: (() => Promise.resolve([{ "?column?": 1 }])) as unknown as Sql,
    now: () => (clock += 1.5),
  });
  const res = await handler(get());
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {
    status: "ok",
    database: { connected: true, latency_ms: 1.5 },
  });
});
