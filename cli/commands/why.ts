// why: the life of one message, from the operator_message_history view.
import { CommandFailed, type Ctx, type Outcome } from "../context.ts";
import { fields, maskPhones, paintState, type Style, table } from "../output.ts";

interface Header {
  id: string;
  user_id: string;
  phone_number: string;
  timezone: string;
  status: string;
  waiting_because: string | null;
  status_reason: string | null;
  twilio_sid: string | null;
  priority: string;
  body_preview: string;
}

interface Step {
  at: Date;
  local_at: string;
  state: string;
  reason: string | null;
  detail: string | null;
  next_eligible_at: Date | null;
  next_eligible_local: string | null;
  twilio_sid: string | null;
}

export async function why(ctx: Ctx): Promise<Outcome> {
  const [header] = await ctx.sql<Header[]>`
    select id, user_id, phone_number, timezone, status, waiting_because, status_reason, twilio_sid,
           priority, body_preview
      from public.operator_queue where id = ${ctx.target!}`;
  if (!header) throw new CommandFailed(`unknown message ${ctx.target}`);
  const history = await ctx.sql<Step[]>`
    select at, local_at, state, reason, detail, next_eligible_at, next_eligible_local, twilio_sid
      from public.operator_message_history
     where message_id = ${ctx.target!}
     order by at, seq`;
  const message = ctx.flags.reveal ? header : maskPhones(header);
  const data = { message, history };
  return { data, text: renderWhy(ctx.style, message, history) };
}

export function renderWhy(style: Style, m: Header, history: Step[]): string {
  const paint = (c: string, t: string) => (c === "state" ? paintState(style, t) : t);
  return [
    fields(style, [
      ["Message", m.id],
      ["User", `${m.user_id} (${m.phone_number}, ${m.timezone})`],
      ["Now", `${paintState(style, m.status)}${m.waiting_because ? `: ${m.waiting_because}` : ""}`],
      ["Priority", m.priority],
      ["Twilio SID", m.twilio_sid ?? "-"],
      ["Text", m.body_preview],
    ]),
    style.bold(`\nHistory (local time, ${m.timezone})`),
    table(
      style,
      ["local_at", "state", "reason", "next_eligible_local", "detail", "twilio_sid"],
      history as unknown as Record<string, unknown>[],
      paint,
    ),
  ].join("\n");
}
