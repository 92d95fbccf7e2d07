// Reconciling an "unknown" send: asking Twilio's Messages list whether our request created one.
import assert from "node:assert/strict";
import { type SmsCatcher, startSmsCatcher } from "../../../scripts/local/sms_catcher.ts";
import {
  CREATED_AT_TOLERANCE_MS,
  DEFAULT_UNKNOWN_RECONCILE_AFTER_SECONDS,
  findSentMessage,
  type ListedMessage,
  type LookupOutcome,
  lookUpSentMessage,
  sendSms,
  type TwilioConfig,
  unknownReconcileAfterSecondsFromEnv,
} from "../../../shared/twilio/client.ts";

const FROM = "+12015550100";
const TO = "+12015550123";
const OTHER = "+12015550124";
const BODY = "Your 3pm call is confirmed.";
const SMS = { to: TO, body: BODY, statusCallback: "https://cb.example/s" };

async function withCatcher(fn: (c: SmsCatcher, cfg: TwilioConfig) => Promise<void>) {
  const catcher = await startSmsCatcher({ port: 0 });
  const cfg: TwilioConfig = {
    accountSid: catcher.accountSid,
    authToken: catcher.authToken,
    from: FROM,
    baseUrl: catcher.url,
    timeoutMs: 5_000,
  };
  try {
    await fn(catcher, cfg);
  } finally {
    await catcher.stop();
  }
}

const T0 = new Date("2026-12-01T12:00:00.700Z");
const listed = (over: Partial<ListedMessage> = {}): ListedMessage => ({
  sid: "SM00000000000000000000000000000001",
  to: TO,
  from: FROM,
  messagingServiceSid: null,
  body: BODY,
  status: "delivered",
  errorCode: null,
  // Twilio writes whole seconds: created in the same second as T0, it reads as earlier.
  dateCreated: new Date("2026-12-01T12:00:00Z"),
  direction: "outbound-api",
  ...over,
});
const QUERY = { to: TO, senders: [FROM], body: BODY, createdAfter: T0 };

Deno.test("the message our request created is found by recipient, sender and exact body", () => {
  assert.equal(findSentMessage([listed()], QUERY)?.sid, listed().sid);
  const misses = [
    listed({ body: `${BODY} ` }),
    listed({ body: BODY.toLowerCase() }),
    listed({ to: OTHER }),
    listed({ from: "+12015550199" }),
    listed({ direction: "inbound" }),
    listed({ dateCreated: new Date(T0.getTime() - CREATED_AT_TOLERANCE_MS - 1_000) }),
  ];
  for (const m of misses) assert.equal(findSentMessage([m], QUERY), null, JSON.stringify(m));
});

Deno.test("a Messaging Service send matches on the service, whatever number Twilio picked", () => {
  const viaService = listed({ from: "+12015550177", messagingServiceSid: "MG_local" });
  const q = { ...QUERY, senders: ["MG_local"] };
  assert.equal(findSentMessage([viaService], q)?.sid, viaService.sid);
  assert.equal(findSentMessage([listed({ messagingServiceSid: "MG_other" })], q), null);
});

Deno.test("when a retried request was processed twice, the oldest copy is the one found", () => {
  const first = listed({ sid: "SM0000000000000000000000000000000a" });
  const second = listed({
    sid: "SM0000000000000000000000000000000b",
    dateCreated: new Date("2026-12-01T12:00:05Z"),
  });
  assert.equal(findSentMessage([second, first], QUERY)?.sid, first.sid);
});

Deno.test("a send whose connection dropped after Twilio created it is found", async () => {
  await withCatcher(async (catcher, cfg) => {
    const createdAfter = new Date();
    catcher.setBehaviour({ failNext: [{ dropConnection: true, afterCreate: true }] });
    assert.equal((await sendSms(cfg, SMS, { fetch })).kind, "unknown");
    const [created] = catcher.messages();
    const found = await lookUpSentMessage(cfg, { to: TO, body: BODY, createdAfter }, { fetch });
    assert.deepEqual(found, { kind: "found", sid: created.sid, status: "queued", errorCode: null });
  });
});

Deno.test("Twilio's later status and error code come back with the found message", async () => {
  await withCatcher(async (catcher, cfg) => {
    const createdAfter = new Date();
    catcher.setBehaviour({ failNext: [{ httpStatus: 500, afterCreate: true }] });
    assert.equal((await sendSms(cfg, SMS, { fetch })).kind, "unknown");
    const [created] = catcher.messages();
    const receiver = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => new Response("ok"),
    );
    try {
      const url = `http://127.0.0.1:${receiver.addr.port}/status`;
      const res = await catcher.postStatus({
        url,
        sid: created.sid,
        status: "undelivered",
        errorCode: "30003",
      });
      await res.body?.cancel();
    } finally {
      await receiver.shutdown();
    }
    const found = await lookUpSentMessage(cfg, { to: TO, body: BODY, createdAfter }, { fetch });
    assert.deepEqual(found, {
      kind: "found",
      sid: created.sid,
      status: "undelivered",
      errorCode: 30003,
    });
  });
});

Deno.test("a send dropped before Twilio created it is certainly absent", async () => {
  await withCatcher(async (catcher, cfg) => {
    const createdAfter = new Date();
    // Other traffic to the same user and to others must not be mistaken for it.
    assert.equal(
      (await sendSms(cfg, { ...SMS, body: "Another text" }, { fetch })).kind,
      "accepted",
    );
    assert.equal((await sendSms(cfg, { ...SMS, to: OTHER }, { fetch })).kind, "accepted");
    catcher.setBehaviour({ failNext: [{ dropConnection: true }] });
    assert.equal((await sendSms(cfg, SMS, { fetch })).kind, "unknown");
    const absent = await lookUpSentMessage(cfg, { to: TO, body: BODY, createdAfter }, { fetch });
    assert.deepEqual(absent, { kind: "absent" });
  });
});

Deno.test("the lookup asks for To and a DateSent window, with Basic auth", async () => {
  const seen: Request[] = [];
  const capture = ((input: string, init: RequestInit) => {
    seen.push(new Request(input, init));
    return Promise.resolve(Response.json({ messages: [], next_page_uri: null }));
  }) as typeof fetch;
  const cfg: TwilioConfig = {
    accountSid: "AC_x",
    authToken: "t",
    from: FROM,
    baseUrl: "https://api.twilio.example",
    timeoutMs: 1_000,
  };
  const outcome = await lookUpSentMessage(
    cfg,
    { to: TO, body: BODY, createdAfter: new Date("2026-12-01T00:00:10Z") },
    { fetch: capture, now: () => new Date("2026-12-01T00:10:00Z") },
    { pageSize: 250, maxPages: 3 },
  );
  assert.deepEqual(outcome, { kind: "absent" });
  assert.equal(seen.length, 1);
  const url = new URL(seen[0].url);
  assert.equal(seen[0].method, "GET");
  assert.equal(
    url.origin + url.pathname,
    "https://api.twilio.example/2010-04-01/Accounts/AC_x/Messages.json",
  );
  // Twilio's names: DateSent>=YYYY-MM-DD is the parameter "DateSent>" with a date value. The
  // window starts the day before here, because of the tolerance for clocks, and ends tomorrow.
  assert.deepEqual([...url.searchParams], [
    ["To", TO],
    ["DateSent>", "2026-11-30"],
    ["DateSent<", "2026-12-02"],
    ["PageSize", "250"],
  ]);
  assert.match(url.search, /DateSent%3E=2026-11-30&DateSent%3C=2026-12-02/);
  assert.equal(seen[0].headers.get("authorization"), `Basic ${btoa("AC_x:t")}`);
});

async function sendAll(cfg: TwilioConfig, bodies: string[]) {
  for (const body of bodies) {
    assert.equal((await sendSms(cfg, { ...SMS, body }, { fetch })).kind, "accepted");
  }
}

Deno.test("the listing is followed page by page, up to the page limit", async () => {
  await withCatcher(async (_catcher, cfg) => {
    const createdAfter = new Date();
    // Newest first, so the one looked for (sent first) is on the last of three pages of two.
    await sendAll(cfg, [BODY, "b", "c", "d", "e"]);
    const q = { to: TO, body: BODY, createdAfter };
    const look = (maxPages: number) =>
      lookUpSentMessage(cfg, q, { fetch }, { pageSize: 2, maxPages });
    assert.equal((await look(3)).kind, "found");
    const cut = await look(2);
    assert.deepEqual(cut, { kind: "unknown", message: "listing messages: more than 2 pages" });

    const missing = { ...q, body: "never sent" };
    const lookMissing = (maxPages: number) =>
      lookUpSentMessage(cfg, missing, { fetch }, { pageSize: 2, maxPages });
    assert.deepEqual(await lookMissing(3), { kind: "absent" });
    assert.equal((await lookMissing(2)).kind, "unknown");
  });
});

Deno.test("a listing that cannot be read to the end is unknown, never absent", async () => {
  await withCatcher(async (catcher, cfg) => {
    const q = { to: TO, body: BODY, createdAfter: new Date() };
    const unknown = (o: LookupOutcome, pattern: RegExp) => {
      assert.equal(o.kind, "unknown", JSON.stringify(o));
      assert.match((o as { message: string }).message, pattern);
    };
    unknown(await lookUpSentMessage({ ...cfg, authToken: "wrong" }, q, { fetch }), /HTTP 401/);
    catcher.setBehaviour({ latencyMs: 60_000 });
    unknown(await lookUpSentMessage({ ...cfg, timeoutMs: 50 }, q, { fetch }), /within 50 ms/);
  });
  const offline: TwilioConfig = {
    accountSid: "AC_x",
    authToken: "t",
    from: FROM,
    baseUrl: "http://twilio.invalid",
    timeoutMs: 1_000,
  };
  const q = { to: TO, body: BODY, createdAfter: new Date() };
  const answering = (...bodies: (string | Error)[]) => {
    const queue = [...bodies];
    return (() => {
      const next = queue.shift()!;
      return next instanceof Error
        ? Promise.reject(next)
        : Promise.resolve(new Response(next, { status: 200 }));
    }) as typeof fetch;
  };
  const unknown = async (f: typeof fetch, pattern: RegExp) => {
    const o = await lookUpSentMessage(offline, q, { fetch: f });
    assert.equal(o.kind, "unknown", JSON.stringify(o));
    assert.match((o as { message: string }).message, pattern);
  };
  await unknown(answering(new TypeError("fetch failed")), /fetch failed/);
  await unknown(answering("<html>"), /without a message list/);
  await unknown(answering(JSON.stringify({ messages: [{ sid: "SM1" }] })), /without a message/);
  const elsewhere = JSON.stringify({ messages: [], next_page_uri: "https://evil.example/x" });
  await unknown(answering(elsewhere), /leaves the Messages list/);
  const onward = JSON.stringify({
    messages: [],
    next_page_uri: "/2010-04-01/Accounts/AC_x/Messages.json?To=x&Page=1&PageToken=PASM1",
  });
  await unknown(answering(onward, new TypeError("connection reset")), /connection reset/);
});

Deno.test("a match is proof even when a later page cannot be read", async () => {
  const first = JSON.stringify({
    messages: [{
      sid: "SM00000000000000000000000000000001",
      to: TO,
      from: FROM,
      messaging_service_sid: null,
      body: BODY,
      status: "sent",
      error_code: null,
      date_created: "Tue, 01 Dec 2026 12:00:01 +0000",
      direction: "outbound-api",
    }],
    next_page_uri: "/2010-04-01/Accounts/AC_x/Messages.json?To=x&Page=1&PageToken=PASM1",
  });
  let calls = 0;
  const f = (() => {
    calls++;
    return Promise.resolve(
      calls === 1 ? new Response(first) : Response.json({ message: "boom" }, { status: 500 }),
    );
  }) as typeof fetch;
  const cfg: TwilioConfig = {
    accountSid: "AC_x",
    authToken: "t",
    from: FROM,
    baseUrl: "http://twilio.invalid",
    timeoutMs: 1_000,
  };
  const outcome = await lookUpSentMessage(cfg, { to: TO, body: BODY, createdAfter: T0 }, {
    fetch: f,
  });
  assert.deepEqual(outcome, {
    kind: "found",
    sid: "SM00000000000000000000000000000001",
    status: "sent",
    errorCode: null,
  });
  assert.equal(calls, 2);
});

Deno.test("UNKNOWN_RECONCILE_AFTER_SECONDS defaults to 600 and takes 60 to 86400 seconds", () => {
  assert.equal(DEFAULT_UNKNOWN_RECONCILE_AFTER_SECONDS, 600);
  assert.equal(unknownReconcileAfterSecondsFromEnv({}), 600);
  assert.equal(unknownReconcileAfterSecondsFromEnv({ UNKNOWN_RECONCILE_AFTER_SECONDS: " " }), 600);
  assert.equal(unknownReconcileAfterSecondsFromEnv({ UNKNOWN_RECONCILE_AFTER_SECONDS: "60" }), 60);
  assert.equal(
    unknownReconcileAfterSecondsFromEnv({ UNKNOWN_RECONCILE_AFTER_SECONDS: "86400" }),
    86_400,
  );
  for (const bad of ["59", "86401", "600.5", "10m", "-600"]) {
    assert.throws(
      () => unknownReconcileAfterSecondsFromEnv({ UNKNOWN_RECONCILE_AFTER_SECONDS: bad }),
      /UNKNOWN_RECONCILE_AFTER_SECONDS/,
      bad,
    );
  }
});
