// A local stand-in for Twilio's Messages API, like Supabase's local mail catcher: it records what
// would have been sent, answers in Twilio's wire format, fails on request, and posts webhooks
// (inbound SMS, status callbacks) signed the way Twilio signs them.
//
// node:http rather than Deno.serve because only it can drop a connection mid-request, which is
// how "the request left but no answer came back" is simulated.
import http from "node:http";
import { parseArgs } from "node:util";
import { z } from "zod";
import { maskPhone } from "../../shared/log.ts";
import { timingSafeEqual } from "../../shared/secrets.ts";
import { twilioSignature } from "../../shared/twilio/signature.ts";

export const DEFAULT_CATCHER_PORT = 54330;
// Deliberately not shaped like a real SID (AC + 32 hex) so it can never be mistaken for one.
export const DEFAULT_CATCHER_ACCOUNT_SID = "AC_local_catcher";
export const DEFAULT_CATCHER_AUTH_TOKEN = "local-catcher-auth-token";

const API_VERSION = "2010-04-01";
const MESSAGES_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/;
const MAX_BODY_BYTES = 64 * 1024;

export interface CaughtMessage {
  sid: string;
  accountSid: string;
  to: string;
  from: string | null;
  messagingServiceSid: string | null;
  body: string;
  statusCallback: string | null;
  /** "queued" (or "accepted" via a Messaging Service), then whatever postStatus last sent. */
  status: string;
  createdAt: string;
}

export interface CatcherFailure {
  httpStatus: number;
  code?: number;
  message?: string;
  /** Close the connection without answering; the message is not recorded. */
  dropConnection?: boolean;
  /** Record the message as sent, then never answer (until stop). */
  acceptThenHang?: boolean;
}

export interface CatcherBehaviour {
  /** Delay before every answer of the Twilio API (not the /__catcher control API). */
  latencyMs: number;
  /** Canned failures, consumed one per authenticated create request. */
  failNext: CatcherFailure[];
}

export interface InboundSms {
  url: string;
  from: string;
  to: string;
  body: string;
  sid?: string;
}

export interface StatusUpdate {
  url: string;
  sid: string;
  status: string;
  errorCode?: string;
}

export interface SmsCatcher {
  url: string;
  accountSid: string;
  authToken: string;
  messages(): CaughtMessage[];
  /** Create requests received, whatever their outcome. */
  requests(): number;
  /** Sets the given fields; a given failNext replaces the queue. */
  setBehaviour(b: Partial<CatcherBehaviour>): void;
  postInbound(opts: InboundSms): Promise<Response>;
  postStatus(opts: StatusUpdate): Promise<Response>;
  stop(): Promise<void>;
}

export interface CatcherOptions {
  port?: number;
  accountSid?: string;
  authToken?: string;
  log?: (line: string) => void;
}

const failureSchema = z.object({
  httpStatus: z.number().int().min(100).max(599),
  code: z.number().int().optional(),
  message: z.string().optional(),
  dropConnection: z.boolean().optional(),
  acceptThenHang: z.boolean().optional(),
});
const behaviourSchema = z.strictObject({
  latencyMs: z.number().int().min(0).optional(),
  failNext: z.array(failureSchema).optional(),
});
const inboundSchema = z.strictObject({
  url: z.url(),
  from: z.string().min(1),
  to: z.string().min(1),
  body: z.string(),
  sid: z.string().min(1).optional(),
});
const statusSchema = z.strictObject({
  url: z.url(),
  sid: z.string().min(1),
  status: z.string().min(1),
  errorCode: z.string().min(1).optional(),
});

const E164 = /^\+[1-9]\d{1,14}$/;
// E.164, a short code, or an alphanumeric sender ID.
const SENDER = /^(\+[1-9]\d{1,14}|\d{3,8}|[A-Za-z0-9 ]{1,11})$/;

// Twilio's default error codes for the statuses a test is likely to inject.
const DEFAULT_CODES: Record<number, number> = { 401: 20003, 404: 20404, 429: 20429, 500: 20500 };

function newSid(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "SM" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// RFC 2822 in GMT, as Twilio writes date_created.
const rfc2822 = (d: Date) => d.toUTCString().replace(/GMT$/, "+0000");

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers = {}): void {
  const bytes = new TextEncoder().encode(JSON.stringify(body));
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": bytes.byteLength,
    ...headers,
  });
  res.end(bytes);
}

function twilioErrorBody(status: number, code: number | null, message: string) {
  return {
    code,
    message,
    more_info: code === null ? null : `https://www.twilio.com/docs/errors/${code}`,
    status,
  };
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const decoder = new TextDecoder();
  let size = 0;
  let text = "";
  for await (const chunk of req as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) throw new Error(`body exceeds ${MAX_BODY_BYTES} bytes`);
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

function basicCredentials(header: string | undefined): [string, string] | null {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? "");
  if (!match) return null;
  let decoded: string;
  try {
    decoded = new TextDecoder().decode(Uint8Array.from(atob(match[1]), (c) => c.charCodeAt(0)));
  } catch {
    return null;
  }
  const colon = decoded.indexOf(":");
  return colon < 0 ? null : [decoded.slice(0, colon), decoded.slice(colon + 1)];
}

function validationError(form: URLSearchParams): [number, string] | null {
  const to = form.get("To");
  const from = form.get("From");
  if (!to) return [21604, "A 'To' phone number is required."];
  if (!E164.test(to)) return [21211, `The 'To' number ${to} is not a valid phone number.`];
  if (!from && !form.get("MessagingServiceSid")) {
    return [21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."];
  }
  if (from && !SENDER.test(from)) {
    return [
      21606,
      `The From phone number ${from} is not a valid, SMS-capable inbound phone number.`,
    ];
  }
  const body = form.get("Body") ?? "";
  if (!body && !form.get("MediaUrl")) return [21602, "Message body is required."];
  if (body.length > 1600) {
    return [21617, "The concatenated message body exceeds the 1600 character limit."];
  }
  return null;
}

export async function startSmsCatcher(opts: CatcherOptions = {}): Promise<SmsCatcher> {
  const accountSid = opts.accountSid ?? DEFAULT_CATCHER_ACCOUNT_SID;
  const authToken = opts.authToken ?? DEFAULT_CATCHER_AUTH_TOKEN;
  const log = opts.log;
  let caught: CaughtMessage[] = [];
  let requestCount = 0;
  let behaviour: CatcherBehaviour = { latencyMs: 0, failNext: [] };
  // Answers not yet given (delayed or hung), each with the way to abandon it on stop.
  const pending = new Set<() => void>();

  // Runs `answer` after the configured latency, unless the client or stop() gets there first.
  function later(res: http.ServerResponse, answer: () => void): void {
    if (behaviour.latencyMs <= 0) return answer();
    const abandon = () => {
      clearTimeout(timer);
      pending.delete(abandon);
    };
    const timer = setTimeout(() => {
      pending.delete(abandon);
      answer();
    }, behaviour.latencyMs);
    pending.add(abandon);
    res.on("close", abandon);
  }

  function hang(res: http.ServerResponse): void {
    const abandon = () => {
      pending.delete(abandon);
      res.destroy();
    };
    pending.add(abandon);
    res.on("close", () => pending.delete(abandon));
  }

  function fail(req: http.IncomingMessage, res: http.ServerResponse, f: CatcherFailure): void {
    log?.(`failing a create request: ${f.dropConnection ? "dropped connection" : f.httpStatus}`);
    later(res, () => {
      if (f.dropConnection) {
        req.socket.destroy();
        return;
      }
      const code = f.code ?? DEFAULT_CODES[f.httpStatus] ?? null;
      const message = f.message ?? http.STATUS_CODES[f.httpStatus] ?? "Error";
      sendJson(res, f.httpStatus, twilioErrorBody(f.httpStatus, code, message));
    });
  }

  function createMessage(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    pathSid: string,
    text: string,
  ): void {
    requestCount++;
    const credentials = basicCredentials(req.headers.authorization);
    const authentic = credentials !== null &&
      timingSafeEqual(credentials[0], accountSid) &&
      timingSafeEqual(credentials[1], authToken) &&
      pathSid === accountSid;
    if (!authentic) {
      return later(res, () =>
        sendJson(res, 401, twilioErrorBody(401, 20003, "Authenticate"), {
          "www-authenticate": 'Basic realm="Twilio API"',
        }));
    }
    const failure = behaviour.failNext.shift();
    if (failure && !failure.acceptThenHang) return fail(req, res, failure);

    const form = new URLSearchParams(text);
    const invalid = validationError(form);
    if (invalid) {
      return later(res, () => sendJson(res, 400, twilioErrorBody(400, invalid[0], invalid[1])));
    }
    const now = new Date();
    const messagingServiceSid = form.get("MessagingServiceSid");
    const message: CaughtMessage = {
      sid: newSid(),
      accountSid,
      to: form.get("To")!,
      from: form.get("From"),
      messagingServiceSid,
      body: form.get("Body") ?? "",
      statusCallback: form.get("StatusCallback"),
      // Twilio answers "accepted" when a Messaging Service still has to pick the sender.
      status: messagingServiceSid ? "accepted" : "queued",
      createdAt: now.toISOString(),
    };
    caught.push(message);
    log?.(maskPhone(`caught ${message.sid} to ${message.to}: ${message.body.length} chars`));
    if (failure?.acceptThenHang) return hang(res);

    const uri = `/${API_VERSION}/Accounts/${accountSid}/Messages/${message.sid}`;
    later(res, () =>
      sendJson(res, 201, {
        account_sid: accountSid,
        api_version: API_VERSION,
        body: message.body,
        date_created: rfc2822(now),
        date_sent: null,
        date_updated: rfc2822(now),
        direction: "outbound-api",
        error_code: null,
        error_message: null,
        from: message.from,
        messaging_service_sid: messagingServiceSid,
        num_media: "0",
        num_segments: "1",
        price: null,
        price_unit: "USD",
        sid: message.sid,
        status: message.status,
        subresource_uris: { media: `${uri}/Media.json` },
        to: message.to,
        uri: `${uri}.json`,
      }));
  }

  async function postWebhook(url: string, fields: Record<string, string>): Promise<Response> {
    const params = new URLSearchParams(fields);
    return await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": await twilioSignature(authToken, url, params),
        "i-twilio-idempotency-token": crypto.randomUUID(),
        "user-agent": "TwilioProxy/1.1",
      },
      body: params,
    });
  }

  function postInbound(o: InboundSms): Promise<Response> {
    const sid = o.sid ?? newSid();
    return postWebhook(o.url, {
      ToCountry: "US",
      SmsMessageSid: sid,
      NumMedia: "0",
      SmsSid: sid,
      SmsStatus: "received",
      Body: o.body,
      To: o.to,
      NumSegments: "1",
      MessageSid: sid,
      AccountSid: accountSid,
      From: o.from,
      ApiVersion: API_VERSION,
    });
  }

  function postStatus(o: StatusUpdate): Promise<Response> {
    const message = caught.find((m) => m.sid === o.sid);
    if (message) message.status = o.status;
    return postWebhook(o.url, {
      MessageSid: o.sid,
      SmsSid: o.sid,
      MessageStatus: o.status,
      SmsStatus: o.status,
      AccountSid: accountSid,
      ApiVersion: API_VERSION,
      ...(message?.from ? { From: message.from } : {}),
      ...(message?.to ? { To: message.to } : {}),
      ...(message?.messagingServiceSid ? { MessagingServiceSid: message.messagingServiceSid } : {}),
      ...(o.errorCode ? { ErrorCode: o.errorCode } : {}),
    });
  }

  function setBehaviour(b: Partial<CatcherBehaviour>): void {
    behaviour = {
      latencyMs: b.latencyMs ?? behaviour.latencyMs,
      failNext: b.failNext ? [...b.failNext] : behaviour.failNext,
    };
  }

  // Relays a webhook for another process and reports what the target answered.
  async function relay(res: http.ServerResponse, post: () => Promise<Response>) {
    try {
      const answer = await post();
      sendJson(res, 200, { status: answer.status, body: await answer.text() });
    } catch (err) {
      sendJson(res, 502, { error: "webhook_failed", message: String(err) });
    }
  }

  async function control(res: http.ServerResponse, method: string, path: string, text: string) {
    const input = () => (text.trim() === "" ? {} : JSON.parse(text));
    const route = `${method} ${path}`;
    if (route === "GET /__catcher/messages") return sendJson(res, 200, caught);
    if (route === "POST /__catcher/reset") {
      caught = [];
      requestCount = 0;
      behaviour = { latencyMs: 0, failNext: [] };
      return sendJson(res, 200, { ok: true });
    }
    if (route === "POST /__catcher/behaviour") {
      setBehaviour(behaviourSchema.parse(input()));
      return sendJson(res, 200, behaviour);
    }
    if (route === "POST /__catcher/inbound") {
      const o = inboundSchema.parse(input());
      return await relay(res, () => postInbound(o));
    }
    if (route === "POST /__catcher/status") {
      const o = statusSchema.parse(input());
      return await relay(res, () => postStatus(o));
    }
    sendJson(res, 404, { error: "not_found", message: `no route ${route}` });
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const text = await readBody(req);
    if (path.startsWith("/__catcher/")) return await control(res, method, path, text);
    const messages = MESSAGES_PATH.exec(path);
    if (!messages) {
      const message = `The requested resource ${path} was not found`;
      return sendJson(res, 404, twilioErrorBody(404, 20404, message));
    }
    if (method !== "POST") {
      return sendJson(res, 405, twilioErrorBody(405, 20004, "Method not allowed"));
    }
    createMessage(req, res, messages[1], text);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (res.headersSent) return res.destroy();
      const invalid = err instanceof z.ZodError || err instanceof SyntaxError;
      sendJson(res, invalid ? 400 : 500, {
        error: invalid ? "invalid_request" : "internal",
        message: err instanceof z.ZodError ? z.prettifyError(err) : String(err),
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  return {
    url: `http://127.0.0.1:${port}`,
    accountSid,
    authToken,
    messages: () => [...caught],
    requests: () => requestCount,
    setBehaviour,
    postInbound,
    postStatus,
    async stop() {
      for (const abandon of [...pending]) abandon();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string" }, quiet: { type: "boolean" } },
  });
  const port = values.port === undefined ? DEFAULT_CATCHER_PORT : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port must be a port number, not ${values.port}`);
    Deno.exit(2);
  }
  const catcher = await startSmsCatcher({
    port,
    log: values.quiet ? undefined : (line) => console.log(line),
  });
  console.log(`SMS catcher listening on ${catcher.url}`);
  console.log(`  TWILIO_API_BASE_URL=${catcher.url}`);
  console.log(`  TWILIO_ACCOUNT_SID=${catcher.accountSid}`);
  console.log(`  TWILIO_AUTH_TOKEN=${catcher.authToken}`);
  console.log(`  messages: GET ${catcher.url}/__catcher/messages`);
}
