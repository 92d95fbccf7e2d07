import assert from "node:assert/strict";
import { type SmsCatcher, startSmsCatcher } from "../../../scripts/local/sms_catcher.ts";
import {
  createTwilioHttp,
  DEFAULT_TWILIO_BASE_URL,
  DEFAULT_TWILIO_TIMEOUT_MS,
  parseTwilioForm,
  type SendOutcome,
  sendSms,
  type TwilioConfig,
  twilioConfigFromEnv,
} from "../../../shared/twilio/client.ts";

const FROM = "+12015550100";
const TO = "+12015550123";
const SMS = { to: TO, body: "Your 3pm call is confirmed.", statusCallback: "https://cb.example/s" };

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

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function expectKind<K extends SendOutcome["kind"]>(
  outcome: SendOutcome,
  kind: K,
): Extract<SendOutcome, { kind: K }> {
  assert.equal(outcome.kind, kind, JSON.stringify(outcome));
  return outcome as Extract<SendOutcome, { kind: K }>;
}

const fakeFetch = (answer: () => Promise<Response>) => ({
  fetch: (() => answer()) as typeof fetch,
});

Deno.test("a message Twilio accepts comes back with its SID and queued status", async () => {
  await withCatcher(async (catcher, cfg) => {
    const outcome = expectKind(await sendSms(cfg, SMS, { fetch }), "accepted");
    assert.match(outcome.sid, /^SM[0-9a-f]{32}$/);
    assert.equal(outcome.status, "queued");
    const [caught] = catcher.messages();
    assert.equal(caught.sid, outcome.sid);
    assert.equal(caught.to, TO);
    assert.equal(caught.from, FROM);
    assert.equal(caught.body, SMS.body);
    assert.equal(caught.statusCallback, SMS.statusCallback);
  });
});

Deno.test("a message sent through a Messaging Service is accepted without a From", async () => {
  await withCatcher(async (catcher, cfg) => {
    const { from: _, ...rest } = cfg;
    const outcome = await sendSms({ ...rest, messagingServiceSid: "MG_local" }, SMS, { fetch });
    assert.equal(expectKind(outcome, "accepted").status, "accepted");
    assert.equal(catcher.messages()[0].from, null);
    assert.equal(catcher.messages()[0].messagingServiceSid, "MG_local");
  });
});

Deno.test("Twilio rate limiting (429) is retried later", async () => {
  await withCatcher(async (catcher, cfg) => {
    catcher.setBehaviour({ failNext: [{ httpStatus: 429 }] });
    assert.deepEqual(await sendSms(cfg, SMS, { fetch }), {
      kind: "retry",
      httpStatus: 429,
      code: 20429,
      message: "Too Many Requests",
    });
    assert.equal(catcher.messages().length, 0);
    assert.equal((await sendSms(cfg, SMS, { fetch })).kind, "accepted");
  });
});

Deno.test("Twilio unavailable (503) is retried later: the message was not created", async () => {
  await withCatcher(async (catcher, cfg) => {
    catcher.setBehaviour({ failNext: [{ httpStatus: 503, code: 20503, message: "Unavailable" }] });
    assert.deepEqual(await sendSms(cfg, SMS, { fetch }), {
      kind: "retry",
      httpStatus: 503,
      code: 20503,
      message: "Unavailable",
    });
    assert.equal(catcher.messages().length, 0);
  });
});

for (const httpStatus of [500, 502, 504]) {
  Deno.test(`a Twilio ${httpStatus} is unknown, never retried: it may have created the message`, async () => {
    await withCatcher(async (catcher, cfg) => {
      catcher.setBehaviour({ failNext: [{ httpStatus, afterCreate: true }] });
      const outcome = expectKind(await sendSms(cfg, SMS, { fetch }), "unknown");
      assert.match(outcome.message, new RegExp(`^HTTP ${httpStatus}: `));
      // Why it must not be retried: Twilio had already created the message.
      assert.equal(catcher.messages().length, 1);
    });
  });
}

Deno.test("an unsubscribed recipient (21610) is rejected and marked opted out", async () => {
  await withCatcher(async (catcher, cfg) => {
    const message = "Attempt to send to unsubscribed recipient";
    catcher.setBehaviour({ failNext: [{ httpStatus: 400, code: 21610, message }] });
    assert.deepEqual(await sendSms(cfg, SMS, { fetch }), {
      kind: "rejected",
      httpStatus: 400,
      code: 21610,
      message,
      optedOut: true,
    });
  });
});

Deno.test("an invalid number is rejected, not opted out, and the error hides the number", async () => {
  await withCatcher(async (_catcher, cfg) => {
    // One digit too many for E.164.
    const sent = await sendSms(cfg, { ...SMS, to: "+1201555012300000" }, { fetch });
    const outcome = expectKind(sent, "rejected");
    assert.equal(outcome.code, 21211);
    assert.equal(outcome.optedOut, false);
    assert.doesNotMatch(outcome.message, /5550123/);
  });
});

Deno.test("wrong credentials are retried later: the message was not sent", async () => {
  await withCatcher(async (_catcher, cfg) => {
    const outcome = await sendSms({ ...cfg, authToken: "wrong" }, SMS, { fetch });
    assert.deepEqual(outcome, {
      kind: "retry",
      httpStatus: 401,
      code: 20003,
      message: "Authenticate",
    });
  });
});

Deno.test("Twilio unreachable (connection refused) is retried later", async () => {
  const cfg: TwilioConfig = {
    accountSid: "AC_local_catcher",
    authToken: "t",
    from: FROM,
    baseUrl: `http://127.0.0.1:${closedPort()}`,
    timeoutMs: 5_000,
  };
  const outcome = expectKind(await sendSms(cfg, SMS, { fetch }), "retry");
  assert.equal(outcome.httpStatus, null);
  assert.match(outcome.message, /Connect/);
});

Deno.test("no answer within the timeout is unknown, never retried", async () => {
  await withCatcher(async (catcher, cfg) => {
    catcher.setBehaviour({ latencyMs: 60_000 });
    const outcome = await sendSms({ ...cfg, timeoutMs: 50 }, SMS, { fetch });
    assert.deepEqual(outcome, { kind: "unknown", message: "no answer from Twilio within 50 ms" });
    // Why it must not be retried: Twilio had already taken the message.
    assert.equal(catcher.messages().length, 1);
  });
});

Deno.test("a connection dropped after the request left is unknown", async () => {
  await withCatcher(async (catcher, cfg) => {
    catcher.setBehaviour({ failNext: [{ dropConnection: true }] });
    assert.equal((await sendSms(cfg, SMS, { fetch })).kind, "unknown");
    assert.equal(catcher.requests(), 1);
    assert.equal(catcher.messages().length, 0);
    // The same answer when Twilio had created the message: the client cannot tell the two apart.
    catcher.setBehaviour({ failNext: [{ dropConnection: true, afterCreate: true }] });
    assert.equal((await sendSms(cfg, SMS, { fetch })).kind, "unknown");
    assert.equal(catcher.messages().length, 1);
  });
});

Deno.test("a drop on a reused connection after Twilio created the message is sent once", async () => {
  await withCatcher(async (catcher, cfg) => {
    // Earlier sends leave a keep-alive connection for the next one to reuse.
    assert.equal((await sendSms(cfg, SMS, { fetch })).kind, "accepted");
    catcher.setBehaviour({ failNext: [{ dropConnection: true, afterCreate: true }] });
    assert.equal((await sendSms(cfg, SMS, { fetch })).kind, "unknown");
    assert.equal(catcher.requests(), 2, "the request was not sent again behind our back");
    assert.equal(catcher.messages().length, 2);
  });
});

Deno.test("a connection left idle is not reused, so a server's idle close cannot take a text", async () => {
  await withCatcher(async (catcher, cfg) => {
    const http = createTwilioHttp(100);
    try {
      assert.equal((await sendSms(cfg, SMS, http)).kind, "accepted");
      assert.equal((await sendSms(cfg, SMS, http)).kind, "accepted");
      assert.equal(catcher.connections(), 1, "texts one after another share a connection");
      // Idle four times as long as the limit: the connection is dropped, not reused.
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal((await sendSms(cfg, SMS, http)).kind, "accepted");
      assert.equal(catcher.connections(), 2);
    } finally {
      http.close();
    }
  });
});

Deno.test("an edge that refuses a streamed body (411) gets the text once, with a fixed length", async () => {
  await withCatcher(async (catcher, cfg) => {
    catcher.setBehaviour({ lengthRequired: true });
    assert.equal((await sendSms(cfg, SMS, { fetch })).kind, "accepted");
    assert.equal(catcher.requests(), 2, "refused unread, then sent again with a length");
    assert.equal(catcher.messages().length, 1);
    // Later texts to that API go with a fixed length at once.
    assert.equal((await sendSms(cfg, SMS, { fetch })).kind, "accepted");
    assert.equal(catcher.requests(), 3);
    assert.equal(catcher.messages().length, 2);
  });
});

Deno.test("Twilio accepting but never answering is unknown", async () => {
  await withCatcher(async (catcher, cfg) => {
    catcher.setBehaviour({ failNext: [{ httpStatus: 201, acceptThenHang: true }] });
    const outcome = await sendSms({ ...cfg, timeoutMs: 100 }, SMS, { fetch });
    assert.equal(outcome.kind, "unknown");
    assert.equal(catcher.messages().length, 1);
  });
});

Deno.test("a success without a readable SID is unknown: a retry could send it twice", async () => {
  const cfg: TwilioConfig = {
    accountSid: "AC_x",
    authToken: "t",
    from: FROM,
    baseUrl: "http://twilio.invalid",
    timeoutMs: 1_000,
  };
  const garbled = fakeFetch(() =>
    Promise.resolve(new Response("<html>ok</html>", { status: 201 }))
  );
  assert.equal((await sendSms(cfg, SMS, garbled)).kind, "unknown");
  const noSid = fakeFetch(() =>
    Promise.resolve(Response.json({ status: "queued" }, { status: 201 }))
  );
  assert.equal((await sendSms(cfg, SMS, noSid)).kind, "unknown");
});

Deno.test("a network error that may have come after sending is unknown", async () => {
  const cfg: TwilioConfig = {
    accountSid: "AC_x",
    authToken: "t",
    from: FROM,
    baseUrl: "http://twilio.invalid",
    timeoutMs: 1_000,
  };
  const reset = fakeFetch(() =>
    Promise.reject(new TypeError("fetch failed", { cause: new Error("connection reset by peer") }))
  );
  assert.equal((await sendSms(cfg, SMS, reset)).kind, "unknown");
  const refused = fakeFetch(() =>
    Promise.reject(
      new TypeError("fetch failed", {
        cause: Object.assign(new Error("connect failed"), { code: "ECONNREFUSED" }),
      }),
    )
  );
  assert.equal((await sendSms(cfg, SMS, refused)).kind, "retry");
});

Deno.test("the request is form-encoded with Basic auth, as Twilio expects", async () => {
  let seen: Request | undefined;
  const capture = {
    fetch: ((input: string, init: RequestInit) => {
      seen = new Request(input, init);
      return Promise.resolve(
        Response.json({ sid: "SM0123456789abcdef0123456789abcdef", status: "queued" }, {
          status: 201,
        }),
      );
    }) as typeof fetch,
  };
  const cfg: TwilioConfig = {
    accountSid: "AC_x",
    authToken: "tök",
    from: FROM,
    messagingServiceSid: "MG_y",
    baseUrl: "https://api.twilio.example",
    timeoutMs: 1_000,
  };
  await sendSms(cfg, SMS, capture);
  assert.ok(seen);
  assert.equal(seen.method, "POST");
  assert.equal(seen.url, "https://api.twilio.example/2010-04-01/Accounts/AC_x/Messages.json");
  assert.match(seen.headers.get("content-type") ?? "", /^application\/x-www-form-urlencoded/);
  const [user, pass] = new TextDecoder()
    .decode(
      Uint8Array.from(
        atob((seen.headers.get("authorization") ?? "").replace(/^Basic /, "")),
        (c) => c.charCodeAt(0),
      ),
    )
    .split(":");
  assert.deepEqual([user, pass], ["AC_x", "tök"]);
  assert.deepEqual(parseTwilioForm(await seen.text()), {
    To: TO,
    Body: SMS.body,
    StatusCallback: SMS.statusCallback,
    From: FROM,
    MessagingServiceSid: "MG_y",
  });
});

Deno.test("no Twilio credentials in the environment means SMS is off", () => {
  assert.equal(twilioConfigFromEnv({}), null);
  assert.equal(twilioConfigFromEnv({ TWILIO_ACCOUNT_SID: " ", TWILIO_AUTH_TOKEN: "" }), null);
});

Deno.test("full Twilio settings in the environment give a config", () => {
  assert.deepEqual(
    twilioConfigFromEnv({
      TWILIO_ACCOUNT_SID: "AC0123456789abcdef0123456789abcdef",
      TWILIO_AUTH_TOKEN: "secret",
      TWILIO_FROM_NUMBER: FROM,
    }),
    {
      accountSid: "AC0123456789abcdef0123456789abcdef",
      authToken: "secret",
      from: FROM,
      baseUrl: DEFAULT_TWILIO_BASE_URL,
      timeoutMs: DEFAULT_TWILIO_TIMEOUT_MS,
    },
  );
  assert.deepEqual(
    twilioConfigFromEnv({
      TWILIO_ACCOUNT_SID: "AC_local_catcher",
      TWILIO_AUTH_TOKEN: "local-catcher-auth-token",
      TWILIO_MESSAGING_SERVICE_SID: "MG_local",
      TWILIO_API_BASE_URL: "http://127.0.0.1:54330/",
    }),
    {
      accountSid: "AC_local_catcher",
      authToken: "local-catcher-auth-token",
      messagingServiceSid: "MG_local",
      baseUrl: "http://127.0.0.1:54330",
      timeoutMs: DEFAULT_TWILIO_TIMEOUT_MS,
    },
  );
});

Deno.test("half-configured Twilio settings fail loudly, naming what is missing", () => {
  const throwsAbout = (env: Record<string, string>, pattern: RegExp) =>
    assert.throws(() => twilioConfigFromEnv(env), pattern);
  throwsAbout({ TWILIO_ACCOUNT_SID: "AC_x", TWILIO_FROM_NUMBER: FROM }, /TWILIO_AUTH_TOKEN/);
  throwsAbout({ TWILIO_AUTH_TOKEN: "secret", TWILIO_FROM_NUMBER: FROM }, /TWILIO_ACCOUNT_SID/);
  throwsAbout(
    { TWILIO_ACCOUNT_SID: "AC_x", TWILIO_AUTH_TOKEN: "secret" },
    /TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID/,
  );
  throwsAbout(
    { TWILIO_ACCOUNT_SID: "SK_x", TWILIO_AUTH_TOKEN: "secret", TWILIO_FROM_NUMBER: FROM },
    /TWILIO_ACCOUNT_SID/,
  );
  throwsAbout(
    {
      TWILIO_ACCOUNT_SID: "AC_x",
      TWILIO_AUTH_TOKEN: "secret",
      TWILIO_FROM_NUMBER: FROM,
      TWILIO_API_BASE_URL: "ftp://twilio.example",
    },
    /TWILIO_API_BASE_URL/,
  );
});
