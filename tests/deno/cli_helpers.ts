// Running the operator CLI as an operator would: `node bin/orchestrator.js`
// (what `npx orchestrator` runs), as a subprocess, against the test stack.
import assert from "node:assert/strict";
import { stack } from "./helpers.ts";

const root = new URL("../../", import.meta.url).pathname;
const shim = `${root}bin/orchestrator.js`;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with --db-url of the test stack unless told otherwise. */
export async function cli(
  args: string[],
  o: { stdin?: string; env?: Record<string, string>; dbUrl?: string | null } = {},
): Promise<CliResult> {
  const dbArgs = o.dbUrl === null ? [] : ["--db-url", o.dbUrl ?? stack.dbUrl];
  const child = new Deno.Command("node", {
    args: [shim, ...args, ...dbArgs],
    cwd: root,
    env: { NO_COLOR: "1", ...o.env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  if (o.stdin) await writer.write(new TextEncoder().encode(o.stdin));
  await writer.close();
  const out = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** Runs a command that must succeed with --json, and parses what it printed. */
export async function cliJson<T = Record<string, unknown>>(
  args: string[],
  o: Parameters<typeof cli>[1] = {},
): Promise<T> {
  const r = await cli([...args, "--json"], o);
  assert.equal(r.code, 0, `orchestrator ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A failure must be one clear line: no stack trace, no driver internals. */
export function assertCleanFailure(r: CliResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `expected exit ${code}, got ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  assert.doesNotMatch(r.stderr, /Error:|file:\/\//, "no raw error");
}
