// The front door's tools as zod schemas: each tool's input and output, and the
// description a model reads. The agents function, the MCP server and the SDK's
// types all come from these. Inputs are strict, so a misspelt field is an
// error that names it rather than something silently ignored.
import { z } from "zod";
import { validateRRule } from "../time/rrule.ts";
import { ROUTINE_TOOL_DESCRIPTIONS, ROUTINE_TOOL_SCHEMAS } from "../routines/agent_schemas.ts";

const instant = z.iso.datetime({ offset: true });
// Postgres text cannot hold a NUL character: refused here, by name, rather than by the database.
const noNul = (s: string) => !s.includes("\0");
const text = (max: number) =>
  z.string().trim().min(1).max(max).refine(noNul, "must not contain NUL characters");
const userId = z.uuid().describe("The user, by id.");
const idempotencyKey = z.string().min(1).max(100).regex(/^[\x21-\x7e]+$/, {
  message: "must be printable ASCII without spaces",
}).describe(
  "Optional. Retrying with the same key and the same input returns the first result and does " +
    "nothing twice; the same key with a different input is refused with a conflict.",
);
const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, { message: "must be HH:MM (24-hour)" });
const timestamp = z.string().describe("An ISO 8601 instant.");
const nullableTimestamp = timestamp.nullable();

const rrule = z.string().max(500).superRefine((value, ctx) => {
  const problem = validateRRule(value);
  if (problem) ctx.addIssue({ code: "custom", message: `not a supported RRULE: ${problem}` });
});

export const PRIORITIES = ["urgent", "high", "medium", "low"] as const;
export const INSIGHT_CATEGORIES = [
  "preference",
  "fact",
  "goal",
  "routine",
  "relationship",
  "health",
  "other",
] as const;

// queue_message -------------------------------------------------------------------
export const queueMessageInput = z.object({
  user_id: userId,
  text: text(1600).optional().describe(
    "The SMS exactly as the user should read it (sent verbatim). Give text or data, not both.",
  ),
  data: z.record(z.string(), z.unknown()).optional().describe(
    "Structured facts to be written up as a short SMS just before sending (for example " +
      '{"kind": "reminder", "what": "dentist", "at": "15:00"}). Give text or data, not both.',
  ),
  priority: z.enum(PRIORITIES).default("medium").describe(
    "urgent skips quiet hours and caps (at most 5 a day, then it waits like high); " +
      "high, medium and low wait for allowed hours and budget, higher first.",
  ),
  can_delay: z.boolean().default(true).describe(
    "true lets delivery wait for a better time; false sends at the first allowed instant.",
  ),
  requires_fresh_context: z.boolean().default(false).describe(
    "Ask just before sending whether the message still makes sense; if not it is dropped.",
  ),
  scheduled_for: instant.optional().describe(
    "The earliest time to send, ISO 8601 with offset; now when absent. Within a year.",
  ),
  expires_at: instant.optional().describe(
    "After this instant the message is no longer worth sending and is dropped.",
  ),
  idempotency_key: idempotencyKey.optional(),
  supersede_key: z.string().min(1).max(100).refine(noNul, "must not contain NUL characters")
    .optional().describe(
      "A newer message with the same key replaces this user's older queued ones.",
    ),
}).strict().superRefine((v, ctx) => {
  if ((v.text === undefined) === (v.data === undefined)) {
    ctx.addIssue({ code: "custom", path: ["text"], message: "give exactly one of text and data" });
  }
  if (v.data !== undefined && Object.keys(v.data).length === 0) {
    ctx.addIssue({ code: "custom", path: ["data"], message: "must not be empty" });
  }
});

export const MESSAGE_STATUSES = [
  "queued",
  "sending",
  "sent",
  "delivered",
  "failed",
  "superseded",
  "expired",
  "cancelled",
  "unknown",
] as const;

export const queueMessageOutput = z.object({
  message_id: z.uuid(),
  status: z.enum(MESSAGE_STATUSES).describe(
    "queued, or cancelled when the user has opted out of SMS.",
  ),
  replayed: z.boolean().describe("true when an earlier call with this idempotency_key made it."),
});

// get_message_status --------------------------------------------------------------------
export const getMessageStatusInput = z.object({
  message_id: z.uuid().describe("The id queue_message returned."),
}).strict();

export const getMessageStatusOutput = z.object({
  message_id: z.uuid(),
  user_id: z.uuid(),
  status: z.enum(MESSAGE_STATUSES),
  reason: z.string().nullable().describe("Why it was deferred, dropped or failed, when known."),
  twilio_status: z.string().nullable().describe("The carrier status Twilio last reported."),
  error_code: z.string().nullable(),
  scheduled_for: timestamp,
  next_attempt_at: nullableTimestamp.describe("When delivery looks at it next, while queued."),
  sent_at: nullableTimestamp,
  delivered_at: nullableTimestamp,
});

// schedule_call -----------------------------------------------------------------------------
export const scheduleCallInput = z.object({
  user_id: userId,
  call_type: z.string().regex(/^[a-z0-9_-]{1,64}$/, {
    message: "must be 1 to 64 characters of a-z, 0-9, _ or -",
  }).describe("What the call is for, as a slug such as check_in, reminder or follow_up."),
  scheduled_for: instant.describe(
    "When to call, ISO 8601 with offset, between 1 minute and 90 days from now.",
  ),
  custom_instructions: text(4000).optional().describe(
    "What the voice assistant should cover on the call.",
  ),
  rrule: rrule.optional().describe(
    "For a recurring call, an RFC 5545 RRULE (FREQ=DAILY, WEEKLY or MONTHLY, e.g. " +
      "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=8;BYMINUTE=30) in the user's time zone, from scheduled_for.",
  ),
  idempotency_key: idempotencyKey.optional(),
}).strict();

export const scheduleCallOutput = z.object({
  call_id: z.uuid(),
  status: z.string(),
  scheduled_for: timestamp,
  replayed: z.boolean(),
});

// cancel_scheduled_call ---------------------------------------------------------------------
export const cancelScheduledCallInput = z.object({
  call_id: z.uuid().describe("A pending call's id (from schedule_call or get_user_context)."),
  scope: z.enum(["occurrence", "series"]).describe(
    "occurrence skips this one call and keeps a recurring series going; series ends it.",
  ),
  reason: text(500).describe("Why, in a few words."),
}).strict();

export const cancelScheduledCallOutput = z.object({
  call_id: z.uuid(),
  scope: z.enum(["occurrence", "series"]),
  cancelled: z.boolean().describe("false when the call was no longer pending (nothing changed)."),
  next_call_id: z.uuid().nullable().describe(
    "For scope occurrence, the series' next pending call, if any.",
  ),
});

// get_user_context ----------------------------------------------------------------------------
export const getUserContextInput = z.object({
  user_id: userId,
}).strict();

export const memoryItem = z.object({
  key: z.string(),
  value: z.string(),
  category: z.string(),
  last_seen: z.string(),
});

export const getUserContextOutput = z.object({
  user_id: z.uuid(),
  timezone: z.string(),
  local_time: z.string().describe("The user's wall-clock time now, e.g. Tue 2026-12-01 08:30."),
  quiet_hours: z.object({ start: z.string(), end: z.string(), now: z.boolean() }),
  preferred_hours: z.null().describe("Not tracked yet: always null."),
  active_now: z.boolean().describe(
    "The user texted in the last 10 minutes (quiet hours do not apply while active).",
  ),
  sms_opted_out: z.boolean(),
  budget: z.object({
    daily_limit: z.number().int(),
    used_today: z.number().int(),
    left_today: z.number().int(),
    hourly_limit: z.number().int(),
  }),
  memory: z.array(memoryItem),
  session_summary: z.string().nullable(),
  open_commitments: z.array(z.object({
    id: z.uuid(),
    description: z.string(),
    due_at: nullableTimestamp,
  })),
  pending_calls: z.array(z.object({
    id: z.uuid(),
    call_type: z.string(),
    scheduled_for: timestamp,
    rrule: z.string().nullable(),
  })),
  queued_messages: z.array(z.object({
    id: z.uuid(),
    priority: z.string(),
    scheduled_for: timestamp,
    preview: z.string(),
  })),
  last_interactions: z.array(z.object({
    id: z.uuid(),
    channel: z.string(),
    created_at: timestamp,
    sentiment: z.string().nullable(),
    excerpt: z.string(),
  })),
  truncated: z.boolean().describe("true when lists or texts were cut to fit in 8 KB."),
});

// record_interaction -----------------------------------------------------------------------------
export const recordInteractionInput = z.object({
  user_id: userId,
  channel: z.enum(["voice", "sms"]),
  transcript: text(100_000).describe(
    "The conversation as text. It is analysed like any other (memory, commitments, follow-ups).",
  ),
  call_type: z.string().regex(/^[a-z0-9_-]{1,64}$/, {
    message: "must be 1 to 64 characters of a-z, 0-9, _ or -",
  }).default("general"),
  scheduled_call_id: z.uuid().optional().describe(
    "The scheduled call this conversation was; it marks that call completed.",
  ),
  idempotency_key: idempotencyKey.optional(),
}).strict();

export const recordInteractionOutput = z.object({
  interaction_id: z.uuid(),
  analysis_status: z.string(),
  replayed: z.boolean(),
});

// search_interactions -------------------------------------------------------------------------------
export const searchInteractionsInput = z.object({
  user_id: userId,
  query: text(200).describe(
    'Words to find (web-search syntax: "exact phrase", or, -word). Stemmed English.',
  ),
  limit: z.number().int().min(1).max(20).default(5),
}).strict();

export const searchInteractionsOutput = z.object({
  results: z.array(z.object({
    kind: z.enum(["interaction", "session_summary"]),
    interaction_id: z.uuid().nullable(),
    channel: z.string().nullable(),
    created_at: timestamp,
    rank: z.number(),
    snippet: z.string().describe("The best matching fragments, matches in **bold**."),
  })),
});

// remember --------------------------------------------------------------------------------------------
export const rememberInput = z.object({
  user_id: userId,
  items: z.array(
    z.object({
      key: text(80).describe("A short stable name for the fact, such as preferred_call_time."),
      value: text(500).describe("What is known, in one sentence."),
      category: z.enum(INSIGHT_CATEGORIES).optional(),
    }).strict(),
  ).max(20).optional().describe(
    "Facts to add or refresh; an existing key is updated, never duplicated.",
  ),
  retire: z.array(text(80)).max(20).optional().describe("Keys of facts no longer true."),
}).strict().superRefine((v, ctx) => {
  if ((v.items?.length ?? 0) + (v.retire?.length ?? 0) === 0) {
    ctx.addIssue({
      code: "custom",
      path: ["items"],
      message: "give at least one item or one key to retire",
    });
  }
});

export const rememberOutput = z.object({
  items_stored: z.number().int().describe("How many facts the user's memory holds now."),
  added: z.array(z.string()),
  refreshed: z.array(z.string()),
  retired: z.array(z.string()),
});

// set_contact_preferences --------------------------------------------------------------------------------
export const setContactPreferencesInput = z.object({
  user_id: userId,
  quiet_hours_start: hhmm.optional().describe("Local time quiet hours begin, HH:MM."),
  quiet_hours_end: hhmm.optional().describe("Local time quiet hours end, HH:MM."),
  preferred_hours_start: hhmm.nullable().optional().describe(
    "Local time from which the user likes texts that can wait (can_delay), HH:MM; null with " +
      "preferred_hours_end null forgets the preference.",
  ),
  preferred_hours_end: hhmm.nullable().optional().describe(
    "Local time until which they like them, HH:MM; at least an hour after the start.",
  ),
}).strict().superRefine((v, ctx) => {
  const quiet = v.quiet_hours_start !== undefined || v.quiet_hours_end !== undefined;
  const preferred = v.preferred_hours_start !== undefined || v.preferred_hours_end !== undefined;
  if (!quiet && !preferred) {
    ctx.addIssue({
      code: "custom",
      path: ["quiet_hours_start"],
      message: "give quiet hours, preferred hours or both",
    });
  }
  if (
    preferred && (v.preferred_hours_start === undefined) !== (v.preferred_hours_end === undefined)
  ) {
    ctx.addIssue({
      code: "custom",
      path: [
        v.preferred_hours_start === undefined ? "preferred_hours_start" : "preferred_hours_end",
      ],
      message: "preferred hours take both ends (both null forgets them)",
    });
  }
});

export const setContactPreferencesOutput = z.object({
  user_id: z.uuid(),
  quiet_hours_start: z.string(),
  quiet_hours_end: z.string(),
  preferred_hours_start: z.string().nullable(),
  preferred_hours_end: z.string().nullable(),
});

// The registry's table of schemas and descriptions ---------------------------------------------------
export const TOOL_SCHEMAS = {
  queue_message: { input: queueMessageInput, output: queueMessageOutput },
  get_message_status: { input: getMessageStatusInput, output: getMessageStatusOutput },
  schedule_call: { input: scheduleCallInput, output: scheduleCallOutput },
  cancel_scheduled_call: { input: cancelScheduledCallInput, output: cancelScheduledCallOutput },
  get_user_context: { input: getUserContextInput, output: getUserContextOutput },
  record_interaction: { input: recordInteractionInput, output: recordInteractionOutput },
  search_interactions: { input: searchInteractionsInput, output: searchInteractionsOutput },
  remember: { input: rememberInput, output: rememberOutput },
  set_contact_preferences: {
    input: setContactPreferencesInput,
    output: setContactPreferencesOutput,
  },
  ...ROUTINE_TOOL_SCHEMAS,
} as const;

export type ToolName = keyof typeof TOOL_SCHEMAS;
export const TOOL_NAMES = Object.keys(TOOL_SCHEMAS) as ToolName[];
/** What a caller sends (defaults optional). */
export type ToolInput<T extends ToolName> = z.input<(typeof TOOL_SCHEMAS)[T]["input"]>;
/** What a tool receives after validation (defaults filled in). */
export type ParsedInput<T extends ToolName> = z.output<(typeof TOOL_SCHEMAS)[T]["input"]>;
export type ToolOutput<T extends ToolName> = z.output<(typeof TOOL_SCHEMAS)[T]["output"]>;

export const TOOL_DESCRIPTIONS: Record<ToolName, string> = {
  queue_message:
    "Queue an SMS to a user. It is delivered under the user's quiet hours, daily and " +
    "hourly budget and opt-out, in their time zone, so it may go out later than asked; use " +
    "get_message_status to follow it. Returns message_id.",
  get_message_status:
    "The delivery state of a queued message: status, the reason it is waiting or was dropped, " +
    "Twilio's status, and when it was sent and delivered.",
  schedule_call: "Schedule a voice call to a user, once or recurring (RRULE in the user's time " +
    "zone), 1 minute to 90 days ahead; at most 10 calls per local day. Returns call_id.",
  cancel_scheduled_call: "Cancel a pending call: scope occurrence skips just this one (a " +
    "recurring series continues), scope series ends the whole series.",
  get_user_context: "Everything to know before talking to a user, in at most 8 KB: time zone " +
    "and local time, quiet hours, whether they are active now, SMS budget left today, what is " +
    "remembered about them, the session summary, open commitments, pending calls, queued " +
    "messages and the last interactions. Call it first.",
  record_interaction: "Store a conversation you had with the user (voice transcript or SMS). " +
    "It is analysed like every other: memory, commitments and follow-ups are updated from it.",
  search_interactions:
    "Full-text search over the user's past conversations and session summary, best matches " +
    "first, each with a snippet. Use it to recall what was said about something.",
  remember: "Add, refresh or retire durable facts about the user (preferences, routines, goals, " +
    "people). Facts are merged by key, never duplicated, and recorded as coming from you.",
  set_contact_preferences:
    "Set the user's quiet hours (local HH:MM start and end; 6 to 16 hours long) and/or their " +
    "preferred hours for texts that can wait (at least an hour; null for both forgets them), " +
    "when the user asked for it. Urgent messages and can_delay = false ignore preferred hours.",
  ...ROUTINE_TOOL_DESCRIPTIONS,
};
