import assert from "node:assert/strict";
import {
  DEFAULT_CATCHER_ACCOUNT_SID,
  type SmsCatcher,
  startSmsCatcher,
} from "../../../scripts/local/sms_catcher.ts";
import { isValidTwilioSignature } from "../../../shared/twilio/signature.ts";

const FROM = "+12015550100";
const TO = "+12015550123";

interface Received {
  signature: string | null;
  form: URLSearchParams;
}

async function withCatcher(fn: (c: SmsCatcher) => Promise<void>, log?: (line: string) => void) {
  const catcher = await startSmsCatcher({ port: 0, log });
  try {
    await fn(catcher);
  } finally {
    await catcher.stop();
  }
}

// A webhook endpoint standing in for our edge functions, recording what Twilio would post.
async function withReceiver(fn: (url: string, received: Received[]) => Promise<void>) {
  const received: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    received.push({
      signature: req.headers.get("x-twilio-signature"),
      form: new URLSearchParams(await req.text()),
    });
    return new Response("<Response/>", { headers: { "content-type": "text/xml" } });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/functions/v1/twilio?tenant=a`, received);
  } finally {
    await server.shutdown();
  }
}

function create(
  c: SmsCatcher,
  fields: Record<string, string>,
  auth = `${c.accountSid}:${c.authToken}`,
): Promise<Response> {
  return fetch(`${c.url}/2010-04-01/Accounts/${c.accountSid}/Messages.json`, {
    method: "POST",
    // A fresh connection, as sendSms uses: on a reused one, fetch resends a dropped POST itself,
    // so every request here leaves none behind.
    headers: { authorization: `Basic ${btoa(auth)}`, connection: "close" },
    body: new URLSearchParams(fields),
  });
}

async function control(c: SmsCatcher, path: string, body?: unknown): Promise<Response> {
  return await fetch(`${c.url}/__catcher/${path}`, {
    method: body === undefined && path === "messages" ? "GET" : "POST",
    // Leaves no keep-alive connection for create() to reuse (see there).
    headers: { connection: "close" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const SMS = { To: TO, From: FROM, Body: "hello", StatusCallback: "https://cb.example/s" };

Deno.test("a sent message is answered like Twilio and caught for inspection", async () => {
  await withCatcher(async (c) => {
    const res = await create(c, SMS);
    assert.equal(res.status, 201);
    const json = await res.json();
    assert.match(json.sid, /^SM[0-9a-f]{32}$/);
    assert.equal(json.status, "queued");
    assert.equal(json.to, TO);
    assert.equal(json.from, FROM);
    assert.equal(json.body, "hello");
    assert.equal(json.account_sid, c.accountSid);
    assert.equal(json.uri, `/2010-04-01/Accounts/${c.accountSid}/Messages/${json.sid}.json`);
    assert.match(json.date_created, /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$/);
    const [caught] = c.messages();
    assert.deepEqual(
      { sid: caught.sid, to: caught.to, from: caught.from, body: caught.body },
      { sid: json.sid, to: TO, from: FROM, body: "hello" },
    );
    assert.equal(caught.statusCallback, SMS.StatusCallback);
    assert.equal(c.requests(), 1);
  });
});

Deno.test("the catcher's default account cannot be mistaken for a real Twilio account", () => {
  assert.doesNotMatch(DEFAULT_CATCHER_ACCOUNT_SID, /^AC[0-9a-f]{32}$/i);
});

Deno.test("sends with bad credentials or missing fields get Twilio's errors", async () => {
  await withCatcher(async (c) => {
    const expectError = async (res: Response, status: number, code: number) => {
      assert.equal(res.status, status);
      const json = await res.json();
      assert.equal(json.code, code);
      assert.equal(json.status, status);
      assert.equal(json.more_info, `https://www.twilio.com/docs/errors/${code}`);
      assert.equal(typeof json.message, "string");
    };
    await expectError(await create(c, SMS, `${c.accountSid}:wrong`), 401, 20003);
    const { To: _to, ...noTo } = SMS;
    await expectError(await create(c, noTo), 400, 21604);
    const { Body: _body, ...noBody } = SMS;
    await expectError(await create(c, noBody), 400, 21602);
    const { From: _from, ...noSender } = SMS;
    await expectError(await create(c, noSender), 400, 21603);
    await expectError(await create(c, { ...SMS, To: "12015550123" }), 400, 21211);
    assert.equal(c.messages().length, 0);
    assert.equal(c.requests(), 5);
  });
});

Deno.test("an inbound SMS is posted with Twilio's fields and a valid signature", async () => {
  await withReceiver(async (url, received) => {
    await withCatcher(async (c) => {
      const res = await c.postInbound({ url, from: TO, to: FROM, body: "Yes" });
      assert.equal(await res.text(), "<Response/>");
      const [{ form, signature }] = received;
      assert.match(form.get("MessageSid") ?? "", /^SM[0-9a-f]{32}$/);
      assert.equal(form.get("AccountSid"), c.accountSid);
      assert.equal(form.get("From"), TO);
      assert.equal(form.get("To"), FROM);
      assert.equal(form.get("Body"), "Yes");
      assert.equal(form.get("NumMedia"), "0");
      assert.equal(isValidTwilioSignature(c.authToken, url, form, signature), true);
      assert.equal(isValidTwilioSignature("other-token", url, form, signature), false);
    });
  });
});

Deno.test("a status callback carries the message's numbers and error code, validly signed", async () => {
  await withReceiver(async (url, received) => {
    await withCatcher(async (c) => {
      const { sid } = await (await create(c, SMS)).json();
      const res = await c.postStatus({ url, sid, status: "undelivered", errorCode: "30003" });
      await res.body?.cancel();
      const [{ form, signature }] = received;
      assert.deepEqual(
        ["MessageSid", "MessageStatus", "ErrorCode", "AccountSid", "From", "To", "ApiVersion"]
          .map((name) => form.get(name)),
        [sid, "undelivered", "30003", c.accountSid, FROM, TO, "2010-04-01"],
      );
      assert.equal(isValidTwilioSignature(c.authToken, url, form, signature), true);
      assert.equal(c.messages()[0].status, "undelivered");
    });
  });
});

Deno.test("another process can drive the catcher through its HTTP control API", async () => {
  await withReceiver(async (url, received) => {
    await withCatcher(async (c) => {
      const set = await control(c, "behaviour", { failNext: [{ httpStatus: 503 }] });
      assert.deepEqual(await set.json(), {
        latencyMs: 0,
        failNext: [{ httpStatus: 503 }],
        lengthRequired: false,
      });
      const refused = await create(c, SMS);
      assert.equal(refused.status, 503);
      assert.equal(typeof (await refused.json()).message, "string");
      const { sid } = await (await create(c, SMS)).json();

      const listed = await (await control(c, "messages")).json();
      assert.deepEqual(listed.map((m: { sid: string }) => m.sid), [sid]);

      const inbound = await control(c, "inbound", { url, from: TO, to: FROM, body: "STOP" });
      assert.deepEqual(await inbound.json(), { status: 200, body: "<Response/>" });
      const status = await control(c, "status", { url, sid, status: "delivered" });
      assert.deepEqual(await status.json(), { status: 200, body: "<Response/>" });
      assert.deepEqual(received.map((r) => r.form.get("Body") ?? r.form.get("MessageStatus")), [
        "STOP",
        "delivered",
      ]);
      for (const r of received) {
        assert.equal(isValidTwilioSignature(c.authToken, url, r.form, r.signature), true);
      }

      const reset = await control(c, "reset", {});
      assert.equal(reset.status, 200);
      await reset.body?.cancel();
      assert.deepEqual(c.messages(), []);
      assert.equal(c.requests(), 0);
    });
  });
});

Deno.test("the control API refuses malformed instructions", async () => {
  await withCatcher(async (c) => {
    const bad = await control(c, "behaviour", { latencyMs: -1 });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    const notJson = await fetch(`${c.url}/__catcher/behaviour`, { method: "POST", body: "{" });
    assert.equal(notJson.status, 400);
    await notJson.body?.cancel();
    const noUrl = await control(c, "inbound", { from: TO, to: FROM, body: "x" });
    assert.equal(noUrl.status, 400);
    await noUrl.body?.cancel();
  });
});

Deno.test("hundreds of concurrent sends are all caught, each with its own SID", async () => {
  await withCatcher(async (c) => {
    const answers = await Promise.all(
      Array.from({ length: 500 }, async (_, i) => {
        const res = await create(c, { ...SMS, Body: `message ${i}` });
        return { status: res.status, sid: (await res.json()).sid as string };
      }),
    );
    assert.ok(answers.every((a) => a.status === 201));
    assert.equal(new Set(answers.map((a) => a.sid)).size, 500);
    assert.equal(c.messages().length, 500);
    assert.equal(c.requests(), 500);
  });
});

Deno.test("stopping the catcher ends a send it accepted but never answered", async () => {
  let caught!: () => void;
  const accepted = new Promise<void>((resolve) => (caught = resolve));
  const catcher = await startSmsCatcher({
    port: 0,
    log: (line) => line.startsWith("caught") && caught(),
  });
  catcher.setBehaviour({ failNext: [{ httpStatus: 201, acceptThenHang: true }] });
  const sending = create(catcher, SMS).then(() => "answered", () => "connection closed");
  await accepted;
  await catcher.stop();
  assert.equal(await sending, "connection closed");
  assert.equal(catcher.messages().length, 1);
});

function list(c: SmsCatcher, query: string, auth = `${c.accountSid}:${c.authToken}`) {
  return fetch(`${c.url}/2010-04-01/Accounts/${c.accountSid}/Messages.json?${query}`, {
    headers: { authorization: `Basic ${btoa(auth)}`, connection: "close" },
  });
}

async function listJson(c: SmsCatcher, query: string) {
  const res = await list(c, query);
  assert.equal(res.status, 200);
  return await res.json();
}

async function sendEach(c: SmsCatcher, messages: Record<string, string>[]): Promise<string[]> {
  const sids: string[] = [];
  for (const fields of messages) {
    const res = await create(c, fields);
    assert.equal(res.status, 201);
    sids.push((await res.json()).sid);
  }
  return sids;
}

const OTHER = "+12015550124";
const today = () => new Date().toISOString().slice(0, 10);
const dayOffset = (days: number) =>
  new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);

Deno.test("the Messages list filters by To, From and DateSent, newest first, in Twilio's shape", async () => {
  await withCatcher(async (c) => {
    const [first, second, third] = await sendEach(c, [
      { ...SMS, Body: "one" },
      { ...SMS, Body: "two", To: OTHER },
      { ...SMS, Body: "three", From: "+12015550101" },
    ]);
    const all = await listJson(c, "");
    assert.deepEqual(all.messages.map((m: { sid: string }) => m.sid), [third, second, first]);
    const [m] = (await listJson(c, `To=${encodeURIComponent(OTHER)}`)).messages;
    assert.equal(m.sid, second);
    assert.equal(m.body, "two");
    assert.equal(m.to, OTHER);
    assert.equal(m.from, FROM);
    assert.equal(m.status, "queued");
    assert.equal(m.error_code, null);
    assert.equal(m.direction, "outbound-api");
    assert.match(m.date_created, /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$/);
    assert.match(m.date_sent, /\+0000$/);
    const fromOther = await listJson(c, `From=${encodeURIComponent("+12015550101")}`);
    assert.deepEqual(fromOther.messages.map((x: { sid: string }) => x.sid), [third]);

    // DateSent>=YYYY-MM-DD and DateSent<=YYYY-MM-DD, both inclusive, as Twilio's docs put them.
    const window = (q: Record<string, string>) =>
      listJson(c, new URLSearchParams(q).toString()).then((j) => j.messages.length);
    assert.equal(await window({ "DateSent>": today(), "DateSent<": today() }), 3);
    assert.equal(await window({ DateSent: today() }), 3);
    assert.equal(await window({ "DateSent>": dayOffset(1) }), 0);
    assert.equal(await window({ "DateSent<": dayOffset(-1) }), 0);
    // Written by hand, unencoded, the way Twilio's docs show it.
    assert.equal((await listJson(c, `DateSent>=${today()}`)).messages.length, 3);
    assert.equal((await listJson(c, `DateSent<=${dayOffset(-1)}`)).messages.length, 0);
  });
});

Deno.test("the Messages list pages with next_page_uri until the last page", async () => {
  await withCatcher(async (c) => {
    const sids = await sendEach(c, ["a", "b", "c", "d", "e"].map((Body) => ({ ...SMS, Body })));
    const seen: string[] = [];
    let uri: string | null = `/2010-04-01/Accounts/${c.accountSid}/Messages.json?To=${
      encodeURIComponent(TO)
    }&PageSize=2`;
    const pages: { page: number; page_size: number; start: number; end: number }[] = [];
    while (uri) {
      const res: Response = await fetch(`${c.url}${uri}`, {
        headers: { authorization: `Basic ${btoa(`${c.accountSid}:${c.authToken}`)}` },
      });
      const json: {
        page: number;
        page_size: number;
        start: number;
        end: number;
        messages: { sid: string }[];
        next_page_uri: string | null;
      } = await res.json();
      pages.push({ page: json.page, page_size: json.page_size, start: json.start, end: json.end });
      seen.push(...json.messages.map((m) => m.sid));
      uri = json.next_page_uri;
      if (uri) assert.match(uri, /To=%2B12015550123.*PageSize=2.*PageToken=PASM/);
    }
    assert.deepEqual(seen, [...sids].reverse());
    assert.deepEqual(pages, [
      { page: 0, page_size: 2, start: 0, end: 1 },
      { page: 1, page_size: 2, start: 2, end: 3 },
      { page: 2, page_size: 2, start: 4, end: 4 },
    ]);
  });
});

Deno.test("the Messages list refuses bad credentials, dates and page sizes like Twilio", async () => {
  await withCatcher(async (c) => {
    const wrong = await list(c, "", `${c.accountSid}:wrong`);
    assert.equal(wrong.status, 401);
    assert.equal((await wrong.json()).code, 20003);
    for (const query of ["DateSent>=yesterday", "PageSize=0", "PageSize=1001", "PageToken=x"]) {
      const res = await list(c, query);
      assert.equal(res.status, 400, query);
      assert.equal((await res.json()).code, 20001, query);
    }
  });
});

Deno.test("a connection dropped before creating records nothing; after creating, the message", async () => {
  await withCatcher(async (c) => {
    const attempt = () => create(c, SMS).then(() => "answered", () => "connection dropped");
    await control(c, "behaviour", {
      failNext: [{ dropConnection: true }, { dropConnection: true, afterCreate: true }],
    }).then((r) => r.body?.cancel());
    assert.equal(await attempt(), "connection dropped");
    assert.equal(c.messages().length, 0);
    assert.equal(await attempt(), "connection dropped");
    assert.equal(c.messages().length, 1);
    assert.equal((await listJson(c, "")).messages.length, 1);
  });
});

Deno.test("a 500, 502 or 504 after creating: the error answer, and the message exists", async () => {
  await withCatcher(async (c) => {
    for (const httpStatus of [500, 502, 504]) {
      const set = await control(c, "behaviour", { failNext: [{ httpStatus, afterCreate: true }] });
      await set.body?.cancel();
      const res = await create(c, { ...SMS, Body: `after ${httpStatus}` });
      assert.equal(res.status, httpStatus);
      assert.equal((await res.json()).status, httpStatus);
    }
    assert.deepEqual(c.messages().map((m) => m.body), ["after 500", "after 502", "after 504"]);
    // Before creating (the default), the same answer leaves nothing behind.
    c.setBehaviour({ failNext: [{ httpStatus: 500 }] });
    assert.equal(await create(c, SMS).then((r) => r.body?.cancel().then(() => r.status)), 500);
    assert.equal(c.messages().length, 3);
  });
});

Deno.test("the control API refuses a failure that says neither a status nor a drop", async () => {
  await withCatcher(async (c) => {
    for (const failure of [{ afterCreate: true }, { httpStatus: 500, unknownOption: true }]) {
      const res = await control(c, "behaviour", { failNext: [failure] });
      assert.equal(res.status, 400, JSON.stringify(failure));
      await res.body?.cancel();
    }
  });
});

Deno.test("a failure meant for one number is passed by sends to others", async () => {
  await withCatcher(async (c) => {
    c.setBehaviour({ failNext: [{ httpStatus: 429, code: 20429, to: OTHER }] });
    const mine = await create(c, SMS);
    assert.equal(mine.status, 201);
    await mine.body?.cancel();
    const theirs = await create(c, { ...SMS, To: OTHER });
    assert.equal(theirs.status, 429);
    await theirs.body?.cancel();
    const again = await create(c, { ...SMS, To: OTHER });
    assert.equal(again.status, 201, "taken once");
    await again.body?.cancel();
  });
});
