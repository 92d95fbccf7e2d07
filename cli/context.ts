// What every command gets, and what it gives back.
import type { Sql } from "../shared/db.ts";
import type { Parsed } from "./args.ts";
import type { Style } from "./output.ts";

export interface Ctx {
  sql: Sql;
  target: string | undefined;
  flags: Parsed["flags"];
  style: Style;
  /** Asks the operator; true when they agreed (or --yes). */
  confirm: (question: string) => Promise<boolean>;
  /** Writes one line to stdout at once (tail). */
  emit: (line: string) => void;
  /** From the first call on, Ctrl-C aborts this signal instead of ending the process (tail). */
  interrupted: () => AbortSignal;
  env: (name: string) => string | undefined;
}

/** data is printed with --json, text otherwise; ok false means exit 1. */
export interface Outcome {
  data: unknown;
  text: string;
  ok?: boolean;
  /** Already written line by line (tail): nothing more to print. */
  streamed?: boolean;
}

/** Thrown for an expected failure: printed as one line, exit 1. */
export class CommandFailed extends Error {}

/** The user a command names (uuid or phone), as an id; unknown ones fail. */
export async function userId(sql: Sql, ref: string): Promise<string> {
  const [row] = await sql<{ id: string }[]>`select public.operator_user_id(${ref}) as id`;
  return row.id;
}
