// Twilio's X-Twilio-Signature: HMAC-SHA1, keyed with the auth token, over the full webhook URL
// followed by every POST parameter as name then value, sorted by name, base64-encoded.
import { timingSafeEqual } from "../secrets.ts";

export type TwilioParams = Record<string, string> | URLSearchParams;

const encoder = new TextEncoder();

// Plain code-unit order, not localeCompare: Twilio sorts case-sensitively ("Unix-style").
const DEFAULT_PORTS: Record<string, string | undefined> = { "https:": "443", "http:": "80" };

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

// A repeated name contributes one name+value pair per value, its values sorted, as Twilio's
// helper libraries do.
function sortedPairs(params: TwilioParams): [string, string][] {
  const pairs = params instanceof URLSearchParams ? [...params] : Object.entries(params);
  return pairs.sort(([ak, av], [bk, bv]) => byCodeUnit(ak, bk) || byCodeUnit(av, bv));
}

export async function twilioSignature(
  authToken: string,
  url: string,
  params: TwilioParams,
): Promise<string> {
  const data = sortedPairs(params).reduce((acc, [name, value]) => acc + name + value, url);
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(authToken),
    { name: "HMAC", hash: "SHA-1" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(data)));
  return btoa(String.fromCharCode(...mac));
}

// Twilio sometimes signs with the scheme's default port written out and sometimes without it,
// so its own helper libraries accept either form; so do we. Any other port must match as given.
function urlVariants(url: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [url];
  }
  const defaultPort = DEFAULT_PORTS[parsed.protocol];
  if (!defaultPort || parsed.port !== "") return [url];
  const userinfo = parsed.username
    ? `${parsed.username}${parsed.password ? `:${parsed.password}` : ""}@`
    : "";
  const withPort = `${parsed.protocol}//${userinfo}${parsed.hostname}:${defaultPort}` +
    `${parsed.pathname}${parsed.search}${parsed.hash}`;
  return [...new Set([url, parsed.href, withPort])];
}

export async function isValidTwilioSignature(
  authToken: string,
  url: string,
  params: TwilioParams,
  signatureHeader: string | null,
): Promise<boolean> {
  // An empty token would make every forger's job trivial; treat it as "cannot verify".
  if (!signatureHeader || !authToken) return false;
  const expected = await Promise.all(
    urlVariants(url).map((variant) => twilioSignature(authToken, variant, params)),
  );
  // Compare against every variant so the time taken does not reveal which one matched.
  return expected.map((sig) => timingSafeEqual(signatureHeader, sig)).some(Boolean);
}
