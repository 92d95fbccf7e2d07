// Configuration for local runs: the process environment, then a git-ignored
// .env file for anything not already set.
import { join } from "node:path";
import { exists } from "./process.ts";

export const DEV_SECRET = "local-dev-orchestrator-secret";

/** Variables the edge functions may read; everything else stays out of their env. */
export const FUNCTION_ENV_KEYS = [
  "ANTHROPIC_API_KEY",
  "ANTHROPIC_BASE_URL",
  "ANALYSIS_MODEL",
  "RENDER_MODEL",
  "TWILIO_ACCOUNT_SID",
  "TWILIO_AUTH_TOKEN",
  "TWILIO_FROM_NUMBER",
  "TWILIO_MESSAGING_SERVICE_SID",
  "TWILIO_API_BASE_URL",
  "VOICE_DISPATCH_URL",
  "VOICE_DISPATCH_SECRET",
  "UNKNOWN_RECONCILE_AFTER_SECONDS",
  "ROUTINE_HTTP_ALLOWLIST",
  "ROUTINE_HTTP_SECRET",
  "RENDER_MAX_SEGMENTS",
];

/**
 * What a Deno child process needs to fetch packages on this machine: its cache
 * folder, the proxy settings, and the system's CA store. Deno trusts only its
 * own root store unless told otherwise, which fails behind a TLS-inspecting
 * proxy whose CA only the system store holds.
 */
export function denoNetworkEnv(env: Record<string, string> = Deno.env.toObject()) {
  const passed = [
    "DENO_DIR",
    "DENO_CERT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
  ];
  return { ...pick(env, passed), DENO_TLS_CA_STORE: env.DENO_TLS_CA_STORE || "system" };
}

export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) continue;
    let value = match[2];
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    out[match[1]] = value;
  }
  return out;
}

export async function loadLocalEnv(root: string): Promise<Record<string, string>> {
  const file = join(root, ".env");
  const fromFile = (await exists(file)) ? parseDotenv(await Deno.readTextFile(file)) : {};
  return { ...fromFile, ...Deno.env.toObject() };
}

export function pick(env: Record<string, string>, keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.filter((k) => env[k]).map((k) => [k, env[k]]));
}
