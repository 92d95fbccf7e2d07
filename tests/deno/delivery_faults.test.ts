// Issue 7 through HTTP on the real stack: a process-queue process killed
// mid-batch, Twilio dropping the connection before and after it created a
// message, STOP between claim and send, racing supersessions, and a render
// that is never paid for twice. Every message ends sent exactly once.
import assert from "node:assert/strict";
import { db, killFunction, waitFor, waitFunctionBack } from "./helpers.ts";
import {
  catcher,
  deliveryUser,
  enqueue,
  processQueue,
  scripted,
  soleProcessorTest,
  statusOf,
} from "./delivery_helpers.ts";

/** Plays the quiet period before reconciliation: the sends began long ago. */
const pastReconcileWindow = (ids: string[]) =>
  db()`update public.message_queue set send_started_at = now() - interval '11 minutes',
                                       next_attempt_at = now() - interval '1 second'
        where id = any(${ids}) and status = 'unknown'`;

/** Plays a lapsed lease: the processor that held these is gone. */
const lapseLeases = (ids: string[]) =>
  db()`update public.message_queue set locked_until = now() - interval '1 second'
        where id = any(${ids}) and status = 'sending'`;

const statuses = async (ids: string[]) =>
  (await db()<{ status: string }[]>`
    select status from public.message_queue where id = any(${ids})`).map((r) => r.status);

soleProcessorTest(
  "process-queue killed mid-batch: every message goes exactly once, none stays unknown",
  async () => {
    const users = await Promise.all(Array.from({ length: 60 }, () => deliveryUser(db())));
    const ids = await Promise.all(
      users.map((u, i) => enqueue({ userId: u.id, text: `mid-batch ${i}` })),
    );
    const phones = new Set(users.map((u) => u.phone_number));
    // Slow answers keep sends in flight (32 at a time) while the rest wait their turn.
    await catcher.behaviour({ latencyMs: 30_000 });
    try {
      const run = processQueue({ time_budget_ms: 60_000 }).catch((err) => err);
      await waitFor("sends to be in flight", async () => {
        const caught = (await catcher.messages()).filter((m) => phones.has(m.to));
        return caught.length > 0;
      });
      await killFunction("process-queue");
      await run;
      await waitFunctionBack("process-queue");
    } finally {
      await catcher.behaviour({ latencyMs: 0 });
    }
    const inFlight = (await catcher.messages()).filter((m) => phones.has(m.to)).length;
    assert.ok(inFlight < ids.length, "the kill came while messages were still waiting");

    await lapseLeases(ids);
    await processQueue();
    await pastReconcileWindow(ids);
    const summary = await processQueue();
    assert.equal(summary.reconciled_found, inFlight, "what Twilio got is found in its list");

    assert.deepEqual(new Set(await statuses(ids)), new Set(["sent"]));
    const bodies = (await catcher.messages()).filter((m) => phones.has(m.to)).map((m) => m.body);
    assert.equal(bodies.length, ids.length, "each message reached Twilio");
    assert.equal(new Set(bodies).size, ids.length, "none twice");
  },
);

soleProcessorTest(
  "Twilio drops the connection before creating the message: found absent, sent once",
  async () => {
    const user = await deliveryUser(db());
    const id = await enqueue({ userId: user.id, text: "dropped before" });
    await catcher.behaviour({ failNext: [{ dropConnection: true, to: user.phone_number }] });
    await processQueue();
    assert.equal((await statusOf(id)).status, "unknown");
    assert.equal((await catcher.messages(user.phone_number)).length, 0);

    await pastReconcileWindow([id]);
    const summary = await processQueue();
    assert.equal(summary.reconciled_resent, 1);
    assert.equal((await statusOf(id)).status, "sent");
    const caught = await catcher.messages(user.phone_number);
    assert.deepEqual(caught.map((m) => m.body), ["dropped before"]);
    const [row] = await db()`select twilio_sid, resends from public.message_queue where id = ${id}`;
    assert.deepEqual([row.twilio_sid, row.resends], [caught[0].sid, 1]);
  },
);

soleProcessorTest(
  "Twilio drops the connection after creating the message: found in its list, never re-sent",
  async () => {
    const user = await deliveryUser(db());
    const id = await enqueue({ userId: user.id, text: "dropped after" });
    await catcher.behaviour({
      failNext: [{ dropConnection: true, afterCreate: true, to: user.phone_number }],
    });
    await processQueue();
    assert.equal((await statusOf(id)).status, "unknown");

    await processQueue();
    assert.equal((await statusOf(id)).status, "unknown", "not looked up before the quiet period");
    await pastReconcileWindow([id]);
    const summary = await processQueue();
    assert.equal(summary.reconciled_found, 1);
    const caught = await catcher.messages(user.phone_number);
    assert.equal(caught.length, 1, "sent once");
    const [row] = await db()`select status, twilio_sid from public.message_queue where id = ${id}`;
    assert.deepEqual([row.status, row.twilio_sid], ["sent", caught[0].sid]);
  },
);

soleProcessorTest(
  "a Twilio 500 after the request left is unknown, then reconciled: one text",
  async () => {
    const user = await deliveryUser(db());
    const id = await enqueue({ userId: user.id, text: "five hundred" });
    await catcher.behaviour({
      failNext: [{ httpStatus: 500, code: 20500, afterCreate: true, to: user.phone_number }],
    });
    await processQueue();
    assert.equal((await statusOf(id)).status, "unknown");
    await pastReconcileWindow([id]);
    await processQueue();
    assert.equal((await statusOf(id)).status, "sent");
    assert.equal((await catcher.messages(user.phone_number)).length, 1);
  },
);

soleProcessorTest(
  "STOP between claim and send: the rest of the sequence is never sent",
  async () => {
    const user = await deliveryUser(db());
    const sequence = { id: crypto.randomUUID(), total: 2 };
    const first = await enqueue({
      userId: user.id,
      text: "part one",
      sequence: { ...sequence, position: 1 },
    });
    const second = await enqueue({
      userId: user.id,
      text: "part two",
      sequence: { ...sequence, position: 2 },
    });
    await catcher.behaviour({ latencyMs: 2_000 });
    try {
      const run = processQueue();
      await waitFor(
        "part one to reach Twilio",
        async () => (await catcher.messages(user.phone_number)).length === 1,
      );
      const stop = await catcher.inbound({ from: user.phone_number, body: "STOP" });
      assert.equal(stop.status, 200);
      await run;
    } finally {
      await catcher.behaviour({ latencyMs: 0 });
    }
    assert.equal((await statusOf(first)).status, "sent");
    assert.equal((await statusOf(second)).status, "cancelled");
    assert.deepEqual((await catcher.messages(user.phone_number)).map((m) => m.body), ["part one"]);
  },
);

soleProcessorTest(
  "two concurrent enqueues with one supersede key leave exactly one queued",
  async () => {
    const user = await deliveryUser(db());
    const sql = db();
    const a = await sql.reserve();
    const b = await sql.reserve();
    try {
      await a`begin`;
      await b`begin`;
      const [{ pid }] = await b<{ pid: number }[]>`select pg_backend_pid() as pid`;
      await enqueue({ userId: user.id, text: "forecast A", supersedeKey: "forecast" }, a);
      // B runs while A is still open: it either finishes or waits for A; then A commits.
      let finished = false;
      const racing = enqueue({ userId: user.id, text: "forecast B", supersedeKey: "forecast" }, b)
        .then(() => (finished = true));
      await waitFor("B to finish or to wait for A", async () => {
        const [{ waiting }] = await sql<{ waiting: boolean }[]>`
          select coalesce(bool_or(wait_event_type = 'Lock'), false) as waiting
            from pg_stat_activity where pid = ${pid}`;
        return finished || waiting;
      });
      await a`commit`;
      await racing;
      await b`commit`;
    } finally {
      a.release();
      b.release();
    }
    const rows = await sql<{ final_message: string; status: string }[]>`
      select final_message, status from public.message_queue
       where user_id = ${user.id} order by final_message`;
    assert.deepEqual(rows.map((r) => [r.final_message, r.status]), [
      ["forecast A", "superseded"],
      ["forecast B", "queued"],
    ]);
  },
);

soleProcessorTest(
  "a rendered body is kept: a send retried after a 429 is not rendered again",
  async () => {
    await scripted.reset();
    const user = await deliveryUser(db());
    const marker = `kept-${crypto.randomUUID()}`;
    await scripted.script([
      { kind: "text", match: marker, text: "Your table for two is booked for 7 pm." },
    ]);
    const id = await enqueue({ userId: user.id, data: { booking: marker, time: "19:00" } });
    await catcher.behaviour({
      failNext: [{ httpStatus: 429, code: 20429, to: user.phone_number }],
    });
    await processQueue();
    assert.equal((await statusOf(id)).status, "queued");
    await db()`update public.message_queue set next_attempt_at = now() where id = ${id}`;
    await processQueue();
    assert.equal((await statusOf(id)).status, "sent");
    assert.deepEqual((await catcher.messages(user.phone_number)).map((m) => m.body), [
      "Your table for two is booked for 7 pm.",
    ]);
    const renders = (await scripted.requests()).filter((r) =>
      JSON.stringify(r.body.messages).includes(marker)
    );
    assert.equal(renders.length, 1, "rendered once");
  },
);
