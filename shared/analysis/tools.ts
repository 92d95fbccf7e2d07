// The analysis agent's tools: zod schemas that validate every call before it
// runs, and the Anthropic tool definitions generated from them once, so the
// definitions are byte-identical across users and runs (they head the static
// prompt prefix). No tool takes a user id: the user is the claimed
// interaction's, bound by the SQL side; unknown fields are refused, so a
// `user_id` the model adds is an error, not ignored.
import type Anthropic from "@anthropic-ai/sdk";
import { z } from "zod";
import { validateRRule } from "../time/rrule.ts";

const instant = z.iso.datetime({ offset: true });
const text = (max: number) => z.string().trim().min(1).max(max);
const callType = z.string().regex(/^[a-z0-9_-]{1,64}$/);

export const SENTIMENTS = ["positive", "neutral", "negative", "mixed"] as const;
export type Sentiment = (typeof SENTIMENTS)[number];

export const INSIGHT_CATEGORIES = [
  "preference",
  "fact",
  "goal",
  "routine",
  "relationship",
  "health",
  "other",
] as const;

const rrule = z.string().max(500).superRefine((value, ctx) => {
  const problem = validateRRule(value);
  if (problem) ctx.addIssue({ code: "custom", message: `not a supported RRULE: ${problem}` });
});

export const scheduleCallInput = z.object({
  call_type: callType.describe(
    "What the call is for, as a lower-case slug such as check_in, reminder or follow_up.",
  ),
  scheduled_for: instant.describe(
    "When to call: an ISO 8601 instant with its offset, between 1 minute and 90 days from now.",
  ),
  custom_instructions: text(2000).optional().describe(
    "What the voice assistant should cover on the call.",
  ),
  rrule: rrule.optional().describe(
    "For a recurring call, an RFC 5545 RRULE (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY) evaluated in " +
      "the user's time zone, starting at scheduled_for.",
  ),
}).strict();

export const CANCEL_SCOPES = ["occurrence", "series"] as const;

export const cancelScheduledCallInput = z.object({
  call_id: z.uuid().describe("The id of one of the user's pending calls, from the context."),
  reason: text(500).describe("Why it is cancelled, in a few words."),
  // Series by default: what the tool did before it had a scope, and for a call
  // without an RRULE the two are the same.
  scope: z.enum(CANCEL_SCOPES).default("series").describe(
    "occurrence: skip only this occurrence of a recurring call, the series goes on. " +
      "series (the default): end the call and every later occurrence.",
  ),
}).strict();

export const insightItemInput = z.object({
  key: text(80).describe("A short stable name for the fact, such as preferred_call_time."),
  value: text(500).describe("What is known, in one sentence."),
  category: z.enum(INSIGHT_CATEGORIES).optional(),
}).strict();

export const updateUserInsightsInput = z.object({
  items: z.array(insightItemInput).max(10).optional().describe(
    "Facts to add or refresh; an existing key is updated, never duplicated.",
  ),
  retire: z.array(text(80)).max(10).optional().describe(
    "Keys of facts that are no longer true.",
  ),
}).strict().refine((v) => (v.items?.length ?? 0) + (v.retire?.length ?? 0) > 0, {
  message: "give at least one item or one key to retire",
  path: ["items"],
});

export const recordCommitmentInput = z.object({
  description: text(1000).describe("What the user committed to do, in their terms."),
  due_at: instant.optional().describe("When it is due, as an ISO 8601 instant, when known."),
}).strict();

export const updateCommitmentInput = z.object({
  commitment_id: z.uuid().describe("The id of one of the user's open commitments."),
  status: z.enum(["open", "done", "dropped"]).optional(),
  due_at: instant.optional(),
  description: text(1000).optional(),
}).strict().refine(
  (v) => v.status !== undefined || v.due_at !== undefined || v.description !== undefined,
  { message: "give at least one of status, due_at and description", path: ["status"] },
);

export const queueMessageInput = z.object({
  text: text(480).describe("The SMS to send, exactly as the user should read it."),
  priority: z.enum(["low", "medium", "high"]).default("medium"),
  send_at: instant.optional().describe(
    "The earliest time to send, as an ISO 8601 instant; now when absent. Quiet hours and the " +
      "user's message budget still apply.",
  ),
  expires_at: instant.optional().describe(
    "After this instant the message is no longer worth sending.",
  ),
}).strict();

const localTime = z.string().regex(/^([01][0-9]|2[0-3]):[0-5][0-9]$/, "a local time as HH:MM");

export const setContactPreferencesInput = z.object({
  preferred_hours_start: localTime.nullable().describe(
    "When the user likes to get texts that can wait, from this local time (HH:MM, 24-hour), " +
      'as they said it ("text me after 6 pm" is 18:00). null with preferred_hours_end null ' +
      "forgets the preference.",
  ),
  preferred_hours_end: localTime.nullable().describe(
    "Until this local time (HH:MM); at least an hour after the start, and may wrap midnight.",
  ),
}).strict().refine((v) => (v.preferred_hours_start === null) === (v.preferred_hours_end === null), {
  message: "give both ends, or null for both to forget the preference",
  path: ["preferred_hours_end"],
});

export const setRoutineInput = z.object({
  template: z.enum(["morning_plan", "weekly_review", "commitment_follow_up"]).describe(
    "morning_plan: a one-SMS plan on weekday mornings; weekly_review: a short review of the " +
      "week; commitment_follow_up: a check-in after each commitment's due time.",
  ),
  enabled: z.boolean().default(true).describe("false pauses it (the user no longer wants it)."),
  time: localTime.optional().describe("morning_plan, weekly_review: the local time, HH:MM."),
  days: z.string().regex(/^(MO|TU|WE|TH|FR|SA|SU)(,(MO|TU|WE|TH|FR|SA|SU))*$/).optional()
    .describe("morning_plan: the days, such as MO,TU,WE,TH,FR (the default)."),
  day: z.enum(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]).optional().describe(
    "weekly_review: the day (SU by default).",
  ),
  delay_minutes: z.number().int().min(0).max(1440).optional().describe(
    "commitment_follow_up: minutes after the due time (30 by default).",
  ),
  channel: z.enum(["sms", "call"]).optional().describe("commitment_follow_up: text or call."),
}).strict();

export const recordAnalysisInput = z.object({
  sentiment: z.enum(SENTIMENTS).describe("The user's overall sentiment in this interaction."),
  session_summary: text(3000).describe(
    "The running summary of the relationship so far, updated with this interaction: what " +
      "matters now, open threads, and what to follow up. Under 3000 characters.",
  ),
}).strict();

export const TOOL_SCHEMAS = {
  schedule_call: scheduleCallInput,
  cancel_scheduled_call: cancelScheduledCallInput,
  update_user_insights: updateUserInsightsInput,
  record_commitment: recordCommitmentInput,
  update_commitment: updateCommitmentInput,
  queue_message: queueMessageInput,
  set_contact_preferences: setContactPreferencesInput,
  set_routine: setRoutineInput,
  record_analysis: recordAnalysisInput,
} as const;

export type ToolName = keyof typeof TOOL_SCHEMAS;
export type ToolInput<T extends ToolName> = z.output<(typeof TOOL_SCHEMAS)[T]>;
export type ScheduleCallInput = ToolInput<"schedule_call">;
export type CancelScheduledCallInput = ToolInput<"cancel_scheduled_call">;
export type UpdateUserInsightsInput = ToolInput<"update_user_insights">;
export type RecordCommitmentInput = ToolInput<"record_commitment">;
export type UpdateCommitmentInput = ToolInput<"update_commitment">;
export type QueueMessageInput = ToolInput<"queue_message">;
export type SetContactPreferencesInput = ToolInput<"set_contact_preferences">;
export type SetRoutineInput = ToolInput<"set_routine">;
export type RecordAnalysisInput = ToolInput<"record_analysis">;

const DESCRIPTIONS: Record<ToolName, string> = {
  schedule_call:
    "Schedule a voice call to the user, for example a check-in they asked for or a reminder " +
    "before something they committed to. Only when the conversation gives a reason.",
  cancel_scheduled_call:
    "Cancel one of the user's pending calls that is no longer wanted or no longer makes sense. " +
    'scope "occurrence" skips just that occurrence of a recurring call and keeps the series; ' +
    'scope "series", the default when scope is omitted, ends the call and its recurrence.',
  update_user_insights:
    "Add, refresh or retire durable facts about the user (preferences, routines, goals, people " +
    "in their life). Keep them short; one fact per key.",
  record_commitment: "Record something the user said they will do.",
  update_commitment:
    "Mark one of the user's open commitments done or dropped, or change its due date or wording.",
  queue_message:
    "Queue an SMS to the user, such as a follow-up or a reminder they asked for. It goes out " +
    "under their quiet hours and message budget.",
  set_contact_preferences:
    "Set the hours the user prefers for texts that can wait, when they state them in the " +
    "conversation. Quiet hours, urgent messages and their message budget are not changed by it.",
  set_routine:
    "Install, adjust or pause one of the user's built-in routines when they ask for it (\"send " +
    'me a plan every morning at 7" is morning_plan at 07:00). Only on their request.',
  record_analysis:
    "Finish the analysis: the user's sentiment and the updated session summary. Call it once, " +
    "last, after any other tools.",
};

function inputSchema(schema: z.ZodType): Anthropic.Messages.Tool.InputSchema {
  const generated = z.toJSONSchema(schema, {
    io: "input",
    // The date-time regex zod adds is long and says no more than the format does.
    override: ({ jsonSchema }) => {
      if (jsonSchema.format === "date-time") delete jsonSchema.pattern;
    },
  });
  const { $schema: _, ...rest } = generated;
  return { ...rest, type: "object" };
}

/**
 * The definitions sent with every analysis request. They come first in the
 * prompt, so the breakpoint after the system text (prompt.ts) caches them too.
 */
export const ANALYSIS_TOOLS: readonly Anthropic.Messages.Tool[] = Object.freeze(
  (Object.keys(TOOL_SCHEMAS) as ToolName[]).map((name) => ({
    name,
    description: DESCRIPTIONS[name],
    input_schema: inputSchema(TOOL_SCHEMAS[name]),
  })),
);

export type ParsedToolCall =
  | { [T in ToolName]: { ok: true; tool: T; input: ToolInput<T> } }[ToolName]
  | { ok: false; error: string };

export function isToolName(name: string): name is ToolName {
  return Object.hasOwn(TOOL_SCHEMAS, name);
}

/** Validates a tool call from the model; an error names each bad field. */
export function parseToolCall(name: string, input: unknown): ParsedToolCall {
  if (!isToolName(name)) return { ok: false, error: `there is no tool named ${name}` };
  const result = TOOL_SCHEMAS[name].safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) =>
      `${issue.path.length ? issue.path.join(".") : "(input)"}: ${issue.message}`
    );
    return { ok: false, error: `invalid input for ${name}: ${problems.join("; ")}` };
  }
  return { ok: true, tool: name, input: result.data } as ParsedToolCall;
}
