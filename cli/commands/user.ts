// user: one user as an operator needs them, from the operator_users view.
import { type Ctx, type Outcome, userId } from "../context.ts";
import { fields, maskPhones, paintState, type Style, table } from "../output.ts";

interface UserView {
  id: string;
  phone_number: string;
  timezone: string;
  local_time: string;
  quiet_hours_start: string;
  quiet_hours_end: string;
  preferred_hours_start: string | null;
  preferred_hours_end: string | null;
  daily_message_limit: number;
  hourly_message_limit: number;
  budget_used_today: number;
  urgent_used_today: number;
  sms_opted_out_at: Date | null;
  snoozed_until: Date | null;
  snooze_reason: string | null;
  last_inbound_at: Date | null;
  active_now: boolean;
  memory: {
    key: string;
    value: string;
    category?: string;
    last_seen?: string;
    sources?: string[];
  }[];
  session_summary: string | null;
  open_commitments: Record<string, unknown>[];
  pending_calls: Record<string, unknown>[];
  queue: Record<string, unknown>[];
  last_messages: Record<string, unknown>[];
}

export async function user(ctx: Ctx): Promise<Outcome> {
  const id = await userId(ctx.sql, ctx.target!);
  const [row] = await ctx.sql<UserView[]>`select * from public.operator_users where id = ${id}`;
  const data = ctx.flags.reveal ? row : maskPhones(row);
  return { data, text: renderUser(ctx.style, data) };
}

const hhmm = (t: string | null) => (t ? t.slice(0, 5) : null);

export function renderUser(style: Style, u: UserView): string {
  const quiet = u.quiet_hours_start === u.quiet_hours_end
    ? "none"
    : `${hhmm(u.quiet_hours_start)}–${hhmm(u.quiet_hours_end)}`;
  const preferred = u.preferred_hours_start
    ? `${hhmm(u.preferred_hours_start)}–${hhmm(u.preferred_hours_end)}`
    : "unknown";
  const reach = u.sms_opted_out_at
    ? style.red(`opted out since ${u.sms_opted_out_at.toISOString()}`)
    : u.snoozed_until && u.snoozed_until > new Date()
    ? style.yellow(
      `snoozed until ${u.snoozed_until.toISOString()} (${u.snooze_reason ?? "no reason"})`,
    )
    : style.green("reachable");
  const paint = (c: string, t: string) => (c === "status" ? paintState(style, t) : t);
  return [
    fields(style, [
      ["User", u.id],
      ["Phone", u.phone_number],
      ["Time zone", `${u.timezone}, local time ${u.local_time}`],
      ["Quiet hours", `${quiet} · preferred ${preferred}`],
      [
        "Budget today",
        `${u.budget_used_today}/${u.daily_message_limit} units (urgent ${u.urgent_used_today}), ` +
        `${u.hourly_message_limit} an hour`,
      ],
      ["SMS", reach],
      ["Active now", u.active_now ? "yes (quiet hours do not apply)" : "no"],
      ["Session", u.session_summary || "-"],
    ]),
    style.bold("\nMemory"),
    table(
      style,
      ["key", "value", "category", "last_seen", "sources"],
      u.memory.map((m) => ({ ...m, sources: m.sources?.join(", ") })),
    ),
    style.bold("\nOpen commitments"),
    table(style, ["description", "due_at", "id"], u.open_commitments),
    style.bold("\nPending calls"),
    table(style, ["scheduled_local", "call_type", "rrule", "id"], u.pending_calls),
    style.bold("\nQueue"),
    table(style, ["status", "priority", "waiting_because", "body_preview", "id"], u.queue, paint),
    style.bold("\nLast messages"),
    table(style, ["created_local", "direction", "status", "body"], u.last_messages, paint),
  ].join("\n");
}
