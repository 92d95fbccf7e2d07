// The local pg_net stand-in must behave like pg_net: requests leave only after
// commit, never for a rolled-back transaction, and outcomes (including
// timeouts) land in net._http_response.
import assert from "node:assert/strict";
import { db, recordingServer, stackTest, waitFor } from "./helpers.ts";

type Response = {
  status_code: number | null;
  content: string | null;
  content_type: string | null;
  timed_out: boolean | null;
  error_msg: string | null;
};

const responseFor = (id: string) => async () => {
  const [row] = await db()<Response[]>`
    select status_code, content, content_type, timed_out, error_msg
      from net._http_response where id = ${id}`;
  return row;
};

stackTest("a request is invisible to the dispatcher until its transaction commits", async () => {
  const server = recordingServer(() => Response.json({ pong: true }));
  try {
    const sql = db();
    const reserved = await sql.reserve();
    let id: string;
    try {
      await reserved`begin`;
      [{ id }] = await reserved<{ id: string }[]>`
        select net.http_post(${server.url + "/after-commit"}, '{"n":1}'::jsonb)::text as id`;
      // Another session (as the dispatcher is) cannot see the queued request yet.
      const [{ n }] = await sql<{ n: number }[]>`
        select count(*)::int as n from net.http_request_queue where id = ${id}`;
      assert.equal(n, 0);
      await reserved`commit`;
    } finally {
      reserved.release();
    }
    const res = await waitFor("the response", responseFor(id));
    assert.equal(res.status_code, 200);
    assert.equal(res.timed_out, false);
    assert.deepEqual(JSON.parse(res.content!), { pong: true });
    assert.equal(server.received.length, 1);
    assert.equal(server.received[0].method, "POST");
    assert.deepEqual(JSON.parse(server.received[0].body), { n: 1 });
    assert.equal(server.received[0].headers.get("content-type"), "application/json");
  } finally {
    await server.close();
  }
});

stackTest("nothing is sent for a rolled-back transaction", async () => {
  const server = recordingServer();
  try {
    const sql = db();
    let rolledBackId = "";
    await sql.begin(async (tx) => {
      [{ id: rolledBackId }] = await tx<{ id: string }[]>`
        select net.http_post(${server.url + "/rolled-back"})::text as id`;
      throw new Error("roll back");
    }).catch((err) => assert.equal(err.message, "roll back"));
    // A committed request issued afterwards is the barrier: once it has been
    // answered, the dispatcher has had every chance to send the first one.
    const [{ id }] = await sql<{ id: string }[]>`
      select net.http_post(${server.url + "/committed"})::text as id`;
    await waitFor("the committed request", responseFor(id));
    assert.deepEqual(server.received.map((r) => new URL(r.url).pathname), ["/committed"]);
    assert.equal(await responseFor(rolledBackId)(), undefined);
  } finally {
    await server.close();
  }
});

stackTest("timeout_milliseconds is honoured and the timeout recorded", async () => {
  const release = Promise.withResolvers<void>();
  const server = recordingServer(async () => {
    await release.promise;
    return new Response("too late");
  });
  try {
    const [{ id }] = await db()<{ id: string }[]>`
      select net.http_post(${server.url + "/slow"}, timeout_milliseconds := 200)::text as id`;
    const res = await waitFor("the timeout", responseFor(id));
    assert.equal(res.timed_out, true);
    assert.equal(res.status_code, null);
    assert.match(res.error_msg!, /Timeout of 200 ms/);
  } finally {
    release.resolve();
    await server.close();
  }
});

stackTest("params become the query string and headers are sent", async () => {
  const server = recordingServer(() => new Response("created", { status: 201 }));
  try {
    const [{ id }] = await db()<{ id: string }[]>`
      select net.http_post(
        ${server.url + "/p"},
        params := '{"a": "1&2", "b": "x"}'::jsonb,
        headers := '{"X-Probe": "yes", "Content-Type": "application/json"}'::jsonb
      )::text as id`;
    const res = await waitFor("the response", responseFor(id));
    assert.equal(res.status_code, 201);
    assert.equal(res.content, "created");
    const got = new URL(server.received[0].url);
    assert.equal(got.searchParams.get("a"), "1&2");
    assert.equal(got.searchParams.get("b"), "x");
    assert.equal(server.received[0].headers.get("x-probe"), "yes");
  } finally {
    await server.close();
  }
});

stackTest("an unreachable host is recorded as an error, not a timeout", async () => {
  const server = recordingServer();
  const url = server.url;
  await server.close();
  const [{ id }] = await db()<{ id: string }[]>`select net.http_get(${url})::text as id`;
  const res = await waitFor("the error", responseFor(id));
  assert.equal(res.timed_out, false);
  assert.equal(res.status_code, null);
  assert.ok(res.error_msg);
});
