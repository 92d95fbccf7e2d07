// A local stand-in for the Anthropic Messages API, used by `npm start` when no
// ANTHROPIC_API_KEY is set and by tests. It answers from a queue of scripted steps,
// or from a default responder that keeps the product working end to end, records
// every request it answers, and reports usage as the real API does, prompt caching
// included: a breakpoint whose prefix is shorter than the model's minimum
// cacheable length (shared/claude/caching.ts) caches nothing, as with the API. It is never mistaken for Claude: ids start with msg_scripted_ and
// request ids with req_scripted_.
import { parseArgs } from "node:util";
import { z } from "zod";
import { estimateTokens, minimumCacheableTokens } from "../../shared/claude/caching.ts";

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/**
 * `match`: the step waits for a request whose body contains this text (say, a
 * marker in one prompt), so concurrent callers do not take each other's steps.
 */
export type ScriptStep = ScriptStepBody & { match?: string };

/** How a scripted text reply ends; a text longer than max_tokens ends on max_tokens anyway. */
export type TextStopReason = "end_turn" | "max_tokens" | "refusal";

type ScriptStepBody =
  | { kind: "text"; text: string; usage?: Partial<Usage>; stop_reason?: TextStopReason }
  | {
    kind: "tool_use";
    calls: { name: string; input: unknown; id?: string }[];
    text?: string;
    usage?: Partial<Usage>;
  }
  | { kind: "error"; status: number; type: string; message: string }
  | { kind: "delay"; ms: number; then: ScriptStep };

export type Responder = (req: RecordedRequest) => ScriptStep;

export interface RecordedRequest {
  /** The `request-id` header this server answered with. */
  requestId: string;
  receivedAt: string;
  /** Lower-case names; credentials are redacted. */
  headers: Record<string, string>;
  body: MessagesRequest;
}

export interface ScriptedClaude {
  /** Base URL to pass as `baseURL` or ANTHROPIC_BASE_URL. */
  url: string;
  requests(): RecordedRequest[];
  /** Queues replies, consumed in order, one per request, before the default responder. */
  script(steps: ScriptStep[]): void;
  setDefault(responder: Responder): void;
  /** Back to the state at start: no queue, no records, an empty prompt cache, the default responder. */
  reset(): void;
  stop(): Promise<void>;
}

const Block = z.looseObject({ type: z.string() });
const Content = z.union([z.string(), z.array(Block)]);

// Only what every request must carry is checked; the rest is recorded as sent.
const MessagesRequestSchema = z.looseObject({
  model: z.string().min(1),
  max_tokens: z.number().int().positive(),
  messages: z.array(
    z.looseObject({ role: z.enum(["user", "assistant", "system"]), content: Content }),
  ).min(1),
  system: Content.optional(),
  tools: z.array(z.looseObject({})).optional(),
  stream: z.boolean().optional(),
  cache_control: z.looseObject({ type: z.string() }).nullish(),
});
export type MessagesRequest = z.infer<typeof MessagesRequestSchema>;

const UsagePatch = z.object({
  input_tokens: z.number().int().nonnegative(),
  output_tokens: z.number().int().nonnegative(),
  cache_creation_input_tokens: z.number().int().nonnegative(),
  cache_read_input_tokens: z.number().int().nonnegative(),
}).partial();

const ScriptStepSchema: z.ZodType<ScriptStep> = z.lazy(() =>
  z.discriminatedUnion("kind", [
    z.object({
      kind: z.literal("text"),
      text: z.string(),
      usage: UsagePatch.optional(),
      stop_reason: z.enum(["end_turn", "max_tokens", "refusal"]).optional(),
      match: z.string().optional(),
    }),
    z.object({
      kind: z.literal("tool_use"),
      calls: z.array(
        z.object({ name: z.string().min(1), input: z.json(), id: z.string().min(1).optional() }),
      ).min(1),
      text: z.string().optional(),
      usage: UsagePatch.optional(),
      match: z.string().optional(),
    }),
    z.object({
      kind: z.literal("error"),
      status: z.number().int().min(400).max(599),
      type: z.string().min(1),
      message: z.string(),
      match: z.string().optional(),
    }),
    z.object({
      kind: z.literal("delay"),
      ms: z.number().nonnegative(),
      then: ScriptStepSchema,
      match: z.string().optional(),
    }),
  ])
);
const ScriptSchema = z.array(ScriptStepSchema);

const tokens = estimateTokens;

const randomId = (prefix: string) =>
  `${prefix}_scripted_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;

// ---------------------------------------------------------------- default responder

function textOf(content: string | { type: string; text?: unknown }[]): string {
  if (typeof content === "string") return content;
  return content.map((b) => b.type === "text" && typeof b.text === "string" ? b.text : "")
    .filter(Boolean).join("\n");
}

function systemText(body: MessagesRequest): string {
  const top = body.system === undefined ? [] : [textOf(body.system)];
  const inline = body.messages.filter((m) => m.role === "system").map((m) => textOf(m.content));
  return [...top, ...inline].join("\n");
}

function lastUserText(body: MessagesRequest): string {
  const last = body.messages.findLast((m) => m.role === "user");
  return last ? textOf(last.content) : "";
}

/** The JSON the text is, or the first JSON object or array inside it. */
function findJson(text: string): unknown {
  const candidates = [text.trim()];
  const start = text.search(/[{[]/);
  if (start >= 0) {
    candidates.push(text.slice(start, text.lastIndexOf(text[start] === "{" ? "}" : "]") + 1));
  }
  for (const candidate of candidates) {
    try {
      const value = JSON.parse(candidate);
      if (typeof value === "object" && value !== null) return value;
    } catch {
      // not JSON; try the next candidate
    }
  }
  return undefined;
}

function valuesOf(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  if (typeof value === "boolean") return [value ? "yes" : "no"];
  if (Array.isArray(value)) return value.flatMap(valuesOf);
  if (typeof value === "object") return Object.values(value).flatMap(valuesOf);
  const text = String(value).trim();
  return text ? [text] : [];
}

const SMS_MAX = 320;

function renderSms(userText: string): string {
  const data = findJson(userText);
  const parts = data === undefined ? [userText] : valuesOf(data);
  let prose = parts.join(", ").replace(/[{}[\]]/g, "").replace(/\s+/g, " ").trim();
  if (!prose) return "Nothing to report.";
  if (prose.length > SMS_MAX) prose = `${prose.slice(0, SMS_MAX - 1).replace(/\s+\S*$/, "")}…`;
  prose = prose[0].toUpperCase() + prose.slice(1);
  return /[.!?…]$/.test(prose) ? prose : `${prose}.`;
}

/**
 * What the scripted model says when nothing is queued: SMS prose from the JSON in
 * the last user message when asked to RENDER_SMS, "still relevant" to a
 * FRESHNESS_CHECK, and nothing to do for anything else (an analysis ends at once).
 */
export const defaultResponder: Responder = ({ body }) => {
  const prompt = `${systemText(body)}\n${lastUserText(body)}`;
  if (prompt.includes("RENDER_SMS")) return { kind: "text", text: renderSms(lastUserText(body)) };
  if (prompt.includes("FRESHNESS_CHECK")) {
    return {
      kind: "text",
      text: '{"still_relevant": true, "reason": "scripted model: no newer context"}',
    };
  }
  return { kind: "text", text: "Scripted model: nothing to do." };
};

// ---------------------------------------------------------------- prompt caching

interface Segment {
  text: string;
  breakpoint: boolean;
}

function withoutCacheControl(value: object): string {
  const { cache_control: _, ...rest } = value as Record<string, unknown>;
  return JSON.stringify(rest);
}

/** The prompt in the order the API caches it: tools, then system, then messages. */
function segments(body: MessagesRequest): Segment[] {
  const block = (b: Record<string, unknown>, prefix = ""): Segment => ({
    text: prefix + withoutCacheControl(b),
    breakpoint: b.cache_control != null,
  });
  const content = (c: z.infer<typeof Content>, prefix: string): Segment[] =>
    typeof c === "string"
      ? [{ text: prefix + JSON.stringify(c), breakpoint: false }]
      : c.map((b) => block(b, prefix));
  const all = [
    ...(body.tools ?? []).map((t) => block(t)),
    ...(body.system === undefined ? [] : content(body.system, "system:")),
    ...body.messages.flatMap((m) => content(m.content, `${m.role}:`)),
  ];
  // Top-level cache_control marks the last block of the request.
  if (body.cache_control != null) all[all.length - 1].breakpoint = true;
  return all;
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Which part of a request's prompt is read from the cache and which is written to
 * it. As with the real API, a breakpoint counts only when the prefix up to it
 * reaches the model's minimum cacheable length; the longest such prefix that an
 * earlier request already wrote is read, the rest up to the last one is written,
 * and caches are per model. Expiry is not simulated.
 */
function promptCache() {
  const seen = new Set<string>();
  return {
    clear: () => seen.clear(),
    async usage(body: MessagesRequest): Promise<{ read: number; write: number }> {
      const segs = segments(body);
      const ends: { chars: number; hash: string }[] = [];
      const minimum = minimumCacheableTokens(body.model);
      let prefix = body.model;
      for (const seg of segs) {
        prefix += `\n${seg.text}`;
        if (seg.breakpoint && tokens(prefix.length) >= minimum) {
          ends.push({ chars: prefix.length, hash: await sha256(prefix) });
        }
      }
      if (ends.length === 0) return { read: 0, write: 0 };
      const hit = ends.findLast((end) => seen.has(end.hash));
      for (const end of ends) seen.add(end.hash);
      const read = hit ? tokens(hit.chars) : 0;
      return { read, write: tokens(ends[ends.length - 1].chars) - read };
    },
  };
}

// ---------------------------------------------------------------- HTTP

function json(body: unknown, status: number, requestId?: string): Response {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (requestId) headers["request-id"] = requestId;
  return new Response(JSON.stringify(body), { status, headers });
}

function apiError(status: number, type: string, message: string, requestId = randomId("req")) {
  return json(
    { type: "error", error: { type, message }, request_id: requestId },
    status,
    requestId,
  );
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

function redact(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of headers) {
    out[name] = name === "x-api-key" || name === "authorization" ? "[redacted]" : value;
  }
  return out;
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue.path.length ? `${issue.path.join(".")}: ${issue.message}` : issue.message;
}

export async function startScriptedClaude(
  opts: { port?: number; log?: (line: string) => void } = {},
): Promise<ScriptedClaude> {
  const log = opts.log ?? (() => {});
  const queue: ScriptStep[] = [];
  const takeStep = (rec: RecordedRequest): ScriptStep | undefined => {
    const text = JSON.stringify(rec.body);
    const index = queue.findIndex((step) => !step.match || text.includes(step.match));
    return index < 0 ? undefined : queue.splice(index, 1)[0];
  };
  const recorded: RecordedRequest[] = [];
  const cache = promptCache();
  let responder = defaultResponder;
  // Lets stop() cut scripted delays short instead of waiting them out.
  const stopping = new AbortController();

  const reply = async (step: ScriptStep, rec: RecordedRequest): Promise<Response> => {
    const { body, requestId } = rec;
    if (step.kind === "delay") {
      log(`${requestId}: delaying ${step.ms} ms`);
      await sleep(step.ms, stopping.signal);
      return reply(step.then, rec);
    }
    if (step.kind === "error") {
      log(`${requestId}: ${body.model} -> ${step.status} ${step.type}`);
      return apiError(step.status, step.type, step.message, requestId);
    }
    let text = step.text ?? "";
    let stopReason: string = step.kind === "tool_use" ? "tool_use" : step.stop_reason ?? "end_turn";
    // A reply longer than max_tokens is cut off, as the real model's would be.
    if (step.kind === "text" && tokens(text.length) > body.max_tokens) {
      text = text.slice(0, body.max_tokens * 4);
      stopReason = "max_tokens";
    }
    const content: Record<string, unknown>[] = text
      ? [{ type: "text", text, citations: null }]
      : [];
    if (step.kind === "tool_use") {
      for (const call of step.calls) {
        content.push({
          type: "tool_use",
          id: call.id ?? randomId("toolu"),
          name: call.name,
          input: call.input,
          caller: { type: "direct" },
        });
      }
    }
    const { read, write } = await cache.usage(body);
    const total = tokens(JSON.stringify(body).length);
    const usage: Usage = {
      input_tokens: Math.max(0, total - read - write),
      output_tokens: stopReason === "max_tokens"
        ? body.max_tokens
        : Math.max(1, tokens(JSON.stringify(content).length)),
      cache_creation_input_tokens: write,
      cache_read_input_tokens: read,
      ...step.usage,
    };
    log(`${requestId}: ${body.model} -> 200 ${stopReason}`);
    return json(
      {
        id: randomId("msg"),
        type: "message",
        role: "assistant",
        model: body.model,
        content,
        stop_reason: stopReason,
        stop_sequence: null,
        usage,
      },
      200,
      requestId,
    );
  };

  const messages = async (req: Request): Promise<Response> => {
    if (req.method !== "POST") return apiError(405, "invalid_request_error", "use POST");
    // SDKs from 1.0 send the key as a bearer token; curl examples use x-api-key.
    if (
      !req.headers.get("x-api-key") && !/^Bearer \S/i.test(req.headers.get("authorization") ?? "")
    ) {
      return apiError(401, "authentication_error", "x-api-key header is required");
    }
    if (!req.headers.get("anthropic-version")) {
      return apiError(400, "invalid_request_error", "anthropic-version: header is required");
    }
    let raw: unknown;
    try {
      raw = await req.json();
    } catch {
      return apiError(400, "invalid_request_error", "The request body is not valid JSON.");
    }
    const parsed = MessagesRequestSchema.safeParse(raw);
    if (!parsed.success) return apiError(400, "invalid_request_error", firstIssue(parsed.error));
    if (parsed.data.stream) {
      return apiError(
        400,
        "invalid_request_error",
        "stream: streaming is not supported by the scripted model; send stream: false",
      );
    }
    const rec: RecordedRequest = {
      requestId: randomId("req"),
      receivedAt: new Date().toISOString(),
      headers: redact(req.headers),
      body: parsed.data,
    };
    recorded.push(rec);
    try {
      return await reply(takeStep(rec) ?? responder(rec), rec);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log(`${rec.requestId}: responder failed: ${message}`);
      return apiError(500, "api_error", `scripted model: ${message}`, rec.requestId);
    }
  };

  const handle: ScriptedClaude = {
    url: "",
    requests: () => [...recorded],
    script: (steps) => {
      queue.push(...ScriptSchema.parse(steps));
    },
    setDefault: (r) => {
      responder = r;
    },
    reset: () => {
      queue.length = 0;
      recorded.length = 0;
      cache.clear();
      responder = defaultResponder;
    },
    stop: async () => {
      stopping.abort();
      await server.shutdown();
    },
  };

  const control = async (req: Request, action: string): Promise<Response> => {
    if (action === "requests" && req.method === "GET") return json(handle.requests(), 200);
    if (action === "reset" && req.method === "POST") {
      handle.reset();
      return json({ ok: true }, 200);
    }
    if (action === "script" && req.method === "POST") {
      const parsed = ScriptSchema.safeParse(await req.json().catch(() => undefined));
      if (!parsed.success) return apiError(400, "invalid_request_error", firstIssue(parsed.error));
      queue.push(...parsed.data);
      return json({ queued: queue.length }, 200);
    }
    return apiError(404, "not_found_error", `no control action ${req.method} ${action}`);
  };

  let server!: Deno.HttpServer<Deno.NetAddr>;
  const addr = await new Promise<Deno.NetAddr>((listening) => {
    server = Deno.serve(
      { hostname: "127.0.0.1", port: opts.port ?? 0, onListen: listening },
      (req) => {
        const path = new URL(req.url).pathname;
        if (path.startsWith("/__scripted/")) {
          return control(req, path.slice("/__scripted/".length));
        }
        if (path === "/v1/messages") return messages(req);
        return apiError(404, "not_found_error", `${path} is not served by the scripted model`);
      },
    );
  });
  handle.url = `http://127.0.0.1:${addr.port}`;
  return handle;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string", default: "54331" } },
  });
  const server = await startScriptedClaude({ port: Number(values.port), log: console.log });
  console.log(
    `scripted model (not Claude) serving the Messages API at ${server.url}; ` +
      `point ANTHROPIC_BASE_URL there. Control: POST ${server.url}/__scripted/script`,
  );
}
