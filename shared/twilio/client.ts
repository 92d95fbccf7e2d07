// Sends one SMS through Twilio's Messages resource and classifies the outcome so a caller can
// deliver at most once: only answers that prove nothing was sent are ever marked retryable. For
// the rest ("unknown"), Twilio's Messages list later says whether the message exists.
import { z } from "zod";
import { maskPhone } from "../log.ts";

export const DEFAULT_TWILIO_BASE_URL = "https://api.twilio.com";
export const DEFAULT_TWILIO_TIMEOUT_MS = 10_000;
export const OPTED_OUT_CODE = 21610;

export interface TwilioConfig {
  accountSid: string;
  authToken: string;
  from?: string;
  messagingServiceSid?: string;
  baseUrl: string;
  timeoutMs: number;
}

export type SendOutcome =
  | { kind: "accepted"; sid: string; status: string }
  | { kind: "retry"; httpStatus: number | null; code: number | null; message: string }
  | {
    kind: "rejected";
    httpStatus: number;
    code: number | null;
    message: string;
    optedOut: boolean;
  }
  | { kind: "unknown"; message: string };

export interface SmsToSend {
  to: string;
  body: string;
  statusCallback: string;
  /**
   * The message must not reach the user after this (its expiry, or the start of
   * their quiet hours). With a Messaging Service it becomes Twilio's ValidityPeriod,
   * so a message stuck in Twilio's queue is dropped rather than arriving late.
   */
  validUntil?: Date;
}

/** Twilio's ValidityPeriod for a deadline: whole seconds, 1 to 36,000. */
export function validityPeriodSeconds(validUntil: Date, now: Date): number {
  const seconds = Math.floor((validUntil.getTime() - now.getTime()) / 1000);
  return Math.min(36_000, Math.max(1, seconds));
}

const blankToUndefined = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);
const optional = <S extends z.ZodType>(schema: S) =>
  z.preprocess(blankToUndefined, schema.optional());

// Shapes, not exact Twilio formats: the local catcher's fake SIDs ("AC_local_catcher") must pass.
const envSchema = z
  .object({
    TWILIO_ACCOUNT_SID: optional(
      z.string().regex(/^AC[A-Za-z0-9_]+$/, "must be an Account SID (starts with AC)"),
    ),
    TWILIO_AUTH_TOKEN: optional(z.string()),
    TWILIO_FROM_NUMBER: optional(z.string().trim()),
    TWILIO_MESSAGING_SERVICE_SID: optional(
      z.string().regex(/^MG[A-Za-z0-9_]+$/, "must be a Messaging Service SID (starts with MG)"),
    ),
    TWILIO_API_BASE_URL: optional(z.url({ protocol: /^https?$/ })),
  })
  .superRefine((env, ctx) => {
    const hasSid = env.TWILIO_ACCOUNT_SID !== undefined;
    const hasToken = env.TWILIO_AUTH_TOKEN !== undefined;
    if (!hasSid && !hasToken) return;
    if (!hasSid) {
      ctx.addIssue({ code: "custom", path: ["TWILIO_ACCOUNT_SID"], message: "is required" });
    }
    if (!hasToken) {
      ctx.addIssue({ code: "custom", path: ["TWILIO_AUTH_TOKEN"], message: "is required" });
    }
    if (!env.TWILIO_FROM_NUMBER && !env.TWILIO_MESSAGING_SERVICE_SID) {
      ctx.addIssue({
        code: "custom",
        path: ["TWILIO_FROM_NUMBER"],
        message: "set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID",
      });
    }
  });

/** Null when no Twilio credentials are set; throws when they are set only in part. */
export function twilioConfigFromEnv(env: Record<string, string | undefined>): TwilioConfig | null {
  const result = envSchema.safeParse(env);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new Error(`Twilio configuration: ${issues.join("; ")}`);
  }
  const e = result.data;
  if (!e.TWILIO_ACCOUNT_SID || !e.TWILIO_AUTH_TOKEN) return null;
  return {
    accountSid: e.TWILIO_ACCOUNT_SID,
    authToken: e.TWILIO_AUTH_TOKEN,
    ...(e.TWILIO_FROM_NUMBER ? { from: e.TWILIO_FROM_NUMBER } : {}),
    ...(e.TWILIO_MESSAGING_SERVICE_SID
      ? { messagingServiceSid: e.TWILIO_MESSAGING_SERVICE_SID }
      : {}),
    baseUrl: (e.TWILIO_API_BASE_URL ?? DEFAULT_TWILIO_BASE_URL).replace(/\/+$/, ""),
    timeoutMs: DEFAULT_TWILIO_TIMEOUT_MS,
  };
}

/** Form-urlencoded body to an object; a repeated name keeps its last value. */
export function parseTwilioForm(text: string): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(text));
}

const created = z.object({ sid: z.string().regex(/^(SM|MM)\w+$/), status: z.string().optional() });
const twilioError = z.object({ code: z.number().int().optional(), message: z.string().optional() });

const messagesPath = (accountSid: string) =>
  `/2010-04-01/Accounts/${encodeURIComponent(accountSid)}/Messages.json`;
const messagesUrl = (cfg: TwilioConfig) => `${cfg.baseUrl}${messagesPath(cfg.accountSid)}`;

// Over HTTP/1.1, Deno's fetch silently sends a request again when a reused keep-alive connection
// closes without an answer, even after the server read it: a second text if Twilio had created
// the first. It cannot replay a streamed body, so a send's body is streamed: the connection is
// reused, and a drop is an error we see. (A connection per text cost a 20,000-text drain on
// our 2-core machine 8.69 s, against 6.49 s reused.) Over HTTP/2 the body is DATA frames, and h2
// retries only streams the server refused unprocessed.
//
// Over HTTP/1.1 a streamed body is chunked. A server that will not take that says so before
// doing anything, with 411 (or 501); the text then goes again at once with a fixed length, on a
// connection of its own (`connection: close`, so nothing can replay it), and so does every
// later text to that API from this process.
const FIXED_LENGTH_ONLY = new Set<string>();
const NO_REUSE = { connection: "close" } as const;
const refusesStreamedBody = (status: number) => status === 411 || status === 501;

/**
 * How long a connection to Twilio may sit idle and still be reused. A server
 * closes an idle keep-alive connection when its own timeout runs out (Node's
 * default is 5 s), and a text sent on it at that instant goes down with it: its
 * outcome is unknown until reconciliation (in the lab, 4 of 20,000 texts sent
 * just after a 5 s pause went so). Dropping ours first leaves that race only to
 * servers with shorter timeouts.
 */
const TWILIO_IDLE_MS = 2_000;

/** fetch whose connections to Twilio are dropped after idleMs unused. */
export function createTwilioHttp(idleMs = TWILIO_IDLE_MS): {
  fetch: typeof fetch;
  close(): void;
} {
  const client = Deno.createHttpClient({ poolIdleTimeout: idleMs });
  return {
    fetch: (input, init) => fetch(input, { ...init, client }),
    close: () => client.close(),
  };
}

// A stream of one chunk: the cheapest body Deno cannot replay (20,000 sends, 16 at a time, to a
// local node:http server cost the client 1.68 s and 1.61 s of CPU this way, 2.03 s and 1.82 s
// through Blob.stream()).
function onePieceStream(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

/**
 * Runs `exchange` with a signal that aborts it after timeoutMs, and drops the timer as soon as
 * it ends. AbortSignal.timeout's timer would fire long after every answer, building a
 * TimeoutError (stack trace and all) for a signal nobody listens to: 3% of process-queue's CPU
 * in back-to-back 20,000-text drains.
 */
async function withTimeout<T>(timeoutMs: number, exchange: (signal: AbortSignal) => Promise<T>) {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException("the exchange timed out", "TimeoutError")),
    timeoutMs,
  );
  try {
    return await exchange(controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

// Built once per pair of credentials: encoding them took about 3 µs a text.
const authorizations = new Map<string, string>();

function basicAuth(user: string, password: string): string {
  const credentials = `${user}:${password}`;
  let header = authorizations.get(credentials);
  if (header === undefined) {
    header = `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(credentials)))}`;
    authorizations.set(credentials, header);
  }
  return header;
}

// Errors that can only happen while opening the connection (refused, DNS, TLS handshake), so
// Twilio cannot have seen the request. Deno words them "client error (Connect)"; the codes
// cover Node-style fetch implementations.
const NEVER_CONNECTED =
  /client error \(Connect\)|connection refused|dns error|failed to lookup address|ECONNREFUSED|ENOTFOUND|EAI_AGAIN/i;

function errorTexts(err: unknown, depth = 0): string[] {
  if (depth > 4 || typeof err !== "object" || err === null) return [String(err)];
  const e = err as { message?: unknown; code?: unknown; cause?: unknown };
  return [
    String(e.message ?? ""),
    String(e.code ?? ""),
    ...(e.cause === undefined ? [] : errorTexts(e.cause, depth + 1)),
  ];
}

function classifyFetchError(err: unknown, timeoutMs: number): SendOutcome {
  const name = (err as { name?: unknown })?.name;
  if (name === "TimeoutError" || name === "AbortError") {
    return { kind: "unknown", message: `no answer from Twilio within ${timeoutMs} ms` };
  }
  const texts = errorTexts(err);
  const message = maskPhone(texts.filter(Boolean).join(": "));
  if (texts.some((t) => NEVER_CONNECTED.test(t))) {
    return { kind: "retry", httpStatus: null, code: null, message };
  }
  return { kind: "unknown", message };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function classifyAnswer(status: number, text: string): SendOutcome {
  const json = parseJson(text);
  if (status >= 200 && status < 300) {
    const ok = created.safeParse(json);
    // Twilio took the request but we cannot read the SID, so no status callback can be matched
    // to it. Retrying would likely send a second copy; "unknown" keeps it at most once.
    if (!ok.success) return { kind: "unknown", message: `HTTP ${status} without a message SID` };
    // Twilio always sends a status; "accepted" is its word for "taken, not yet queued".
    return { kind: "accepted", sid: ok.data.sid, status: ok.data.status ?? "accepted" };
  }
  const parsed = twilioError.safeParse(json);
  const code = parsed.success ? parsed.data.code ?? null : null;
  const message = maskPhone(
    (parsed.success ? parsed.data.message : undefined) ?? `HTTP ${status} ${text.slice(0, 200)}`,
  );
  // 429 and 503 are refusals made before any work: the message was not created. 401 and 408 are
  // about our credentials or the request's timing, not the message, and prove it was not sent
  // either; a later attempt may succeed.
  if (status === 429 || status === 503 || status === 401 || status === 408) {
    return { kind: "retry", httpStatus: status, code, message };
  }
  // Any other server error (500, or a proxy's 502/504 that lost Twilio's own answer) can come
  // after the message was created: Twilio warns that retrying a 5xx can send it twice.
  if (status >= 500) return { kind: "unknown", message: `HTTP ${status}: ${message}` };
  return { kind: "rejected", httpStatus: status, code, message, optedOut: code === OPTED_OUT_CODE };
}

export function sendSms(
  cfg: TwilioConfig,
  msg: SmsToSend,
  deps: { fetch: typeof fetch },
): Promise<SendOutcome> {
  const form = new URLSearchParams({
    To: msg.to,
    Body: msg.body,
    StatusCallback: msg.statusCallback,
  });
  if (cfg.from) form.set("From", cfg.from);
  if (cfg.messagingServiceSid) {
    form.set("MessagingServiceSid", cfg.messagingServiceSid);
    if (msg.validUntil) {
      form.set("ValidityPeriod", String(validityPeriodSeconds(msg.validUntil, new Date())));
    }
  }
  // One signal for the whole exchange, so a body that stalls also ends as "unknown".
  return withTimeout(cfg.timeoutMs, (signal) => postMessage(cfg, form, deps, signal));
}

async function postMessage(
  cfg: TwilioConfig,
  form: URLSearchParams,
  deps: { fetch: typeof fetch },
  signal: AbortSignal,
): Promise<SendOutcome> {
  const post = (streamed: boolean) =>
    deps.fetch(messagesUrl(cfg), {
      method: "POST",
      headers: {
        authorization: basicAuth(cfg.accountSid, cfg.authToken),
        "content-type": "application/x-www-form-urlencoded",
        accept: "application/json",
        ...(streamed ? {} : NO_REUSE),
      },
      body: streamed ? onePieceStream(form.toString()) : form,
      signal,
    });
  let res: Response;
  try {
    const streamed = !FIXED_LENGTH_ONLY.has(cfg.baseUrl);
    res = await post(streamed);
    if (streamed && refusesStreamedBody(res.status)) {
      await res.body?.cancel();
      FIXED_LENGTH_ONLY.add(cfg.baseUrl);
      res = await post(false);
    }
  } catch (err) {
    return classifyFetchError(err, cfg.timeoutMs);
  }
  let text: string;
  try {
    text = await res.text();
  } catch {
    // The status line arrived, so a refusal is still a refusal; a cut-off success is unknown.
    if (res.ok) return { kind: "unknown", message: `HTTP ${res.status} with an unreadable body` };
    text = "";
  }
  return classifyAnswer(res.status, text);
}

/** How long an "unknown" send waits before Twilio's Messages list is asked about it. */
export const DEFAULT_UNKNOWN_RECONCILE_AFTER_SECONDS = 600;

const reconcileEnvSchema = z.object({
  UNKNOWN_RECONCILE_AFTER_SECONDS: optional(
    z.string().trim().regex(/^\d+$/, "must be a whole number of seconds").transform(Number)
      .pipe(z.number().int().min(60).max(86_400)),
  ),
});

/** UNKNOWN_RECONCILE_AFTER_SECONDS (60 to 86400, default 600); throws naming a bad value. */
export function unknownReconcileAfterSecondsFromEnv(
  env: Record<string, string | undefined>,
): number {
  const result = reconcileEnvSchema.safeParse(env);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new Error(`Reconcile configuration: ${issues.join("; ")}`);
  }
  return result.data.UNKNOWN_RECONCILE_AFTER_SECONDS ?? DEFAULT_UNKNOWN_RECONCILE_AFTER_SECONDS;
}

// Reconciling an "unknown" send: Twilio's Messages list, filtered by recipient and a date window,
// says whether our request created a message after all.

/** One entry of Twilio's Messages list, the fields reconciliation reads. */
export interface ListedMessage {
  sid: string;
  to: string;
  from: string | null;
  messagingServiceSid: string | null;
  body: string;
  status: string;
  errorCode: number | null;
  dateCreated: Date;
  direction: string;
}

export interface SentMessageQuery {
  to: string;
  /** What we sent with: the From number and/or the Messaging Service SID; either may match. */
  senders: readonly string[];
  body: string;
  /** An instant no later than when the request left. */
  createdAfter: Date;
}

export type LookupOutcome =
  | { kind: "found"; sid: string; status: string; errorCode: number | null }
  /** The whole listing was read and no message matched. */
  | { kind: "absent" }
  /** The listing could not be read to the end: nothing can be concluded. */
  | { kind: "unknown"; message: string };

export interface LookupLimits {
  /** Twilio allows 1 to 1000; its default is 50. */
  pageSize: number;
  maxPages: number;
}

export const DEFAULT_LOOKUP_LIMITS: LookupLimits = { pageSize: 100, maxPages: 5 };

// Twilio's date_created has whole seconds and its clock is not ours: a message created in the
// same second as createdAfter, or on a clock a little behind, must still match.
export const CREATED_AT_TOLERANCE_MS = 30_000;

const DAY_MS = 86_400_000;

const twilioDate = z.string().transform((text, ctx) => {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) {
    ctx.addIssue({ code: "custom", message: "not an RFC 2822 date" });
    return z.NEVER;
  }
  return date;
});

const listedMessageSchema = z
  .object({
    sid: z.string().regex(/^(SM|MM)\w+$/),
    to: z.string(),
    from: z.string().nullable(),
    messaging_service_sid: z.string().nullable().optional(),
    body: z.string().nullable(),
    status: z.string(),
    error_code: z.union([z.number().int(), z.string().regex(/^\d+$/).transform(Number)])
      .nullable().optional(),
    date_created: twilioDate,
    direction: z.string(),
  })
  .transform((m): ListedMessage => ({
    sid: m.sid,
    to: m.to,
    from: m.from,
    messagingServiceSid: m.messaging_service_sid ?? null,
    body: m.body ?? "",
    status: m.status,
    errorCode: m.error_code ?? null,
    dateCreated: m.date_created,
    direction: m.direction,
  }));

const messagesPageSchema = z.object({
  messages: z.array(listedMessageSchema),
  next_page_uri: z.string().nullable().optional(),
});

/**
 * The message our request created, if the list holds one: outbound, to the same number, from our
 * sender, with exactly our body, created no earlier than the request (less the tolerance). When a
 * retried request was processed twice there are two; the oldest is reported.
 */
export function findSentMessage(
  list: readonly ListedMessage[],
  q: SentMessageQuery,
): ListedMessage | null {
  const earliest = q.createdAfter.getTime() - CREATED_AT_TOLERANCE_MS;
  const matches = list.filter((m) =>
    m.direction !== "inbound" &&
    m.to === q.to &&
    [m.from, m.messagingServiceSid].some((s) => s !== null && q.senders.includes(s)) &&
    m.body === q.body &&
    m.dateCreated.getTime() >= earliest
  );
  return matches.reduce<ListedMessage | null>(
    (oldest, m) => (oldest === null || m.dateCreated < oldest.dateCreated ? m : oldest),
    null,
  );
}

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * The first page of the Messages list for the query: To, and DateSent on or after the day the
 * request left (less the tolerance) and on or before tomorrow (UTC), so "today" is never cut off
 * whatever Twilio takes "on or before midnight" to mean.
 */
function firstLookupUrl(
  cfg: TwilioConfig,
  q: SentMessageQuery,
  now: Date,
  pageSize: number,
): string {
  const params = new URLSearchParams({
    To: q.to,
    "DateSent>": utcDay(q.createdAfter.getTime() - CREATED_AT_TOLERANCE_MS),
    "DateSent<": utcDay(now.getTime() + DAY_MS),
    PageSize: String(pageSize),
  });
  return `${messagesUrl(cfg)}?${params}`;
}

type PageOutcome =
  | { kind: "page"; messages: ListedMessage[]; nextPageUri: string | null }
  | { kind: "unknown"; message: string };

/** Reads one page of the list as JSON; anything short of a well-formed page is "unknown". */
function parseMessagesPage(status: number, text: string): PageOutcome {
  const json = parseJson(text);
  if (status < 200 || status >= 300) {
    const err = twilioError.safeParse(json);
    const detail = (err.success ? err.data.message : undefined) ?? text.slice(0, 200);
    return { kind: "unknown", message: maskPhone(`listing messages: HTTP ${status}: ${detail}`) };
  }
  const page = messagesPageSchema.safeParse(json);
  if (!page.success) {
    return { kind: "unknown", message: `listing messages: HTTP ${status} without a message list` };
  }
  return {
    kind: "page",
    messages: page.data.messages,
    nextPageUri: page.data.next_page_uri || null,
  };
}

async function fetchMessagesPage(
  cfg: TwilioConfig,
  url: string,
  fetchFn: typeof fetch,
): Promise<PageOutcome> {
  try {
    return await withTimeout(cfg.timeoutMs, async (signal) => {
      const res = await fetchFn(url, {
        method: "GET",
        headers: {
          authorization: basicAuth(cfg.accountSid, cfg.authToken),
          accept: "application/json",
        },
        // A GET sent again is harmless, so it may reuse a connection.
        signal,
      });
      return parseMessagesPage(res.status, await res.text());
    });
  } catch (err) {
    const name = (err as { name?: unknown })?.name;
    const why = name === "TimeoutError" || name === "AbortError"
      ? `no answer within ${cfg.timeoutMs} ms`
      : errorTexts(err).filter(Boolean).join(": ");
    return { kind: "unknown", message: maskPhone(`listing messages: ${why}`) };
  }
}

interface Listing {
  messages: ListedMessage[];
  /** Why the listing stopped before its last page; null when it was read to the end. */
  incomplete: string | null;
}

async function readListing(
  cfg: TwilioConfig,
  firstUrl: string,
  fetchFn: typeof fetch,
  maxPages: number,
): Promise<Listing> {
  const listPath = messagesPath(cfg.accountSid);
  const messages: ListedMessage[] = [];
  let url = firstUrl;
  for (let pages = 1;; pages++) {
    const page = await fetchMessagesPage(cfg, url, fetchFn);
    if (page.kind === "unknown") return { messages, incomplete: page.message };
    messages.push(...page.messages);
    if (page.nextPageUri === null) return { messages, incomplete: null };
    // Only ever follow Twilio to the same list; the URI is relative to the API's base URL.
    if (!page.nextPageUri.startsWith(`${listPath}?`)) {
      return { messages, incomplete: "listing messages: next_page_uri leaves the Messages list" };
    }
    if (pages === maxPages) {
      return { messages, incomplete: `listing messages: more than ${maxPages} pages` };
    }
    url = `${cfg.baseUrl}${page.nextPageUri}`;
  }
}

/**
 * Asks Twilio whether our request to send `sms` created a message, reading the Messages list for
 * its recipient and following next_page_uri for at most limits.maxPages pages. "absent" only when
 * every page was read and none matched.
 */
export async function lookUpSentMessage(
  cfg: TwilioConfig,
  sms: { to: string; body: string; createdAfter: Date },
  deps: { fetch: typeof fetch; now?: () => Date },
  limits: LookupLimits = DEFAULT_LOOKUP_LIMITS,
): Promise<LookupOutcome> {
  const senders = [cfg.from, cfg.messagingServiceSid].filter((s): s is string => Boolean(s));
  if (senders.length === 0) {
    return { kind: "unknown", message: "no sender configured to match against" };
  }
  const q: SentMessageQuery = { ...sms, senders };
  const firstUrl = firstLookupUrl(cfg, q, deps.now?.() ?? new Date(), limits.pageSize);
  const listing = await readListing(cfg, firstUrl, deps.fetch, limits.maxPages);
  // A match is proof whatever happened to later pages.
  const found = findSentMessage(listing.messages, q);
  if (found) {
    return { kind: "found", sid: found.sid, status: found.status, errorCode: found.errorCode };
  }
  return listing.incomplete === null
    ? { kind: "absent" }
    : { kind: "unknown", message: listing.incomplete };
}
