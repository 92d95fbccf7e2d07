// Which database the CLI talks to, and what a failure there means to the operator.
import { connect, type Sql } from "../shared/db.ts";

export const LOCAL_DB_URL = "postgresql://postgres:postgres@127.0.0.1:54322/postgres";

/** --db-url, else SUPABASE_DB_URL, else the local stack. */
export function resolveDbUrl(flag: string | undefined, env: (name: string) => string | undefined) {
  return flag ?? env("SUPABASE_DB_URL") ?? LOCAL_DB_URL;
}

/** The URL without its password, fit to print. */
export function describeDbUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || "5432"}${u.pathname}`;
  } catch {
    return "(an unparsable database URL)";
  }
}

export function openDb(url: string): Sql {
  return connect(url, 2);
}

/** A failure the CLI reports in one line (exit 1) instead of a stack trace. */
export class CliFailure extends Error {}

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
]);

/** What went wrong, in words an operator can act on. */
export function explainDbError(err: unknown, url: string): string {
  const e = err as { code?: string; message?: string; name?: string };
  const where = describeDbUrl(url);
  const message = e?.message ?? String(err);
  const sqlstate = /^[0-9A-Z]{5}$/.test(e?.code ?? "") ? e.code : undefined;
  if (
    !sqlstate &&
    (CONNECTION_CODES.has(e?.code ?? "") || /ECONNREFUSED|getaddrinfo|connect/i.test(message))
  ) {
    return `cannot reach the database at ${where} (${e?.code ?? message}). ` +
      "Start the local stack (npm start), or pass --db-url / set SUPABASE_DB_URL.";
  }
  switch (sqlstate) {
    case "28P01":
    case "28000":
      return `the database at ${where} refused the login: check the user and password in the URL`;
    case "3D000":
      return `no such database at ${where}`;
    case "42P01":
    case "42883":
      return `${message}: the operator views are missing; apply the migrations (supabase db push)`;
    case "P0002":
      return message;
    case "22023":
    case "22P02":
      return message;
  }
  return sqlstate ? `database error ${sqlstate}: ${message}` : message;
}
