// status: the whole orchestrator on one screen, from the operator_status view.
import type { Ctx, Outcome } from "../context.ts";
import { cell, fields, isoMinute, paintState, type Style } from "../output.ts";

interface Status {
  checked_at: Date;
  queue: { status: string; priority: string; count: number }[];
  queued: number;
  due: number;
  oldest_due_at: Date | null;
  unknown: number;
  failed_24h: number;
  sent_1h: number;
  sent_24h: number;
  deferrals_24h: Record<string, number>;
  analyses_pending: number;
  analyses_running: number;
  analyses_failed_7d: number;
  calls_due: number;
  routines_due: number | null;
  processor_runs: {
    id: number;
    source: string;
    started_at: string;
    finished_at: string | null;
    error: string | null;
    sent: number | null;
    deferred: number | null;
    twilio: string | null;
  }[];
  processor_failures_24h: number;
  cron: {
    job_present: boolean;
    job_active: boolean;
    schedule: string | null;
    failed_24h: number;
    last_runs: { status: string; start_time: string; message: string | null }[];
  };
  net: {
    responses_1h: number;
    errors_1h: number;
    statuses_1h: Record<string, number>;
    last_error: string | null;
  };
  claude_cost_today_usd: string;
  claude_cost_month_usd: string;
}

export async function status(ctx: Ctx): Promise<Outcome> {
  const [row] = await ctx.sql<Status[]>`select * from public.operator_status`;
  const data = {
    ...row,
    queued: Number(row.queued),
    due: Number(row.due),
    unknown: Number(row.unknown),
    failed_24h: Number(row.failed_24h),
    sent_1h: Number(row.sent_1h),
    sent_24h: Number(row.sent_24h),
    analyses_pending: Number(row.analyses_pending),
    analyses_running: Number(row.analyses_running),
    analyses_failed_7d: Number(row.analyses_failed_7d),
    calls_due: Number(row.calls_due),
    routines_due: row.routines_due === null ? null : Number(row.routines_due),
    processor_failures_24h: Number(row.processor_failures_24h),
    claude_cost_today_usd: Number(row.claude_cost_today_usd),
    claude_cost_month_usd: Number(row.claude_cost_month_usd),
  };
  return { data, text: renderStatus(ctx.style, data as unknown as Status) };
}

const joined = (parts: string[]) => parts.length ? parts.join(" · ") : "none";
const counts = (o: Record<string, number>) =>
  joined(Object.entries(o).map(([k, n]) => `${k} ${n}`));
const ago = (at: Date | string, now: Date) => {
  const minutes = Math.round((now.getTime() - new Date(at).getTime()) / 60_000);
  return minutes < 60 ? `${minutes} min ago` : `${Math.round(minutes / 60)} h ago`;
};

export function renderStatus(style: Style, s: Status): string {
  const now = new Date(s.checked_at);
  const byPriority = (st: string) =>
    s.queue.filter((q) => q.status === st).map((q) => `${q.priority} ${q.count}`);
  const warnIf = (n: number, text: string) => (n > 0 ? style.red(text) : text);
  const last = s.processor_runs[0];
  const cronRuns = s.cron.last_runs.map((r) =>
    paintState(style, r.status === "succeeded" ? "ok" : r.status)
  );
  return fields(style, [
    [
      "Queue",
      `queued ${s.queued} (${joined(byPriority("queued"))}) · due now ${s.due}` +
      (s.oldest_due_at
        ? `, oldest due ${isoMinute(s.oldest_due_at)} (${ago(s.oldest_due_at, now)})`
        : ""),
    ],
    ["In flight", `sending ${joined(byPriority("sending"))} · unknown ${s.unknown}`],
    ["Sent", `last hour ${s.sent_1h} · last 24 h ${s.sent_24h}`],
    ["Deferred 24 h", counts(s.deferrals_24h)],
    [
      "Failures",
      `${warnIf(s.failed_24h, `failed 24 h ${s.failed_24h}`)} · ${
        warnIf(s.unknown, `unknown ${s.unknown}`)
      }`,
    ],
    [
      "Analyses",
      `pending ${s.analyses_pending} · running ${s.analyses_running} · ` +
      warnIf(s.analyses_failed_7d, `failed 7 d ${s.analyses_failed_7d}`),
    ],
    ["Calls due", s.calls_due],
    ["Routines due", s.routines_due ?? "not installed"],
    [
      "Processor",
      last
        ? `last run ${isoMinute(last.started_at)} (${last.source}) ` +
          (last.error
            ? style.red(`failed: ${last.error}`)
            : last.finished_at
            ? style.green("ok")
            : "running") +
          `, sent ${cell(last.sent)}, deferred ${cell(last.deferred)}, Twilio ${
            cell(last.twilio)
          }` +
          ` · ${warnIf(s.processor_failures_24h, `failures 24 h ${s.processor_failures_24h}`)}`
        : style.yellow("no run yet"),
    ],
    [
      "Cron",
      !s.cron.job_present
        ? style.red("process-queue job missing")
        : `process-queue ${s.cron.schedule} ${
          s.cron.job_active ? "active" : style.red("inactive")
        }` +
          ` · last ${cronRuns.length}: ${cronRuns.join(" ") || "none"} · ` +
          warnIf(s.cron.failed_24h, `failed 24 h ${s.cron.failed_24h}`),
    ],
    [
      "pg_net 1 h",
      `${counts(s.net.statuses_1h)} · ${warnIf(s.net.errors_1h, `errors ${s.net.errors_1h}`)}` +
      (s.net.last_error ? ` (last: ${s.net.last_error})` : ""),
    ],
    [
      "Claude cost",
      `today $${Number(s.claude_cost_today_usd).toFixed(4)} · this month $${
        Number(s.claude_cost_month_usd).toFixed(4)
      } (UTC)`,
    ],
  ]);
}
