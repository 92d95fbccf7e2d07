// The operator CLI's actions, export, forget, tail and doctor, run as a
// subprocess against the test stack.
import assert from "node:assert/strict";
import { createUser, db, stack, stackTest, waitFor } from "./helpers.ts";
import {
  catcher,
  deliveryUser,
  enqueue,
  processUntilSettled,
  soleProcessorTest,
} from "./delivery_helpers.ts";
import { assertCleanFailure, cli, cliJson } from "./cli_helpers.ts";

const sql = db;
const later = () => new Date(Date.now() + 3_600_000);
const statusOf = async (id: string) =>
  (await sql()<{ status: string }[]>`select status from public.message_queue where id = ${id}`)[0]
    .status;

stackTest("cancel asks first, cancels only a queued message, and records why", async () => {
  const user = await createUser(sql());
  const id = await enqueue({ userId: user.id, text: "maybe not", scheduledFor: later() });

  const declined = await cli(["cancel", id], { stdin: "n\n" });
  assertCleanFailure(declined, 1, /not confirmed: nothing changed/);
  assert.match(declined.stderr, /Cancel the medium message .* \(queued\): "maybe not"\? \[y\/N\]/);
  assert.equal(await statusOf(id), "queued");

  const typed = await cli(["cancel", id, "--json", "--reason", "wrong user"], { stdin: "y\n" });
  assert.equal(typed.code, 0, typed.stderr);
  assert.deepEqual(JSON.parse(typed.stdout).cancelled, [id]);
  assert.equal(await statusOf(id), "cancelled");
  const events = await sql()`
    select kind, reason, detail from public.delivery_events where message_id = ${id}`;
  assert.deepEqual(events.map((e) => [e.kind, e.reason, e.detail]), [[
    "cancelled",
    "operator",
    "wrong user",
  ]]);

  assertCleanFailure(
    await cli(["cancel", id, "--yes"]),
    1,
    /is cancelled: only a queued message can be cancelled/,
  );
  assertCleanFailure(await cli(["cancel", crypto.randomUUID(), "--yes"]), 1, /unknown message/);
});

stackTest("cancelling one member of a sequence cancels the whole sequence", async () => {
  const user = await createUser(sql());
  const seq = crypto.randomUUID();
  const a = await enqueue({
    userId: user.id,
    text: "1/2",
    scheduledFor: later(),
    sequence: { id: seq, position: 1, total: 2 },
  });
  const b = await enqueue({
    userId: user.id,
    text: "2/2",
    scheduledFor: later(),
    sequence: { id: seq, position: 2, total: 2 },
  });
  const r = await cliJson<{ cancelled: string[] }>(["cancel", b, "--yes"]);
  assert.deepEqual(r.cancelled.sort(), [a, b].sort());
  assert.deepEqual([await statusOf(a), await statusOf(b)], ["cancelled", "cancelled"]);
});

soleProcessorTest("retry puts a failed message back in the queue, and it goes out", async () => {
  const user = await deliveryUser(sql());
  await catcher.behaviour({
    failNext: [{
      httpStatus: 400,
      code: 21211,
      message: "Invalid 'To' Phone Number",
      to: user.phone_number,
    }],
  });
  const id = await enqueue({ userId: user.id, text: "second chance" });
  assert.equal((await processUntilSettled(id)).status, "failed");

  assertCleanFailure(await cli(["retry", id], { stdin: "" }), 1, /not confirmed/);
  const r = await cliJson<{ status: string; retried: string[] }>(["retry", id, "--yes"]);
  assert.deepEqual([r.status, r.retried], ["queued", [id]]);
  assert.equal(await statusOf(id), "queued");
  assert.equal((await processUntilSettled(id)).status, "sent");
  assert.equal((await catcher.messages(user.phone_number)).length, 1);
  assertCleanFailure(
    await cli(["retry", id, "--yes"]),
    1,
    /is sent: only a failed message can be retried/,
  );
});

stackTest("redrive runs a failed analysis again; anything else is refused", async () => {
  const user = await createUser(sql());
  const [{ id }] = await sql()<{ id: string }[]>`
    insert into public.interactions (user_id, channel, transcript, analysis_status, analysis_error)
    values (${user.id}, 'voice', 'call me tomorrow', 'failed', 'gave up') returning id`;
  const r = await cliJson<{ status: string; dispatched: boolean }>(["redrive", id, "--yes"]);
  assert.deepEqual(r, { interaction_id: id, status: "pending", dispatched: true });
  const [job] = await sql()<{ finished_at: Date | null; attempts: number; dispatches: number }[]>`
    select finished_at, attempts, dispatches from public.analysis_jobs where interaction_id = ${id}`;
  // A fresh job, dispatched once (it may already have finished: the scripted model is quick).
  assert.equal(job.dispatches, 1);
  // The webhook reached analyze-interaction: the analysis left 'failed'.
  await waitFor("the redriven analysis to be taken", async () => {
    const [i] = await sql()<{ status: string }[]>`
      select analysis_status as status from public.interactions where id = ${id}`;
    return i.status !== "failed" || null;
  });
  assertCleanFailure(
    await cli(["redrive", id, "--yes"]),
    1,
    /only a failed analysis can be redriven/,
  );
  assertCleanFailure(
    await cli(["redrive", crypto.randomUUID(), "--yes"]),
    1,
    /unknown interaction/,
  );
});

stackTest("skip cancels one occurrence of a call through skip_scheduled_call", async () => {
  const user = await createUser(sql());
  const [{ call }] = await sql()<{ call: string }[]>`
    select public.schedule_call(${user.id}, 'checkin', now() + interval '2 hours', null::text, null::text) as call`;
  const r = await cliJson<{ status: string; next_call_id: string | null }>([
    "skip",
    call,
    "--yes",
    "--reason",
    "away",
  ]);
  assert.deepEqual(r, { call_id: call, status: "cancelled", next_call_id: null });
  const [row] =
    await sql()`select status, cancel_reason from public.scheduled_calls where id = ${call}`;
  assert.deepEqual([row.status, row.cancel_reason], ["cancelled", "away"]);
  const listed = await cliJson<{ id: string }[]>([
    "calls",
    "--user",
    user.id,
    "--status",
    "cancelled",
  ]);
  assert.deepEqual(listed.map((c) => c.id), [call]);
  assertCleanFailure(await cli(["skip", crypto.randomUUID(), "--yes"]), 1, /unknown call/);
});

stackTest("routines lists a user's routines; pause and resume go through their RPCs", async () => {
  const [{ installed }] = await sql()`select public.operator_routines_installed() as installed`;
  if (!installed) {
    assertCleanFailure(await cli(["routines"]), 1, /routines are not installed/);
    assertCleanFailure(
      await cli(["pause", crypto.randomUUID(), "--yes"]),
      1,
      /routines are not installed/,
    );
    return;
  }
  const user = await createUser(sql(), { timezone: "Europe/Chisinau" });
  const [{ id }] = await sql()<{ id: string }[]>`
    select public.enable_builtin_routine(${user.id}, 'morning_plan') as id`;
  const listed = await cliJson<{ id: string; status: string; name: string }[]>([
    "routines",
    "--user",
    user.id,
  ]);
  assert.deepEqual(listed.map((r) => [r.id, r.status]), [[id, "active"]]);
  assert.deepEqual(await cliJson(["pause", id, "--yes"]), { routine_id: id, status: "paused" });
  assert.deepEqual(
    (await cliJson<{ id: string }[]>(["routines", "--user", user.id, "--status", "paused"])).map((
      r,
    ) => r.id),
    [id],
  );
  assert.deepEqual(await cliJson(["resume", id, "--yes"]), { routine_id: id, status: "active" });
  assertCleanFailure(await cli(["pause", crypto.randomUUID(), "--yes"]), 1, /unknown routine/);
  const s = await cliJson<{ routines_due: number | null }>(["status"]);
  assert.equal(typeof s.routines_due, "number");
});

/** Every table of schema public with a user_id column or a foreign key to users. */
async function tablesHoldingUsers(): Promise<{ table: string; column: string }[]> {
  return await sql()<{ table: string; column: string }[]>`
    select c.table_name as table, c.column_name as column
      from information_schema.columns c
      join information_schema.tables t using (table_schema, table_name)
     where c.table_schema = 'public' and t.table_type = 'BASE TABLE' and c.column_name = 'user_id'
    union
    select cl.relname, a.attname
      from pg_constraint k
      join pg_class cl on cl.oid = k.conrelid
      join pg_namespace n on n.oid = cl.relnamespace
      join pg_attribute a on a.attrelid = k.conrelid and a.attnum = any(k.conkey)
     where k.contype = 'f' and k.confrelid = 'public.users'::regclass and n.nspname = 'public'
     order by 1`;
}

async function rowsOf(userId: string, phone: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const { table, column } of await tablesHoldingUsers()) {
    const [{ n }] = await sql().unsafe(
      `select count(*)::int as n from public."${table}" where "${column}" = $1`,
      [
        userId,
      ],
    );
    counts[table] = n;
  }
  const [{ n }] = await sql()`
    select count(*)::int as n from public.messages where from_number = ${phone} or to_number = ${phone}`;
  counts["messages by phone"] = n;
  const [{ users }] =
    await sql()`select count(*)::int as users from public.users where id = ${userId}`;
  counts.users = users;
  return counts;
}

/** A user with rows in as many tables as the product fills. */
async function userWithHistory() {
  const user = await deliveryUser(sql());
  const id = await enqueue({ userId: user.id, text: "your data" });
  await processUntilSettled(id);
  await enqueue({ userId: user.id, text: "still queued", scheduledFor: later() });
  await sql()`
    insert into public.messages (user_id, direction, body, from_number, to_number, twilio_sid, status)
    values (null, 'inbound', 'before signing up', ${user.phone_number}, '+12015550100', ${`SM${crypto.randomUUID()}`}, 'received')`;
  const [{ interaction }] = await sql()<{ interaction: string }[]>`
    insert into public.interactions (user_id, channel, transcript, analysis_status)
    values (${user.id}, 'voice', 'I will call the bank', 'done') returning id as interaction`;
  await sql()`insert into public.commitments (user_id, interaction_id, description) values (${user.id}, ${interaction}, 'call the bank')`;
  await sql()`insert into public.sdk_actions (interaction_id, user_id, model, success, cost_usd) values (${interaction}, ${user.id}, 'test', true, 0.01)`;
  await sql()`insert into public.agent_actions_log (user_id, agent_id, action, cost_usd) values (${user.id}, 'test', 'analysis', 0.01)`;
  await sql()`insert into public.user_sessions (user_id, context_summary) values (${user.id}, 'likes tea')`;
  await sql()`select public.schedule_call(${user.id}, 'checkin', now() + interval '2 hours', null::text, null::text)`;
  await sql()`
    insert into public.agent_calls (agent_id, transport, tool, user_id, outcome, duration_ms)
    values ('test', 'agents', 'get_user_context', ${user.id}, 'ok', 3)`;
  const [{ installed }] = await sql()`select public.operator_routines_installed() as installed`;
  if (installed) await sql()`select public.enable_builtin_routine(${user.id}, 'morning_plan')`;
  return user;
}

stackTest("export then forget leaves no row of the user in any table", async () => {
  const user = await userWithHistory();
  const before = await rowsOf(user.id, user.phone_number);
  for (
    const t of [
      "message_queue",
      "messages",
      "interactions",
      "commitments",
      "scheduled_calls",
      "agent_calls",
    ]
  ) {
    assert.ok(before[t] > 0, `the fixture fills ${t}`);
  }

  const exported = await cliJson<{ user: { id: string }; tables: Record<string, unknown[]> }>([
    "export",
    user.phone_number,
  ]);
  assert.equal(exported.user.id, user.id);
  for (const [table, n] of Object.entries(before)) {
    if (table === "users" || table === "messages by phone" || table === "messages") continue;
    assert.equal(exported.tables[table]?.length ?? 0, n, `export holds every ${table} row`);
  }
  assert.equal(
    exported.tables.messages.length,
    before.messages + 1,
    "and the text sent before the user existed",
  );
  const md = await cli(["export", user.id, "--format", "markdown"]);
  assert.equal(md.code, 0);
  assert.match(md.stdout, new RegExp(`^# Data held about user ${user.id}`));
  assert.match(md.stdout, /^## commitments \(1\)\n\n\| /m);
  assert.match(md.stdout, /call the bank/);

  assertCleanFailure(await cli(["forget", user.id], { stdin: "no\n" }), 1, /not confirmed/);
  assert.equal((await rowsOf(user.id, user.phone_number)).users, 1);
  const forgot = await cliJson<{ deleted: Record<string, number> }>([
    "forget",
    user.phone_number,
    "--yes",
  ]);
  assert.ok(forgot.deleted.messages >= 2);

  const after = await rowsOf(user.id, user.phone_number);
  assert.deepEqual(Object.entries(after).filter(([, n]) => n > 0), [], "no row of theirs anywhere");
  assert.ok(
    Object.keys(after).length >= 15,
    `every table is checked: ${Object.keys(after).join(", ")}`,
  );
  assertCleanFailure(await cli(["export", user.id]), 1, /unknown user/);
});

stackTest("tail follows new events until interrupted, one JSON object a line", async () => {
  const user = await createUser(sql());
  const child = new Deno.Command("node", {
    args: [
      new URL("../../bin/orchestrator.js", import.meta.url).pathname,
      "tail",
      "--since",
      "1m",
      "--json",
      "--interval",
      "0.2",
      "--user",
      user.id,
      "--db-url",
      stack.dbUrl,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const id = await enqueue({ userId: user.id, text: "watch me", scheduledFor: later() });
  await sql()`select public.cancel_message(${id}, 'tail test')`;
  // Only a guard against a hang: without the event, the assertions below fail.
  const guard = setTimeout(() => child.kill("SIGINT"), 30_000);
  let buffer = "";
  const events: { kind: string; what: string; user_id: string }[] = [];
  while (!events.some((e) => e.what === "cancelled operator")) {
    const { value, done } = await lines.read();
    if (done) break;
    buffer += value;
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    events.push(...parts.filter(Boolean).map((l) => JSON.parse(l)));
  }
  clearTimeout(guard);
  child.kill("SIGINT");
  const status = await child.status;
  lines.releaseLock();
  await child.stdout.cancel().catch(() => {});
  await child.stderr.cancel();
  assert.equal(status.code, 0, "Ctrl-C ends tail cleanly");
  assert.ok(events.every((e) => e.user_id === user.id));
  assert.deepEqual(events.map((e) => [e.kind, e.what]), [["delivery", "cancelled operator"]]);
});

stackTest(
  "doctor passes on the test stack and says what to do when a Vault secret is missing",
  async () => {
    const good = await cliJson<{ ok: boolean; checks: { name: string; verdict: string }[] }>([
      "doctor",
    ]);
    const verdicts = Object.fromEntries(good.checks.map((c) => [c.name, c.verdict]));
    for (
      const name of [
        "migrations",
        "vault",
        "function health",
        "function process-queue",
        "function twilio-status",
      ]
    ) {
      assert.equal(verdicts[name], "ok", `${name}: ${JSON.stringify(good.checks)}`);
    }
    assert.ok(["pg_cron", "pg_net", "twilio", "anthropic"].every((n) => n in verdicts));
    assert.equal(good.ok, good.checks.every((c) => c.verdict !== "fail"));

    await sql()`update vault.secrets set name = 'orchestrator_secret_hidden' where name = 'orchestrator_secret'`;
    try {
      const r = await cli(["doctor", "--json"]);
      assert.equal(r.code, 1);
      const vault = JSON.parse(r.stdout).checks.find((c: { name: string }) => c.name === "vault");
      assert.equal(vault.verdict, "fail");
      assert.match(vault.detail, /missing secret\(s\): orchestrator_secret/);
      assert.match(
        vault.fix,
        /vault\.create_secret\('<ORCHESTRATOR_SECRET>', 'orchestrator_secret'\)/,
      );
      const text = await cli(["doctor"]);
      assert.match(text.stdout, /^fail +vault +missing secret/m);
      assert.doesNotMatch(text.stdout + r.stdout, new RegExp(stack.secret), "no secret is printed");
    } finally {
      await sql()`update vault.secrets set name = 'orchestrator_secret' where name = 'orchestrator_secret_hidden'`;
    }

    const r = await cli(["doctor", "--json", "--api-url", "http://127.0.0.1:9"]);
    const health = JSON.parse(r.stdout).checks.find((c: { name: string }) =>
      c.name === "function health"
    );
    assert.deepEqual([r.code, health.verdict], [1, "fail"]);
  },
);
