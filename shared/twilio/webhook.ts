// Reading a Twilio webhook: a form body under the size limit whose
// X-Twilio-Signature matches the public URL Twilio called. Anything else is
// refused before it can change state.
import { HttpError, readBodyText, requireMethod } from "../http.ts";
import { isValidTwilioSignature } from "./signature.ts";

/** The URL Twilio signed: the function's public address plus the query it was given. */
export function publicUrl(functionsBaseUrl: string, req: Request): string {
  const { pathname, search } = new URL(req.url);
  const name = pathname.split("/").filter(Boolean).pop() ?? "";
  return `${functionsBaseUrl.replace(/\/+$/, "")}/${name}${search}`;
}

export async function readTwilioWebhook(
  req: Request,
  opts: { authToken: string; functionsUrl: string },
): Promise<Record<string, string>> {
  requireMethod(req, "POST");
  const type = req.headers.get("content-type") ?? "";
  if (!type.toLowerCase().startsWith("application/x-www-form-urlencoded")) {
    throw new HttpError(
      415,
      "unsupported_media_type",
      "expected application/x-www-form-urlencoded",
    );
  }
  const params = new URLSearchParams(await readBodyText(req, 64 * 1024));
  const signature = req.headers.get("x-twilio-signature");
  const url = publicUrl(opts.functionsUrl, req);
  if (!isValidTwilioSignature(opts.authToken, url, params, signature)) {
    throw new HttpError(403, "invalid_signature", "X-Twilio-Signature does not match");
  }
  return Object.fromEntries(params);
}
