// doctor: checks a deployment end to end and says what to do about each
// failure. The judgements are pure functions of what was read.
import type { Ctx, Outcome } from "../context.ts";
import { paintState, type Style } from "../output.ts";

export type Verdict = "ok" | "warn" | "fail";
export interface Check {
  name: string;
  verdict: Verdict;
  detail: string;
  fix?: string;
}

const check = (name: string, verdict: Verdict, detail: string, fix?: string): Check => ({
  name,
  verdict,
  detail,
  ...(fix ? { fix } : {}),
});

export function migrationsCheck(inRepo: string[] | null, applied: string[] | null): Check {
  if (applied === null) {
    return check(
      "migrations",
      "fail",
      "supabase_migrations.schema_migrations is missing: no migration was applied with the Supabase CLI",
      "supabase db push (or supabase db push --db-url <url>)",
    );
  }
  if (inRepo === null) {
    return check("migrations", "ok", `${applied.length} applied (repository not found to compare)`);
  }
  const missing = inRepo.filter((v) => !applied.includes(v));
  return missing.length
    ? check(
      "migrations",
      "fail",
      `${missing.length} not applied: ${missing.join(", ")}`,
      "supabase db push",
    )
    : check("migrations", "ok", `all ${inRepo.length} applied`);
}

interface Cron {
  job_present: boolean;
  job_active: boolean;
  runs_24h: number;
  failed_24h: number;
  last_runs: { status: string; start_time: string; message: string | null }[];
}

export function cronCheck(cron: Cron, now: Date): Check {
  if (!cron.job_present) {
    return check(
      "pg_cron",
      "fail",
      "the process-queue job is missing",
      "supabase db push (migration 20261122000003 schedules it)",
    );
  }
  if (!cron.job_active) {
    return check(
      "pg_cron",
      "fail",
      "the process-queue job is inactive",
      "update cron.job set active = true where jobname = 'process-queue'",
    );
  }
  const last = cron.last_runs[0];
  if (!last) {
    return check(
      "pg_cron",
      "warn",
      "the job has not run yet",
      "wait a minute; pg_cron must be enabled (Database > Extensions)",
    );
  }
  if (last.status === "failed") {
    return check(
      "pg_cron",
      "fail",
      `the last run failed: ${last.message ?? "no message"}`,
      "select * from cron.job_run_details order by runid desc limit 5",
    );
  }
  const minutes = (now.getTime() - new Date(last.start_time).getTime()) / 60_000;
  if (minutes > 3) {
    return check(
      "pg_cron",
      "warn",
      `no run for ${Math.round(minutes)} minutes`,
      "check that pg_cron runs (locally: shared_preload_libraries = 'pg_cron')",
    );
  }
  return cron.failed_24h > 0
    ? check(
      "pg_cron",
      "warn",
      `running; ${cron.failed_24h} of ${cron.runs_24h} runs failed in 24 h`,
    )
    : check("pg_cron", "ok", `running, ${cron.runs_24h} runs in 24 h, none failed`);
}

export function vaultCheck(names: Record<string, boolean>): Check {
  const missing = Object.entries(names).filter(([, present]) => !present).map(([n]) => n);
  return missing.length
    ? check(
      "vault",
      "fail",
      `missing secret(s): ${missing.join(", ")}`,
      missing.map((n) =>
        n === "project_url"
          ? "select vault.create_secret('https://<project-ref>.supabase.co', 'project_url');"
          : "select vault.create_secret('<ORCHESTRATOR_SECRET>', 'orchestrator_secret');"
      ).join(" "),
    )
    : check("vault", "ok", "project_url and orchestrator_secret present");
}

interface Net {
  responses_1h: number;
  errors_1h: number;
  statuses_1h: Record<string, number>;
  last_error: string | null;
}

export function netCheck(net: Net): Check {
  const statuses = Object.entries(net.statuses_1h).map(([s, n]) => `${s}×${n}`).join(" ");
  if (net.responses_1h === 0) {
    return check(
      "pg_net",
      "warn",
      "no responses in the last hour",
      "pg_cron calls process-queue through pg_net every minute: check both extensions are enabled",
    );
  }
  if (net.errors_1h === net.responses_1h) {
    return check(
      "pg_net",
      "fail",
      `every request failed in the last hour (${statuses}); last: ${net.last_error}`,
      "check the Vault secret project_url and that the functions are deployed",
    );
  }
  return net.errors_1h > 0
    ? check(
      "pg_net",
      "warn",
      `${net.errors_1h} of ${net.responses_1h} failed (${statuses}); last: ${net.last_error}`,
    )
    : check("pg_net", "ok", `answering: ${statuses}`);
}

interface Signals {
  last_run_at: string | null;
  twilio: string | null;
  voice: string | null;
  claude_calls_7d: number;
  claude_not_configured_6h: number;
}

const TWILIO_FIX =
  "supabase secrets set TWILIO_ACCOUNT_SID=... TWILIO_AUTH_TOKEN=... TWILIO_FROM_NUMBER=+1... " +
  "(or TWILIO_MESSAGING_SERVICE_SID)";

export function twilioCheck(s: Signals): Check {
  if (!s.twilio) {
    return check(
      "twilio",
      "warn",
      "no finished process-queue run says",
      "wait for a run, then run doctor again",
    );
  }
  return s.twilio === "configured"
    ? check("twilio", "ok", "the last process-queue run had Twilio configured")
    : check(
      "twilio",
      "fail",
      "the last process-queue run had no Twilio credentials: messages stay queued",
      TWILIO_FIX,
    );
}

const CLAUDE_FIX = "supabase secrets set ANTHROPIC_API_KEY=sk-ant-...";

export function claudeCheck(s: Signals): Check {
  if (s.claude_not_configured_6h > 0) {
    return check(
      "anthropic",
      "fail",
      `analyze-interaction answered "not configured" ${s.claude_not_configured_6h} times in 6 h`,
      CLAUDE_FIX,
    );
  }
  return s.claude_calls_7d > 0
    ? check("anthropic", "ok", `${s.claude_calls_7d} Claude calls in 7 days`)
    : check(
      "anthropic",
      "warn",
      "no Claude call in 7 days; SQL cannot see the function secrets",
      `supabase secrets list should show ANTHROPIC_API_KEY; else ${CLAUDE_FIX}`,
    );
}

/** GET health must say ok; any other function must answer (405 to a GET means it is deployed). */
export function functionCheck(name: string, status: number | string, body: string): Check {
  const label = `function ${name}`;
  if (typeof status === "string") {
    return check(
      label,
      "fail",
      `unreachable: ${status}`,
      "check project_url in Vault and supabase functions deploy",
    );
  }
  if (name === "health") {
    return status === 200 && /"status"\s*:\s*"ok"/.test(body)
      ? check(label, "ok", "200, database connected")
      : check(
        label,
        "fail",
        `answered ${status}`,
        "supabase functions deploy health; check SUPABASE_DB_URL",
      );
  }
  if (status === 404) {
    return check(label, "fail", "not deployed (404)", `supabase functions deploy ${name}`);
  }
  return status >= 500
    ? check(label, "fail", `answered ${status}`, `supabase functions logs ${name}`)
    : check(label, "ok", `answers (${status} to GET)`);
}

/** The functions the repository declares (supabase/config.toml), health first. */
export function declaredFunctions(configToml: string): string[] {
  const names = [...configToml.matchAll(/^\[functions\.([A-Za-z0-9_-]+)\]/gm)].map((m) => m[1]);
  return ["health", ...names.filter((n) => n !== "health")];
}

const repoFile = (path: string) => new URL(`../../${path}`, import.meta.url);

async function repoMigrations(): Promise<string[] | null> {
  try {
    const versions: string[] = [];
    for await (const f of Deno.readDir(repoFile("supabase/migrations"))) {
      const m = /^(\d+)_.*\.sql$/.exec(f.name);
      if (m) versions.push(m[1]);
    }
    return versions.sort();
  } catch {
    return null;
  }
}

async function probe(url: string): Promise<{ status: number | string; body: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    return { status: err instanceof Error ? err.message : String(err), body: "" };
  }
}

export async function doctor(ctx: Ctx): Promise<Outcome> {
  const [row] = await ctx.sql<{
    applied: string[] | null;
    cron: Cron;
    vault: Record<string, boolean>;
    net: Net;
    signals: Signals;
    project_url: string | null;
    now: Date;
  }[]>`
    select public.operator_applied_migrations() as applied, public.operator_cron_health() as cron,
           public.operator_vault_names() as vault, public.operator_net_health() as net,
           public.operator_doctor_signals() as signals, public.operator_project_url() as project_url,
           now() as now`;
  const checks: Check[] = [
    migrationsCheck(await repoMigrations(), row.applied),
    cronCheck(row.cron, row.now),
    vaultCheck(row.vault),
    netCheck(row.net),
  ];
  const base = (ctx.flags["api-url"] as string | undefined) ?? row.project_url;
  if (base) {
    const names = declaredFunctions(
      await Deno.readTextFile(repoFile("supabase/config.toml")).catch(() => ""),
    );
    const results = await Promise.all(
      names.map(async (n) => {
        const { status, body } = await probe(`${base.replace(/\/$/, "")}/functions/v1/${n}`);
        return functionCheck(n, status, body);
      }),
    );
    checks.push(...results);
  } else {
    checks.push(
      check(
        "functions",
        "fail",
        "no project_url to reach them",
        "set the Vault secret project_url, or pass --api-url",
      ),
    );
  }
  checks.push(twilioCheck(row.signals), claudeCheck(row.signals));
  const ok = checks.every((c) => c.verdict !== "fail");
  return { data: { ok, checks }, text: renderDoctor(ctx.style, checks), ok };
}

export function renderDoctor(style: Style, checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  return checks.map((c) =>
    `${paintState(style, c.verdict.padEnd(4))}  ${c.name.padEnd(width)}  ${c.detail}` +
    (c.fix ? `\n${" ".repeat(width + 8)}${style.dim(`→ ${c.fix}`)}` : "")
  ).join("\n");
}
