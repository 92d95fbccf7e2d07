// The command line: words and --flags split apart, then each command's shape
// checked with zod. Anything that does not fit is a UsageError (exit 2).
import { z } from "zod";

export class UsageError extends Error {}

const FLAGS_WITH_VALUE = new Set([
  "db-url",
  "user",
  "status",
  "since",
  "limit",
  "format",
  "reason",
  "interval",
  "api-url",
]);
const BOOLEAN_FLAGS = new Set(["json", "yes", "reveal", "help", "no-color"]);

export interface RawArgs {
  words: string[];
  flags: Record<string, string | boolean>;
}

/** Splits argv into positional words and flags (`--x v`, `--x=v`, `--bool`). */
export function splitArgs(argv: string[]): RawArgs {
  const words: string[] = [];
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) {
      words.push(arg);
      continue;
    }
    const [name, inline] = splitFlag(arg.slice(2));
    if (BOOLEAN_FLAGS.has(name)) {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      flags[name] = true;
    } else if (FLAGS_WITH_VALUE.has(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined || (inline === undefined && value.startsWith("--"))) {
        throw new UsageError(`--${name} needs a value`);
      }
      flags[name] = value;
    } else {
      throw new UsageError(`unknown option --${name}`);
    }
  }
  return { words, flags };
}

function splitFlag(text: string): [string, string | undefined] {
  const eq = text.indexOf("=");
  return eq < 0 ? [text, undefined] : [text.slice(0, eq), text.slice(eq + 1)];
}

const DURATION = /^(\d+)\s*(s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--since`: a duration back from now (30m, 2h, 7d) or an ISO 8601 instant. */
export function parseSince(value: string, now: number): Date | null {
  const d = DURATION.exec(value.trim());
  if (d) return new Date(now - Number(d[1]) * UNIT_MS[d[2]]);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value)) return null;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? null : at;
}

const uuid = z.string().regex(
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  "must be a uuid",
);
const userRef = z.string().regex(
  /^(\+[1-9]\d{6,14}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i,
  "must be a user id (uuid) or an E.164 phone number",
);
const since = z.string().transform((value, ctx) => {
  const at = parseSince(value, Date.now());
  if (!at) {
    ctx.addIssue({ code: "custom", message: "must be a duration (30m, 2h, 7d) or an ISO instant" });
    return z.NEVER;
  }
  return at;
});
const limit = z.coerce.number().int().min(1).max(10_000);
const reason = z.string().min(1).max(500);

const common = {
  json: z.boolean().default(false),
  yes: z.boolean().default(false),
  reveal: z.boolean().default(false),
  "no-color": z.boolean().default(false),
  "db-url": z.string().min(1).optional(),
};

const listFlags = {
  user: userRef.optional(),
  status: z.string().regex(/^[a-z_]{1,32}$/, "must be a status name").optional(),
  since: since.optional(),
  limit: limit.default(50),
};

const one = (schema: z.ZodString, what: string) =>
  z.array(z.string()).length(1, `needs exactly one ${what}`).transform((w) => w[0]).pipe(schema);
const none = z.array(z.string()).length(0, "takes no arguments");

// Each command: what its words are, and which flags beyond the common ones it takes.
export const COMMANDS = {
  status: { words: none, flags: {} },
  user: { words: one(userRef, "user (id or phone)"), flags: {} },
  why: { words: one(uuid, "message id"), flags: {} },
  queue: { words: none, flags: listFlags },
  calls: { words: none, flags: listFlags },
  analyses: { words: none, flags: listFlags },
  routines: { words: none, flags: listFlags },
  cancel: { words: one(uuid, "message id"), flags: { reason: reason.optional() } },
  retry: { words: one(uuid, "message id"), flags: {} },
  redrive: { words: one(uuid, "interaction id"), flags: {} },
  skip: { words: one(uuid, "call id"), flags: { reason: reason.optional() } },
  pause: { words: one(uuid, "routine id"), flags: {} },
  resume: { words: one(uuid, "routine id"), flags: {} },
  export: {
    words: one(userRef, "user (id or phone)"),
    flags: { format: z.enum(["json", "markdown"]).default("json") },
  },
  forget: { words: one(userRef, "user (id or phone)"), flags: {} },
  tail: {
    words: none,
    flags: {
      since: since.optional(),
      interval: z.coerce.number().min(0.1).max(60).default(1),
      user: userRef.optional(),
    },
  },
  doctor: { words: none, flags: { "api-url": z.url().optional() } },
} as const;

export type CommandName = keyof typeof COMMANDS;

export interface Parsed {
  command: CommandName | "help";
  target: string | undefined;
  flags: Record<string, unknown> & {
    json: boolean;
    yes: boolean;
    reveal: boolean;
    "no-color": boolean;
    "db-url"?: string;
  };
}

/** The whole command line, checked; throws UsageError naming what is wrong. */
export function parseArgs(argv: string[]): Parsed {
  const { words, flags } = splitArgs(argv);
  const [name, ...rest] = words;
  if (!name || name === "help" || flags.help) {
    return { command: "help", target: name === "help" ? rest[0] : name, flags: baseFlags(flags) };
  }
  if (!(name in COMMANDS)) throw new UsageError(`unknown command ${name}`);
  const command = name as CommandName;
  const spec = COMMANDS[command];
  const schema = z.object({
    words: spec.words,
    flags: z.object({ ...common, ...spec.flags }).strict(),
  });
  const result = schema.safeParse({ words: rest, flags });
  if (!result.success) throw new UsageError(`${command}: ${describeIssues(result.error)}`);
  const data = result.data as { words: string | string[]; flags: Parsed["flags"] };
  return {
    command,
    target: typeof data.words === "string" ? data.words : undefined,
    flags: data.flags,
  };
}

function baseFlags(flags: Record<string, string | boolean>): Parsed["flags"] {
  return {
    json: flags.json === true,
    yes: flags.yes === true,
    reveal: flags.reveal === true,
    "no-color": flags["no-color"] === true,
  };
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => {
    const [where, key] = issue.path;
    if (where === "flags" && issue.code === "unrecognized_keys") {
      return `does not take ${issue.keys.map((k) => `--${k}`).join(", ")}`;
    }
    const name = where === "flags" ? `--${String(key)}` : "argument";
    return `${name} ${issue.message}`;
  }).join("; ");
}

export const USAGE = `npx orchestrator <command> [options]

Reading
  status                         queue, sends, deferrals, failures, analyses, calls, runs, cost
  user <phone|id> [--reveal]     one user: profile, budget, memory, commitments, queue, texts
  why <message-id>               the life of one message, in the user's local time
  queue | calls | analyses | routines [--user U] [--status S] [--since 2h|ISO] [--limit N]
  tail [--since 10m] [--user U]  follows new events until Ctrl-C
  export <phone|id> [--format json|markdown]
  doctor [--api-url URL]         checks a deployment and says what to fix

Acting (each asks for confirmation unless --yes)
  cancel <message-id> [--reason R]   a queued message
  retry <message-id>                 a failed message, back to queued
  redrive <interaction-id>           a failed analysis, run again
  skip <call-id> [--reason R]        one occurrence of a scheduled call
  pause <routine-id> | resume <routine-id>
  forget <phone|id>                  deletes everything held about a user

Options
  --db-url URL   else SUPABASE_DB_URL, else the local stack (127.0.0.1:54322)
  --json         machine-readable output (tail: one JSON object per line)
  --yes          no confirmation     --reveal  full phone numbers
  --no-color     plain text (also when piped, or NO_COLOR is set)

Exit codes: 0 ok, 1 failed (check failed, unknown id, database unreachable), 2 bad usage.`;
