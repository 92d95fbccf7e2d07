// The local stack restarts a function process that dies, as the Edge Runtime
// boots a new isolate: a killed function answers again on the same URL.
import assert from "node:assert/strict";
import {
  functionProcess,
  functionUrl,
  killFunction,
  stackTest,
  waitFunctionBack,
} from "./helpers.ts";
import { nextRestartDelay, RESTART_BACKOFF } from "../../scripts/local/functions.ts";

const health = async () => {
  const res = await fetch(functionUrl("health"));
  return { status: res.status, body: await res.json() };
};

stackTest("a killed function process is restarted and answers again", async () => {
  assert.equal((await health()).status, 200);
  const before = await functionProcess("health");
  assert.equal(before.listening, true);

  const killed = await killFunction("health");
  assert.equal(killed, before.pid);

  const after = await waitFunctionBack("health");
  assert.notEqual(after.pid, killed);
  assert.equal(after.restarts, before.restarts + 1);
  const res = await health();
  assert.equal(res.status, 200);
  assert.equal(res.body.database.connected, true);
});

stackTest("a request sent while the function restarts waits for it", async () => {
  await waitFunctionBack("health");
  await killFunction("health");
  const res = await health();
  assert.equal(res.status, 200);
});

stackTest("the control API names only real functions", async () => {
  const res = await fetch(`${Deno.env.get("TEST_STACK_URL")}/functions/no-such-function`);
  assert.equal(res.status, 404);
  await res.body?.cancel();
});

Deno.test("restart delays double up to a cap and start over once a process lasted", () => {
  const { firstMs, maxMs, stableAfterMs } = RESTART_BACKOFF;
  assert.equal(nextRestartDelay(null, 0), firstMs);
  assert.equal(nextRestartDelay(firstMs, 50), firstMs * 2);
  assert.equal(nextRestartDelay(maxMs, 50), maxMs);
  assert.equal(nextRestartDelay(maxMs, stableAfterMs), firstMs);
});
