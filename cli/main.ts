// npx orchestrator <command>: the operator's CLI. Exit 0 ok, 1 failed (a check,
// an unknown id, a refused state change, an unreachable database), 2 bad usage.
// Errors are one line on stderr, never a stack trace.
import { type CommandName, parseArgs, type Parsed, USAGE, UsageError } from "./args.ts";
import { CommandFailed, type Ctx, type Outcome } from "./context.ts";
import { describeDbUrl, explainDbError, openDb, resolveDbUrl } from "./db.ts";
import { COLOUR, PLAIN } from "./output.ts";
import { cancel, forget, pause, redrive, resume, retry, skip } from "./commands/actions.ts";
import { doctor } from "./commands/doctor.ts";
import { exportUser } from "./commands/export.ts";
import { analyses, calls, queue, routines } from "./commands/lists.ts";
import { status } from "./commands/status.ts";
import { tail } from "./commands/tail.ts";
import { user } from "./commands/user.ts";
import { why } from "./commands/why.ts";

const HANDLERS: Record<CommandName, (ctx: Ctx) => Promise<Outcome>> = {
  status,
  user,
  why,
  queue,
  calls,
  analyses,
  routines,
  cancel,
  retry,
  redrive,
  skip,
  pause,
  resume,
  export: exportUser,
  forget,
  tail,
  doctor,
};

export interface Io {
  args: string[];
  env: (name: string) => string | undefined;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  isTerminal: boolean;
  /** One line typed by the operator, or null at end of input. */
  readLine: () => Promise<string | null>;
  interrupted: () => AbortSignal;
}

export async function run(io: Io): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(io.args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`orchestrator: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.command === "help") {
    if (parsed.target && parsed.target !== "help") {
      io.stderr(`orchestrator: unknown command ${parsed.target}\n\n${USAGE}`);
      return 2;
    }
    io.stdout(USAGE);
    return 0;
  }
  const colour = io.isTerminal && !parsed.flags["no-color"] && !io.env("NO_COLOR") &&
    !parsed.flags.json;
  const url = resolveDbUrl(parsed.flags["db-url"], io.env);
  const sql = openDb(url);
  const ctx: Ctx = {
    sql,
    target: parsed.target,
    flags: parsed.flags,
    style: colour ? COLOUR : PLAIN,
    confirm: (question) => confirm(io, parsed.flags.yes, question),
    emit: io.stdout,
    interrupted: io.interrupted,
    env: io.env,
  };
  try {
    const outcome = await HANDLERS[parsed.command](ctx);
    if (!outcome.streamed) {
      io.stdout(parsed.flags.json ? JSON.stringify(outcome.data, null, 2) : outcome.text);
    }
    return outcome.ok === false ? 1 : 0;
  } catch (err) {
    const message = err instanceof CommandFailed ? err.message : explainDbError(err, url);
    if (parsed.flags.json) io.stdout(JSON.stringify({ error: message }));
    io.stderr(`orchestrator ${parsed.command}: ${message}`);
    if (!(err instanceof CommandFailed) && io.env("ORCHESTRATOR_DEBUG")) {
      io.stderr(`(database ${describeDbUrl(url)}) ${err instanceof Error ? err.stack : err}`);
    }
    return 1;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/** --yes, else a y/yes typed on stdin; the question goes to stderr so --json stays clean. */
async function confirm(io: Io, yes: boolean, question: string): Promise<boolean> {
  if (yes) return true;
  io.stderr(`${question} [y/N] `);
  const answer = await io.readLine();
  return answer !== null && /^\s*y(es)?\s*$/i.test(answer);
}

function denoIo(): Io {
  const encoder = new TextEncoder();
  let controller: AbortController | undefined;
  let lines: AsyncIterator<string> | undefined;
  return {
    args: Deno.args,
    env: (name) => Deno.env.get(name),
    stdout: (text) => Deno.stdout.writeSync(encoder.encode(`${text}\n`)),
    stderr: (text) => Deno.stderr.writeSync(encoder.encode(`${text}\n`)),
    isTerminal: Deno.stdout.isTerminal(),
    readLine: async () => {
      lines ??= Deno.stdin.readable.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines())
        [Symbol.asyncIterator]();
      const next = await lines.next();
      return next.done ? null : next.value;
    },
    interrupted: () => {
      if (!controller) {
        const c = controller = new AbortController();
        Deno.addSignalListener("SIGINT", () => c.abort());
      }
      return controller.signal;
    },
  };
}

function splitLines(): TransformStream<string, string> {
  let buffer = "";
  return new TransformStream({
    transform(chunk, out) {
      buffer += chunk;
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      for (const p of parts) out.enqueue(p);
    },
    flush(out) {
      if (buffer) out.enqueue(buffer);
    },
  });
}

if (import.meta.main) {
  const io = denoIo();
  let code: number;
  try {
    code = await run(io);
  } catch (err) {
    io.stderr(`orchestrator: ${err instanceof Error ? err.message : String(err)}`);
    code = 1;
  }
  Deno.exit(code);
}
