// Sends one SMS through Twilio's Messages resource and classifies the outcome so a caller can
// deliver at most once: only answers that prove nothing was sent are ever marked retryable.
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

function basicAuth(user: string, password: string): string {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
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
  // A gateway timeout or bad gateway means the proxy lost track of Twilio's own answer: the
  // message may exist, so these are not safe to retry.
  if (status === 502 || status === 504) {
    return { kind: "unknown", message: `HTTP ${status}: ${message}` };
  }
  // 401 and 408 are about our credentials or the request's timing, not the message, and prove it
  // was not sent; a later attempt may succeed.
  if (status === 429 || status === 401 || status === 408 || status >= 500) {
    return { kind: "retry", httpStatus: status, code, message };
  }
  return { kind: "rejected", httpStatus: status, code, message, optedOut: code === OPTED_OUT_CODE };
}

export async function sendSms(
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
  if (cfg.messagingServiceSid) form.set("MessagingServiceSid", cfg.messagingServiceSid);
  const url = `${cfg.baseUrl}/2010-04-01/Accounts/${
    encodeURIComponent(cfg.accountSid)
  }/Messages.json`;
  // One signal for the whole exchange, so a body that stalls also ends as "unknown".
  const signal = AbortSignal.timeout(cfg.timeoutMs);
  let res: Response;
  try {
    res = await deps.fetch(url, {
      method: "POST",
      headers: {
        authorization: basicAuth(cfg.accountSid, cfg.authToken),
        "content-type": "application/x-www-form-urlencoded",
        accept: "application/json",
      },
      body: form,
      signal,
    });
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
