// npm test: every check, against a throw-away stack that is never the
// development one. Ends with one line `N passed, N failed`.
import { join } from "node:path";
import { TEST_PACKAGES } from "./local/packages.ts";
import { pipeLines } from "./local/process.ts";
import { repoRoot, type Stack, startThrowawayStack } from "./local/stack.ts";

const root = repoRoot();
const secret = `test-secret-${crypto.randomUUID()}`;

interface Tally {
  passed: number;
  failed: number;
}
const total: Tally = { passed: 0, failed: 0 };
const failures: string[] = [];

function record(name: string, result: Tally): void {
  total.passed += result.passed;
  total.failed += result.failed;
  if (result.failed > 0) failures.push(name);
  console.log(`== ${name}: ${result.passed} passed, ${result.failed} failed\n`);
}

/** Runs a command, streaming its output; returns the output and exit code. */
async function step(
  name: string,
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  echo = true,
): Promise<{ code: number; output: string }> {
  console.log(`== ${name}`);
  const child = new Deno.Command(cmd, {
    args,
    cwd: root,
    env: { ...Deno.env.toObject(), NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const onLine = (line: string) => {
    output += line + "\n";
    if (echo) console.log(line);
  };
  await Promise.all([pipeLines(child.stdout, onLine), pipeLines(child.stderr, onLine)]);
  const { code } = await child.status;
  return { code, output };
}

/** A check that passes or fails as a whole. */
async function check(name: string, cmd: string, args: string[], env = {}): Promise<void> {
  const { code } = await step(name, cmd, args, env);
  record(name, code === 0 ? { passed: 1, failed: 0 } : { passed: 0, failed: 1 });
}

const deno = Deno.execPath();
const supabase = join(root, "node_modules/.bin/supabase");
const tsFiles = async () => {
  const files: string[] = [];
  for (const dir of ["cli", "scripts", "sdk", "shared", "supabase/functions", "tests"]) {
    for await (const f of walk(join(root, dir))) files.push(f);
  }
  return files;
};

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* walk(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

// `npm test -- <files>` runs only those Deno (.ts) and pgTAP (.sql) files on a
// throw-away stack, for a quick loop while working; no arguments run everything.
const only = Deno.args;
const onlyDeno = only.filter((f) => f.endsWith(".ts"));
const onlySql = only.filter((f) => f.endsWith(".sql"));

// Static checks first: they need no database.
if (only.length === 0) {
  await check("deno fmt --check", deno, ["fmt", "--check"]);
  await check("deno lint", deno, ["lint"]);
  await check("deno check", deno, ["check", ...(await tsFiles())]);
}

let stack: Stack | undefined;
const stackLog: string[] = [];
try {
  stack = await startThrowawayStack({
    name: "test",
    secret,
    extraPackages: TEST_PACKAGES,
    log: (line) => stackLog.push(line),
  });
  const testEnv = {
    TEST_DB_URL: stack.dbUrl,
    TEST_API_URL: stack.apiUrl,
    ORCHESTRATOR_SECRET: secret,
    TEST_CATCHER_URL: stack.fakes.smsCatcherUrl!,
    TEST_CLAUDE_URL: stack.fakes.scriptedClaudeUrl!,
    TEST_STACK_URL: stack.controlUrl!,
  };

  const denoTests = only.length && !onlyDeno.length
    ? { code: 0, output: "0 passed | 0 failed" }
    : await step(
      "deno test",
      deno,
      ["test", "-A", ...(only.length ? onlyDeno : ["tests/"])],
      testEnv,
    );
  const denoSummary = /(\d+) passed.*?\| (\d+) failed/.exec(denoTests.output);
  record(
    "deno test",
    denoSummary
      ? { passed: Number(denoSummary[1]), failed: Number(denoSummary[2]) }
      : { passed: 0, failed: 1 },
  );

  const sqlFiles: string[] = [...onlySql];
  if (only.length === 0) {
    for await (const f of Deno.readDir(join(root, "tests/sql"))) {
      if (f.name.endsWith(".sql")) sqlFiles.push(join("tests/sql", f.name));
    }
  }
  const url = new URL(stack.dbUrl);
  const prove = sqlFiles.length === 0
    ? { code: 0, output: "Tests=0" }
    : await step("pg_prove", "pg_prove", [
      "--host",
      url.hostname,
      "--port",
      url.port,
      "--username",
      "postgres",
      "--dbname",
      "postgres",
      ...sqlFiles.sort(),
    ], { PGPASSWORD: "postgres" });
  const planned = Number(/Tests=(\d+)/.exec(prove.output)?.[1] ?? 0);
  const provedFailed = [...prove.output.matchAll(/Failed (\d+)\/\d+ subtests/g)]
    .reduce((n, m) => n + Number(m[1]), 0);
  const proveFailed = prove.code === 0 ? 0 : Math.max(provedFailed, 1);
  record("pg_prove", { passed: Math.max(planned - proveFailed, 0), failed: proveFailed });

  if (only.length === 0) await checkDatabase(stack.dbUrl);
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  record("local stack", { passed: 0, failed: 1 });
} finally {
  await stack?.stop();
}

/** supabase db lint and supabase db advisors against the test database. */
async function checkDatabase(dbUrl: string): Promise<void> {
  const dbEnv = { PGSSLMODE: "disable", DO_NOT_TRACK: "1" };
  await check("supabase db lint", supabase, [
    "db",
    "lint",
    `--remote=${dbUrl}`,
    "--level",
    "warning",
    "--fail-on",
    "error",
  ], dbEnv);

  const advisors = await step(
    "supabase db advisors",
    supabase,
    [
      "db",
      "advisors",
      `--remote=${dbUrl}`,
      "--level",
      "info",
      "--output-format",
      "json",
    ],
    dbEnv,
    false,
  );
  record("supabase db advisors", judgeAdvisors(advisors.code, advisors.output));
}

/** Zero security findings and zero errors of any kind; the rest is listed. */
function judgeAdvisors(code: number, output: string): Tally {
  const start = output.indexOf("{");
  if (code !== 0 || start < 0) {
    console.log(output);
    return { passed: 0, failed: 1 };
  }
  const { results } = JSON.parse(output.slice(start)) as {
    results: { level: string; categories: string[]; name: string; detail: string }[];
  };
  const counts = new Map<string, number>();
  for (const f of results) {
    const key = `${f.level} ${f.categories.join("/")} ${f.name}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  for (const [key, n] of counts) console.log(`   ${n} x ${key}`);
  const bad = results.filter((f) => f.categories.includes("SECURITY") || f.level === "ERROR");
  for (const f of bad) console.log(`   finding: ${f.level} ${f.name}: ${f.detail}`);
  console.log(`   security findings: ${bad.length}`);
  return bad.length ? { passed: 0, failed: 1 } : { passed: 1, failed: 0 };
}

if (total.failed > 0) {
  console.log(`Failed: ${failures.join(", ")}`);
  if (stackLog.length) console.log(`Stack log (last 50 lines):\n${stackLog.slice(-50).join("\n")}`);
}
console.log(`${total.passed} passed, ${total.failed} failed`);
Deno.exit(total.failed > 0 ? 1 : 0);
