const escapeXml = (text: string) =>
  text.replace(
    /[<>&"']/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!,
  );

/** A TwiML answer: an SMS reply, or nothing. */
export function twiml(reply: string | null): Response {
  const body = reply === null
    ? "<Response></Response>"
    : `<Response><Message>${escapeXml(reply)}</Message></Response>`;
  return new Response(`<?xml version="1.0" encoding="UTF-8"?>${body}`, {
    headers: { "content-type": "text/xml; charset=utf-8" },
  });
}
