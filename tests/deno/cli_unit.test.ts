// The CLI's pure parts: argument rules, --since, doctor's judgements, masking.
import assert from "node:assert/strict";
import { parseArgs, parseSince, UsageError } from "../../cli/args.ts";
import {
  claudeCheck,
  cronCheck,
  declaredFunctions,
  functionCheck,
  migrationsCheck,
  netCheck,
  twilioCheck,
} from "../../cli/commands/doctor.ts";
import { describeDbUrl, explainDbError, resolveDbUrl } from "../../cli/db.ts";
import { maskPhones, PLAIN, table } from "../../cli/output.ts";

Deno.test("arguments: each command's words and flags are checked", () => {
  const id = crypto.randomUUID();
  assert.deepEqual(parseArgs(["why", id, "--json"]).target, id);
  const q = parseArgs(["queue", "--status=failed", "--limit", "5", "--user", "+12015550101"]);
  assert.deepEqual([q.flags.status, q.flags.limit, q.flags.user], ["failed", 5, "+12015550101"]);
  assert.equal(parseArgs(["export", id]).flags.format, "json");
  for (
    const argv of [
      ["why", id, id],
      ["cancel"],
      ["queue", "--limit"],
      ["status", "--json=yes"],
      ["skip", "x"],
      ["tail", "--interval", "0"],
    ]
  ) {
    assert.throws(() => parseArgs(argv), UsageError, argv.join(" "));
  }
  assert.equal(parseArgs([]).command, "help");
});

Deno.test("--since takes a duration back from now or an ISO instant", () => {
  const now = Date.parse("2026-12-01T12:00:00Z");
  assert.equal(parseSince("30m", now)!.toISOString(), "2026-12-01T11:30:00.000Z");
  assert.equal(parseSince("2d", now)!.toISOString(), "2026-11-29T12:00:00.000Z");
  assert.equal(parseSince("2026-11-30T08:00:00Z", now)!.toISOString(), "2026-11-30T08:00:00.000Z");
  assert.equal(parseSince("yesterday", now), null);
  assert.equal(parseSince("2026-13-45", now), null);
});

Deno.test("the database URL: flag, then SUPABASE_DB_URL, then the local stack; never the password", () => {
  const env = (v?: string) => (name: string) => (name === "SUPABASE_DB_URL" ? v : undefined);
  assert.equal(resolveDbUrl("postgresql://a@h/x", env("postgresql://b@h/y")), "postgresql://a@h/x");
  assert.equal(resolveDbUrl(undefined, env("postgresql://b@h/y")), "postgresql://b@h/y");
  assert.match(resolveDbUrl(undefined, env()), /127\.0\.0\.1:54322/);
  assert.equal(
    describeDbUrl("postgresql://u:secret@db.example.com:6543/postgres"),
    "db.example.com:6543/postgres",
  );
  const refused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:5432"), {
    code: "ECONNREFUSED",
  });
  assert.match(
    explainDbError(refused, "postgresql://u:secret@10.0.0.1/postgres"),
    /cannot reach the database at 10\.0\.0\.1:5432/,
  );
  const unknown = Object.assign(new Error("unknown message 1"), { code: "P0002" });
  assert.equal(explainDbError(unknown, "postgresql://h/x"), "unknown message 1");
});

Deno.test("doctor: each judgement and its fix", () => {
  assert.equal(migrationsCheck(["1", "2"], ["1", "2"]).verdict, "ok");
  assert.deepEqual(migrationsCheck(["1", "2", "3"], ["1"]), {
    name: "migrations",
    verdict: "fail",
    detail: "2 not applied: 2, 3",
    fix: "supabase db push",
  });
  assert.equal(migrationsCheck(["1"], null).verdict, "fail");

  const now = new Date("2026-12-01T12:00:30Z");
  const run = (status: string, at = "2026-12-01T12:00:00Z") => ({
    status,
    start_time: at,
    message: "boom",
  });
  const cron = {
    job_present: true,
    job_active: true,
    runs_24h: 10,
    failed_24h: 0,
    last_runs: [run("succeeded")],
  };
  assert.equal(cronCheck(cron, now).verdict, "ok");
  assert.equal(cronCheck({ ...cron, job_present: false }, now).verdict, "fail");
  assert.match(cronCheck({ ...cron, job_active: false }, now).fix!, /set active = true/);
  assert.match(
    cronCheck({ ...cron, last_runs: [run("failed")] }, now).detail,
    /last run failed: boom/,
  );
  assert.equal(
    cronCheck({ ...cron, last_runs: [run("succeeded", "2026-12-01T11:00:00Z")] }, now).verdict,
    "warn",
  );

  const net = { responses_1h: 3, errors_1h: 0, statuses_1h: { "200": 3 }, last_error: null };
  assert.equal(netCheck(net).verdict, "ok");
  assert.equal(netCheck({ ...net, errors_1h: 3 }).verdict, "fail");
  assert.equal(netCheck({ ...net, responses_1h: 0 }).verdict, "warn");

  const signals = {
    last_run_at: null,
    twilio: "configured",
    voice: null,
    claude_calls_7d: 2,
    claude_not_configured_6h: 0,
  };
  assert.equal(twilioCheck(signals).verdict, "ok");
  assert.match(
    twilioCheck({ ...signals, twilio: "not configured" }).fix!,
    /supabase secrets set TWILIO_ACCOUNT_SID/,
  );
  assert.equal(claudeCheck(signals).verdict, "ok");
  assert.match(claudeCheck({ ...signals, claude_not_configured_6h: 1 }).fix!, /ANTHROPIC_API_KEY/);

  assert.equal(functionCheck("health", 200, '{"status":"ok"}').verdict, "ok");
  assert.equal(functionCheck("health", 503, "{}").verdict, "fail");
  assert.equal(functionCheck("mcp", 405, "").verdict, "ok");
  assert.match(functionCheck("mcp", 404, "").fix!, /supabase functions deploy mcp/);
  assert.equal(functionCheck("mcp", "connection refused", "").verdict, "fail");
  assert.deepEqual(
    declaredFunctions("[functions.agents]\nx = 1\n[functions.health]\n[api]\n[functions.mcp]"),
    ["health", "agents", "mcp"],
  );
});

Deno.test("output: phone fields masked at any depth; tables aligned, empty ones say so", () => {
  const masked = maskPhones({
    phone_number: "+12015550142",
    rows: [{ to_number: "+12015550143", body: "hi" }],
  });
  assert.deepEqual(masked, {
    phone_number: "+*******0142",
    rows: [{ to_number: "+*******0143", body: "hi" }],
  });
  assert.equal(
    table(PLAIN, ["a", "bb"], [{ a: "x", bb: null }, { a: "long", bb: 2 }]),
    "a     bb\nx     -\nlong  2",
  );
  assert.equal(table(PLAIN, ["a"], []), "(none)");
});
