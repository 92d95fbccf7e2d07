// Logging that never carries a full phone number, in messages, fields or errors.

// International: a plus (or its URL encoding) and digit groups, as E.164 or as
// people write it ("+1 (201) 555-0123", "+44 20 7555 0188").
const INTERNATIONAL = String.raw`(?:\+|%2B)\d+(?:[ .-]?\(\d+\)[ .-]?\d+|[ .-]\d+)*`;
// North American without the plus, only with its 3-3-4 separators, so dates
// (4-2-2), times and UUIDs (8-4-4-4-12) never look like one.
const NATIONAL = String
  .raw`(?<![\w.+-])(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-])`;
const PHONE = new RegExp(`${INTERNATIONAL}|${NATIONAL}`, "gi");
const MIN_DIGITS = 7;

export function maskPhone(value: string): string {
  return value.replace(PHONE, (match) => {
    const digits = match.replace(/^%2B/i, "+").replace(/\D/g, "");
    if (digits.length < MIN_DIGITS) return match;
    const prefix = /^\+|^%2B/i.exec(match)?.[0] ?? "";
    return `${prefix}${"*".repeat(digits.length - 4)}${digits.slice(-4)}`;
  });
}

/** What an error says, as plain fields: message, SQLSTATE and driver detail, cause. */
export function describeError(err: unknown, depth = 0): Record<string, unknown> | string {
  if (!(err instanceof Error)) return String(err);
  const extra = err as Error & { code?: unknown; detail?: unknown; hint?: unknown };
  const described: Record<string, unknown> = { name: err.name, message: err.message };
  for (const key of ["code", "detail", "hint"] as const) {
    if (extra[key] !== undefined) described[key] = String(extra[key]);
  }
  if (err.cause !== undefined && depth < 3) described.cause = describeError(err.cause, depth + 1);
  return described;
}

/** JSON with every string masked and every Error spelled out (JSON would give `{}`). */
export function maskedJson(record: Record<string, unknown>): string {
  return JSON.stringify(record, (_key, value) => {
    if (value instanceof Error) return describeError(value);
    return typeof value === "string" ? maskPhone(value) : value;
  });
}

export function logInfo(
  scope: string,
  message: string,
  fields: Record<string, unknown> = {},
): void {
  console.log(maskedJson({ level: "info", scope, message, ...fields }));
}

/** An error for the operator's log: its full detail, phone numbers masked. */
export function logError(
  scope: string,
  message: string,
  err: unknown,
  fields: Record<string, unknown> = {},
): void {
  console.error(maskedJson({ level: "error", scope, message, ...fields, error: err }));
}
