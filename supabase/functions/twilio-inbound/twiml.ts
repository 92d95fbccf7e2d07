const ENTITIES: Record<string, string> = {
  "<": "&lt;",
  ">": "&gt;",
  "&": "&amp;",
  '"': "&quot;",
  "'": "&apos;",
  // A literal CR would reach Twilio as LF (XML normalises line ends); the reference keeps it.
  "\r": "&#13;",
};

// Characters XML 1.0 forbids anywhere, even as references: C0 controls other than tab, LF and
// CR, U+FFFE and U+FFFF, and unpaired surrogates. One of them makes the whole answer unparsable,
// so the reply would be lost; dropping it loses only that character.
// deno-lint-ignore no-control-regex -- matching control characters is the point
const FORBIDDEN_IN_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDFFF]/gu;

const escapeXml = (text: string) =>
  text.replace(FORBIDDEN_IN_XML, "").replace(/[<>&"'\r]/g, (c) => ENTITIES[c]);

/** A TwiML answer: an SMS reply, or nothing. */
export function twiml(reply: string | null): Response {
  const body = reply === null
    ? "<Response></Response>"
    : `<Response><Message>${escapeXml(reply)}</Message></Response>`;
  return new Response(`<?xml version="1.0" encoding="UTF-8"?>${body}`, {
    headers: { "content-type": "text/xml; charset=utf-8" },
  });
}
