// Text for people: aligned tables, colour only on a terminal. Pure functions.
import { maskPhone } from "../shared/log.ts";

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
}

const code = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;
export const COLOUR: Style = {
  bold: code(1, 22),
  dim: code(2, 22),
  red: code(31, 39),
  green: code(32, 39),
  yellow: code(33, 39),
};
const same = (s: string) => s;
export const PLAIN: Style = { bold: same, dim: same, red: same, green: same, yellow: same };

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;
const visibleLength = (s: string) => s.replace(ANSI, "").length;

/** A cell as text: instants as ISO minutes in UTC, nulls as a dash. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === "") return "-";
  if (value instanceof Date) return isoMinute(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value).replace(/\s+/g, " ");
}

export function isoMinute(at: Date | string): string {
  const d = at instanceof Date ? at : new Date(at);
  return Number.isNaN(d.getTime())
    ? String(at)
    : d.toISOString().slice(0, 16).replace("T", " ") + "Z";
}

const MAX_CELL = 60;
const clip = (s: string) => (s.length > MAX_CELL ? `${s.slice(0, MAX_CELL - 1)}…` : s);

/** Rows as an aligned table under bold headers; an empty list says so. */
export function table(
  style: Style,
  columns: string[],
  rows: Record<string, unknown>[],
  paint: (column: string, text: string) => string = (_c, t) => t,
): string {
  if (rows.length === 0) return style.dim("(none)");
  const texts = rows.map((r) => columns.map((c) => paint(c, clip(cell(r[c])))));
  const widths = columns.map((c, i) =>
    Math.max(c.length, ...texts.map((t) => visibleLength(t[i])))
  );
  const pad = (s: string, i: number) => s + " ".repeat(widths[i] - visibleLength(s));
  const line = (cells: string[]) => cells.map(pad).join("  ").trimEnd();
  return [style.bold(line(columns)), ...texts.map(line)].join("\n");
}

/** `label  value` lines with the labels aligned. */
export function fields(style: Style, pairs: [string, unknown][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${style.bold(k.padEnd(width))}  ${cell(v)}`).join("\n");
}

/** Colours a state word by what it means for the operator. */
export function paintState(style: Style, text: string): string {
  if (/^(ok|delivered|sent|done|succeeded|completed|active|configured)\b/.test(text)) {
    return style.green(text);
  }
  if (/^(fail|failed|error|unknown|undelivered|cancelled|expired|superseded)\b/.test(text)) {
    return style.red(text);
  }
  if (/^(warn|deferred|queued|pending|running|sending|paused|dispatched)\b/.test(text)) {
    return style.yellow(text);
  }
  return text;
}

const PHONE_FIELDS = new Set(["phone_number", "from_number", "to_number", "phone"]);

/** A copy with every phone-number field masked, however deep. */
export function maskPhones<T>(value: T): T {
  if (Array.isArray(value)) return value.map(maskPhones) as T;
  if (value instanceof Date || value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k,
      PHONE_FIELDS.has(k) && typeof v === "string" ? maskPhone(v) : maskPhones(v),
    ]),
  ) as T;
}
