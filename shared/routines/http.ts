// http.post's rules: only origins in ROUTINE_HTTP_ALLOWLIST (comma-separated,
// such as "https://hooks.example.com,https://n8n.example.org:8443"), no
// redirects followed, and every request signed so the receiver can tell it
// came from here: X-Routine-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" under ROUTINE_HTTP_SECRET>. The secret is the routines' own, never
// ORCHESTRATOR_SECRET: a receiver that checks signatures holds it, and must not
// thereby be able to call the project's functions.

export interface HttpConfig {
  allowlist: ReadonlySet<string>;
  /** Null: http.post is not configured, and every such step fails saying so. */
  secret: string | null;
}

export function httpConfigFromEnv(env: Record<string, string | undefined>): HttpConfig {
  const allowlist = new Set(
    (env.ROUTINE_HTTP_ALLOWLIST ?? "").split(",").map((s) => s.trim()).filter(Boolean)
      .map(originOf),
  );
  const secret = env.ROUTINE_HTTP_SECRET?.trim() || null;
  if (secret !== null && secret.length < 16) {
    throw new Error("configuration: ROUTINE_HTTP_SECRET must be at least 16 characters");
  }
  return { allowlist, secret };
}

/** The origin of an http(s) URL, lower-case; throws on anything else. */
export function originOf(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new Error(`not an http(s) URL: ${url}`);
  }
  if (parsed.username || parsed.password) throw new Error("a URL must not carry credentials");
  return parsed.origin.toLowerCase();
}

/** Why `url` may not be posted to, or null. */
export function refusal(url: string, allowlist: ReadonlySet<string>): string | null {
  let origin: string;
  try {
    origin = originOf(url);
  } catch (err) {
    return (err as Error).message;
  }
  return allowlist.has(origin) ? null : `${origin} is not in ROUTINE_HTTP_ALLOWLIST`;
}

const hex = (bytes: ArrayBuffer) =>
  Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");

export async function signature(secret: string, timestamp: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    new TextEncoder().encode(`${timestamp}.${body}`),
  );
  return `t=${timestamp},v1=${hex(mac)}`;
}
