// Overlapping processors and processors that die mid-way: every message goes
// out exactly once and no cap is ever exceeded.
import assert from "node:assert/strict";
import { sendSms } from "../../shared/twilio/client.ts";
import { emptyDeliverySummary, Outcomes, SendStarter } from "../../shared/delivery/processor.ts";
import { toSmsText } from "../../shared/delivery/gsm.ts";
import { createUsers, db, functionUrl, stackTest, waitFor } from "./helpers.ts";
import {
  catcher,
  deliveryUser,
  enqueue,
  processQueue,
  soleProcessorTest,
  statusOf,
} from "./delivery_helpers.ts";

stackTest("four overlapping processors send 5,000 messages exactly once within caps", async () => {
  const sql = db();
  const users = (await createUsers(sql, 500)).map((u, i) => ({ ...u, capped: i % 2 === 0 }));
  const capped = users.filter((u) => u.capped).map((u) => u.id);
  await sql`
    update public.users set quiet_hours_start = '00:00', quiet_hours_end = '00:00',
           daily_message_limit = case when id = any(${capped}) then 6 else 100 end,
           hourly_message_limit = case when id = any(${capped}) then 4 else 100 end
     where id = any(${users.map((u) => u.id)})`;
  await sql`
    select public.enqueue_message(u.id, 'load', (array['low','medium','high'])[1 + i % 3],
                                  p_final_message := 'load ' || u.id || ' #' || i)
      from unnest(${users.map((u) => u.id)}::uuid[]) as u(id), generate_series(1, 10) as i`;

  const runs = await Promise.all(
    [1, 2, 3, 4].map(() => processQueue({ time_budget_ms: 120_000, batch_size: 50 })),
  );
  assert.ok(runs.every((r) => typeof r.sent === "number"));
  // Anything a run skipped because another held its user is due for the next run.
  await waitFor("the queue to drain", async () => {
    const [{ due }] = await sql<{ due: number }[]>`
      select count(*)::int as due from public.message_queue
       where user_id = any(${users.map((u) => u.id)}) and status in ('queued', 'sending')
         and next_attempt_at <= now()`;
    if (due > 0) await processQueue({ time_budget_ms: 30_000 });
    return due === 0;
  }, 120_000);

  const phones = new Map(users.map((u) => [u.phone_number, u]));
  const caught = (await catcher.messages()).filter((m) => phones.has(m.to));
  const bodies = caught.map((m) => m.body);
  assert.equal(new Set(bodies).size, bodies.length, "no message was sent twice");
  const perUser = new Map<string, number>();
  for (const m of caught) perUser.set(m.to, (perUser.get(m.to) ?? 0) + 1);
  const wrong = [...phones].filter(([phone, user]) =>
    (perUser.get(phone) ?? 0) !== (user.capped ? 4 : 10)
  ).map(([phone, user]) => `${user.id}: ${perUser.get(phone) ?? 0}`);
  assert.deepEqual(wrong, [], "each user got exactly their cap or all 10");
  assert.equal(caught.length, 250 * 4 + 250 * 10);
  const [{ sent }] = await sql<{ sent: number }[]>`
    select count(*)::int as sent from public.message_queue
     where user_id = any(${users.map((u) => u.id)}) and status = 'sent'`;
  assert.equal(sent, caught.length, "every send is recorded once");
  await sql`delete from public.users where id = any(${users.map((u) => u.id)})`;
});

async function claimFor(userId: string) {
  const sql = db();
  const [{ claim }] = await sql<{ claim: { claim_token: string; messages: { id: string }[] } }[]>`
    select public.claim_messages(100, 60) as claim`;
  assert.ok(claim.messages.length > 0, "the claim took the user's message");
  const [row] = await sql`select claim_token from public.message_queue
                           where user_id = ${userId} and status = 'sending'`;
  assert.equal(row.claim_token, claim.claim_token);
  return claim.claim_token;
}

const lapse = (token: string) =>
  db()`update public.message_queue set locked_until = now() - interval '1 second'
         where claim_token = ${token} and status = 'sending'`;

soleProcessorTest(
  "a processor killed after claiming: the lease lapses and the message goes once",
  async () => {
    const user = await deliveryUser(db());
    const id = await enqueue({ userId: user.id, text: "after the crash" });
    const token = await claimFor(user.id);
    // The processor died here: it never sent nor recorded anything.
    await lapse(token);
    await processQueue();
    await waitFor(
      "the rescued message to go",
      async () => (await statusOf(id)).status === "sent" || null,
    );
    assert.deepEqual(
      (await catcher.messages(user.phone_number)).map((m) => m.body),
      [
        "after the crash",
      ],
    );
  },
);

soleProcessorTest(
  "killed after Twilio accepted: unknown, never re-sent, reconciled by the callback",
  async () => {
    const sql = db();
    const user = await deliveryUser(sql);
    const id = await enqueue({ userId: user.id, text: "did it go?" });
    const token = await claimFor(user.id);
    const items = [{ claim_token: token, id, body: "did it go?" }];
    const [{ verdict }] = await sql<{ verdict: string }[]>`
      select public.start_sending(${JSON.stringify(items)}::text::jsonb) ->> ${id} as verdict`;
    assert.equal(verdict, "go");
    const outcome = await sendSms({
      accountSid: "AC_local_catcher",
      authToken: "local-catcher-auth-token",
      from: "+12015550100",
      baseUrl: Deno.env.get("TEST_CATCHER_URL")!,
      timeoutMs: 10_000,
    }, {
      to: user.phone_number,
      body: "did it go?",
      statusCallback: `${functionUrl("twilio-status")}?message_id=${id}`,
    }, { fetch });
    assert.equal(outcome.kind, "accepted");
    // The processor died before complete_messages.
    await lapse(token);
    await processQueue();
    const after = await statusOf(id);
    assert.equal(after.status, "unknown");
    await processQueue();
    assert.equal((await catcher.messages(user.phone_number)).length, 1, "never sent again");

    const [sent] = await catcher.messages(user.phone_number);
    const res = await catcher.status({
      url: sent.statusCallback!,
      sid: sent.sid,
      status: "delivered",
    });
    assert.equal(res.status, 200);
    assert.equal((await statusOf(id)).status, "delivered");
    const [row] = await sql`select twilio_sid from public.message_queue where id = ${id}`;
    assert.equal(row.twilio_sid, sent.sid);
  },
);

soleProcessorTest(
  "messages ready to leave together are marked in one statement, each with its own verdict",
  async () => {
    const sql = db();
    const user = await deliveryUser(sql);
    const ids = [
      await enqueue({ userId: user.id, text: "together one" }),
      await enqueue({ userId: user.id, text: "together two" }),
      await enqueue({ userId: user.id, text: "together three" }),
    ];
    const token = await claimFor(user.id);
    let statements = 0;
    const counted = ((strings: TemplateStringsArray, ...values: unknown[]) => {
      statements++;
      return sql(strings, ...(values as never[]));
    }) as unknown as typeof sql;
    const starter = new SendStarter(counted);
    const sms = toSmsText("together");
    // Asked for together, marked in one statement; the one whose token is not
    // its claim's is refused, and the others still go.
    const verdicts = await Promise.all([
      starter.start(token, ids[0], sms),
      starter.start(token, ids[1], sms),
      starter.start(crypto.randomUUID(), ids[2], sms),
    ]);
    assert.deepEqual(verdicts, ["go", "go", "lost"]);
    assert.equal(statements, 1);
    // One asked for alone is marked alone.
    assert.deepEqual(await Promise.all([starter.start(token, ids[2], sms)]), ["go"]);
    assert.equal(statements, 2);
    const rows = await sql<{ id: string; started: boolean }[]>`
      select id, send_started_at is not null as started from public.message_queue
       where id = any(${ids}) order by array_position(${ids}::uuid[], id)`;
    assert.deepEqual(rows.map((r) => r.started), [true, true, true]);
  },
);

soleProcessorTest(
  "an outcome is written soon after it is known, without waiting for a full write or the run's end",
  async () => {
    const sql = db();
    const user = await deliveryUser(sql);
    const id = await enqueue({ userId: user.id, text: "written soon" });
    const token = await claimFor(user.id);
    assert.equal(await new SendStarter(sql).start(token, id, toSmsText("written soon")), "go");
    let written!: () => void;
    const wrote = new Promise<void>((resolve) => (written = resolve));
    const watched = ((strings: TemplateStringsArray, ...values: unknown[]) => {
      if (strings.join("").includes("complete_messages")) written();
      return sql(strings, ...(values as never[]));
    }) as unknown as typeof sql;
    const summary = emptyDeliverySummary();
    const outcomes = new Outcomes(watched, summary);
    outcomes.record(token, [{
      id,
      outcome: "sent",
      twilio_sid: "SM" + "e".repeat(32),
      from: "+12015550100",
    }]);
    // Only a guard against a hang: the write starts on its own, long before this.
    let guard: ReturnType<typeof setTimeout> | undefined;
    const stuck = new Promise<"stuck">((resolve) => (guard = setTimeout(resolve, 30_000, "stuck")));
    try {
      assert.equal(await Promise.race([wrote.then(() => "wrote" as const), stuck]), "wrote");
    } finally {
      clearTimeout(guard);
    }
    await outcomes.flush();
    assert.equal(summary.sent, 1);
    assert.equal((await statusOf(id)).status, "sent");
  },
);
