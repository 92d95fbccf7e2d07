// HTTP plumbing every edge function shares: JSON replies, method and size
// limits, bearer authentication, and zod validation that names the field.
import type { z } from "zod";
import { timingSafeEqual } from "./secrets.ts";

export const MAX_BODY_BYTES = 1_000_000;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

export function errorResponse(err: unknown): Response {
  if (err instanceof HttpError) {
    const headers: Record<string, string> = err.status === 401
      ? { "www-authenticate": 'Bearer realm="orchestrator"' }
      : {};
    return json(
      { error: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
      err.status,
      headers,
    );
  }
  console.error("unhandled error:", err instanceof Error ? err.message : String(err));
  return json({ error: "internal", message: "internal error" }, 500);
}

export function requireMethod(req: Request, ...allowed: string[]): void {
  if (!allowed.includes(req.method)) {
    throw new HttpError(405, "method_not_allowed", `use ${allowed.join(" or ")}`);
  }
}

/** Bearer auth against a shared secret, compared in constant time. */
export function requireBearer(req: Request, secret: string): void {
  const header = req.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  if (!match) throw new HttpError(401, "unauthorized", "missing bearer token");
  if (!timingSafeEqual(match[1], secret)) {
    throw new HttpError(401, "unauthorized", "invalid bearer token");
  }
}

/** Reads the body as text, refusing more than `limit` bytes without buffering them. */
export async function readBodyText(req: Request, limit = MAX_BODY_BYTES): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > limit) throw tooLarge(limit);
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, "payload_too_large", `body exceeds ${limit} bytes`);
}

export async function readJson(req: Request, limit = MAX_BODY_BYTES): Promise<unknown> {
  const text = await readBodyText(req, limit);
  if (text.trim() === "") throw new HttpError(400, "invalid_json", "body must be a JSON object");
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, "invalid_json", "body is not valid JSON");
  }
}

/** Validates with zod; a failure is a 400 whose message names each bad field. */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const fields = result.error.issues.map((issue) => ({
    field: issue.path.length ? issue.path.join(".") : "(body)",
    message: issue.message,
  }));
  const summary = fields.map((f) => `${f.field}: ${f.message}`).join("; ");
  throw new HttpError(400, "invalid_request", summary, { fields });
}

/** Wraps a handler so every thrown error becomes a JSON reply, never a crash. */
export function handle(
  fn: (req: Request) => Promise<Response>,
): (req: Request) => Promise<Response> {
  return async (req) => {
    try {
      return await fn(req);
    } catch (err) {
      return errorResponse(err);
    }
  };
}

/** The handler of a function whose configuration is missing: a clear 503, not a crash loop. */
export function notConfigured(what: string): (req: Request) => Response {
  return () => json({ error: "not_configured", message: `${what} is not configured` }, 503);
}
