// A local stand-in for Twilio's Messages API, like Supabase's local mail catcher: it records what
// would have been sent, lists it back the way Twilio's Messages list does, answers in Twilio's
// wire format, fails on request, and posts webhooks (inbound SMS, status callbacks) signed the way
// Twilio signs them.
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
  /** The last error code postStatus sent, as Twilio's list reports it. */
  errorCode: number | null;
  createdAt: string;
  /** The catcher hands a message on at once, so it is sent when it is created. */
  dateSent: string;
}

export interface CatcherFailure {
  /** The error answer's status; needed unless the connection is dropped or hung. */
  httpStatus?: number;
  code?: number;
  message?: string;
  /** Close the connection without answering. */
  dropConnection?: boolean;
  /**
   * Record the message first, as Twilio would have, then fail as described (an error answer or a
   * dropped connection): the client cannot tell that the message exists.
   */
  afterCreate?: boolean;
  /** Only a request to this number takes the failure; others pass it by. */
  to?: string;
  /** Record the message as sent, then never answer (until stop). */
  acceptThenHang?: boolean;
}

export interface CatcherBehaviour {
  /** Delay before every answer of the Twilio API (not the /__catcher control API). */
  latencyMs: number;
  /** Canned failures, consumed one per authenticated create request. */
  failNext: CatcherFailure[];
  /** Refuse a create request with a streamed (chunked) body with 411, as some edges do. */
  lengthRequired: boolean;
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
  /** Connections clients opened to the catcher. */
  connections(): number;
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

const failureSchema = z
  .strictObject({
    httpStatus: z.number().int().min(100).max(599).optional(),
    code: z.number().int().optional(),
    message: z.string().optional(),
    dropConnection: z.boolean().optional(),
    afterCreate: z.boolean().optional(),
    acceptThenHang: z.boolean().optional(),
    to: z.string().optional(),
  })
  .refine((f) => f.httpStatus !== undefined || f.dropConnection || f.acceptThenHang, {
    message: "httpStatus is required unless dropConnection or acceptThenHang is set",
  });
const behaviourSchema = z.strictObject({
  latencyMs: z.number().int().min(0).optional(),
  failNext: z.array(failureSchema).optional(),
  lengthRequired: z.boolean().optional(),
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

const messagesPath = (accountSid: string) => `/${API_VERSION}/Accounts/${accountSid}/Messages.json`;

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

function newSid(): string {
  let sid = "SM";
  for (const b of crypto.getRandomValues(new Uint8Array(16))) sid += HEX[b];
  return sid;
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

/** A message as Twilio's API writes it, in a create answer or a list page. */
function messageJson(accountSid: string, m: CaughtMessage) {
  const uri = `/${API_VERSION}/Accounts/${accountSid}/Messages/${m.sid}`;
  const created = rfc2822(new Date(m.createdAt));
  return {
    account_sid: accountSid,
    api_version: API_VERSION,
    body: m.body,
    date_created: created,
    date_sent: rfc2822(new Date(m.dateSent)),
    date_updated: created,
    direction: "outbound-api",
    error_code: m.errorCode,
    error_message: null,
    from: m.from,
    messaging_service_sid: m.messagingServiceSid,
    num_media: "0",
    num_segments: "1",
    price: null,
    price_unit: "USD",
    sid: m.sid,
    status: m.status,
    subresource_uris: { media: `${uri}/Media.json` },
    to: m.to,
    uri: `${uri}.json`,
  };
}

// A DateSent filter value: a whole UTC day (YYYY-MM-DD, as Twilio documents) or, as Twilio's
// helper libraries send, an ISO 8601 instant. [from, until) in epoch ms.
function dateRange(value: string): [number, number] | null {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const from = Date.parse(`${value}T00:00:00Z`);
    return Number.isNaN(from) ? null : [from, from + 86_400_000];
  }
  const at = /^\d{4}-\d{2}-\d{2}T/.test(value) ? Date.parse(value) : NaN;
  return Number.isNaN(at) ? null : [at, at + 1];
}

type DateTest = (sentMs: number) => boolean;

// "DateSent" matches within the range, "DateSent>" on or after its start, "DateSent<" on or
// before its end: Twilio's "DateSent>=YYYY-MM-DD" and "DateSent<=YYYY-MM-DD", both inclusive.
const DATE_FILTERS: [string, (r: [number, number]) => DateTest][] = [
  ["DateSent", ([from, until]) => (t) => t >= from && t < until],
  ["DateSent>", ([from]) => (t) => t >= from],
  ["DateSent<", ([, until]) => (t) => t < until],
];

const pageQuerySchema = z.object({
  PageSize: z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(1).max(1000))
    .default(50),
  Page: z.string().regex(/^\d+$/).transform(Number).default(0),
  PageToken: z.string().regex(/^PA(SM|MM)\w+$/).optional(),
});

/** One page of the Messages list for a query, newest first, in Twilio's shape. */
function listPage(all: readonly CaughtMessage[], query: URLSearchParams, path: string):
  | { page: Record<string, unknown>; messages: CaughtMessage[] }
  | { error: string } {
  const paging = pageQuerySchema.safeParse(Object.fromEntries(query));
  if (!paging.success) return { error: `Invalid paging: ${z.prettifyError(paging.error)}` };
  const tests: DateTest[] = [];
  for (const [name, test] of DATE_FILTERS) {
    const value = query.get(name);
    if (value === null) continue;
    const range = dateRange(value);
    if (!range) return { error: `Invalid date value for ${name}: ${value}` };
    tests.push(test(range));
  }
  const to = query.get("To");
  const from = query.get("From");
  const matching = all
    .map((m, i) => ({ m, i }))
    .filter(({ m }) =>
      (to === null || m.to === to) &&
      (from === null || m.from === from) &&
      tests.every((test) => test(Date.parse(m.dateSent)))
    )
    .sort((a, b) => Date.parse(b.m.createdAt) - Date.parse(a.m.createdAt) || b.i - a.i)
    .map(({ m }) => m);

  const { PageSize: size, Page: pageNo, PageToken: token } = paging.data;
  // The token names the last message of the page before, so a page does not shift when new
  // messages arrive between requests; without one, Page counts whole pages.
  let start = pageNo * size;
  if (token !== undefined) {
    const after = matching.findIndex((m) => m.sid === token.slice(2));
    if (after < 0) return { error: `Invalid PageToken: ${token}` };
    start = after + 1;
  }
  const messages = matching.slice(start, start + size);
  const filters = new URLSearchParams(
    [...query].filter(([name]) => !["PageSize", "Page", "PageToken"].includes(name)),
  );
  const uriOf = (page: number, pageToken?: string) => {
    const q = new URLSearchParams(filters);
    q.set("PageSize", String(size));
    q.set("Page", String(page));
    if (pageToken) q.set("PageToken", pageToken);
    return `${path}?${q}`;
  };
  const last = messages.at(-1);
  const hasNext = last !== undefined && start + messages.length < matching.length;
  return {
    messages,
    page: {
      first_page_uri: uriOf(0),
      end: start + Math.max(messages.length - 1, 0),
      previous_page_uri: pageNo > 0 ? uriOf(pageNo - 1) : null,
      uri: uriOf(pageNo, token),
      page_size: size,
      start,
      next_page_uri: hasNext ? uriOf(pageNo + 1, `PA${last.sid}`) : null,
      page: pageNo,
    },
  };
}

// Events rather than the stream's async iterator, which alone was 3% of the catcher's CPU in a
// 20,000-text drain: the catcher shares the machine with what it measures.
function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const decoder = new TextDecoder();
    let size = 0;
    let text = "";
    req.on("data", (chunk: Uint8Array) => {
      size += chunk.byteLength;
      if (size > MAX_BODY_BYTES) {
        reject(new Error(`body exceeds ${MAX_BODY_BYTES} bytes`));
        req.removeAllListeners("data");
        req.resume();
        return;
      }
      text += decoder.decode(chunk, { stream: true });
    });
    req.on("end", () => resolve(text + decoder.decode()));
    req.on("error", reject);
  });
}

/** A form's fields, each at its first value, as URLSearchParams.get reads them. */
function formFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(text)) {
    if (!fields.has(name)) fields.set(name, value);
  }
  return fields;
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

function validationError(form: Map<string, string>): [number, string] | null {
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
  let behaviour: CatcherBehaviour = { latencyMs: 0, failNext: [], lengthRequired: false };
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
    const how = f.dropConnection ? "dropped connection" : String(f.httpStatus);
    log?.(`failing a create request ${f.afterCreate ? "after" : "before"} creating it: ${how}`);
    later(res, () => {
      if (f.dropConnection) {
        req.socket.destroy();
        return;
      }
      const status = f.httpStatus ?? 500;
      const code = f.code ?? DEFAULT_CODES[status] ?? null;
      const message = f.message ?? http.STATUS_CODES[status] ?? "Error";
      sendJson(res, status, twilioErrorBody(status, code, message));
    });
  }

  // The header a client with the right credentials sends, so most requests are checked by one
  // comparison; any other spelling of them is decoded.
  const expectedAuthorization = `Basic ${
    btoa(String.fromCharCode(...new TextEncoder().encode(`${accountSid}:${authToken}`)))
  }`;

  function isAuthentic(req: http.IncomingMessage, pathSid: string): boolean {
    if (pathSid !== accountSid) return false;
    const header = req.headers.authorization;
    if (header !== undefined && timingSafeEqual(header, expectedAuthorization)) return true;
    const credentials = basicCredentials(header);
    return credentials !== null &&
      timingSafeEqual(credentials[0], accountSid) &&
      timingSafeEqual(credentials[1], authToken);
  }

  function refuseCredentials(res: http.ServerResponse): void {
    later(res, () =>
      sendJson(res, 401, twilioErrorBody(401, 20003, "Authenticate"), {
        "www-authenticate": 'Basic realm="Twilio API"',
      }));
  }

  /** The first canned failure meant for this recipient (or for any), taken off the queue. */
  function takeFailure(to: string | null): CatcherFailure | undefined {
    const i = behaviour.failNext.findIndex((f) => f.to === undefined || f.to === to);
    return i < 0 ? undefined : behaviour.failNext.splice(i, 1)[0];
  }

  function createMessage(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    pathSid: string,
    text: string,
  ): void {
    requestCount++;
    if (!isAuthentic(req, pathSid)) return refuseCredentials(res);
    if (behaviour.lengthRequired && req.headers["transfer-encoding"] !== undefined) {
      return sendJson(res, 411, { message: "Length Required" });
    }
    const form = formFields(text);
    const failure = takeFailure(form.get("To") ?? null);
    const failsAfterCreate = failure?.afterCreate || failure?.acceptThenHang;
    if (failure && !failsAfterCreate) return fail(req, res, failure);

    const invalid = validationError(form);
    if (invalid) {
      return later(res, () => sendJson(res, 400, twilioErrorBody(400, invalid[0], invalid[1])));
    }
    const now = new Date();
    const messagingServiceSid = form.get("MessagingServiceSid") ?? null;
    const message: CaughtMessage = {
      sid: newSid(),
      accountSid,
      to: form.get("To")!,
      from: form.get("From") ?? null,
      messagingServiceSid,
      body: form.get("Body") ?? "",
      statusCallback: form.get("StatusCallback") ?? null,
      // Twilio answers "accepted" when a Messaging Service still has to pick the sender.
      status: messagingServiceSid ? "accepted" : "queued",
      errorCode: null,
      createdAt: now.toISOString(),
      dateSent: now.toISOString(),
    };
    caught.push(message);
    log?.(maskPhone(`caught ${message.sid} to ${message.to}: ${message.body.length} chars`));
    if (failure?.acceptThenHang) return hang(res);
    if (failure?.afterCreate) return fail(req, res, failure);
    // Twilio's answer describes the message as it was created: not yet sent.
    later(res, () => sendJson(res, 201, { ...messageJson(accountSid, message), date_sent: null }));
  }

  function listMessages(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    pathSid: string,
    query: URLSearchParams,
  ): void {
    if (!isAuthentic(req, pathSid)) return refuseCredentials(res);
    const listed = listPage(caught, query, messagesPath(accountSid));
    if ("error" in listed) {
      return later(res, () => sendJson(res, 400, twilioErrorBody(400, 20001, listed.error)));
    }
    later(res, () =>
      sendJson(res, 200, {
        ...listed.page,
        messages: listed.messages.map((m) => messageJson(accountSid, m)),
      }));
  }

  async function postWebhook(url: string, fields: Record<string, string>): Promise<Response> {
    const params = new URLSearchParams(fields);
    return await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilioSignature(authToken, url, params),
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
    if (message) {
      message.status = o.status;
      if (o.errorCode) message.errorCode = Number(o.errorCode);
    }
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
      lengthRequired: b.lengthRequired ?? behaviour.lengthRequired,
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
      behaviour = { latencyMs: 0, failNext: [], lengthRequired: false };
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
    const target = req.url ?? "/";
    const queryAt = target.indexOf("?");
    const path = queryAt < 0 ? target : target.slice(0, queryAt);
    const text = await readBody(req);
    if (path.startsWith("/__catcher/")) return await control(res, method, path, text);
    const messages = MESSAGES_PATH.exec(path);
    if (!messages) {
      const message = `The requested resource ${path} was not found`;
      return sendJson(res, 404, twilioErrorBody(404, 20404, message));
    }
    if (method === "GET") {
      const query = new URLSearchParams(queryAt < 0 ? "" : target.slice(queryAt + 1));
      return listMessages(req, res, messages[1], query);
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
  let connectionCount = 0;
  server.on("connection", () => connectionCount++);
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
    connections: () => connectionCount,
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
