// The front door's routine tools as zod schemas: create_routine and the tools
// that manage a routine by id. Steps are checked in full by create_routine in
// SQL (the one validator every caller goes through); the shape here is what a
// model reads, and `when` is compiled by the JMESPath library as well. This
// module imports nothing of shared/agents, which imports it.
import { z } from "zod";
import { checkCondition, ConditionError } from "./conditions.ts";

const userId = z.uuid().describe("The user, by id.");
const routineId = z.uuid().describe("The routine, as create_routine returned it.");
const instant = z.iso.datetime({ offset: true });

/** The step tools, as shared/routines/schemas.ts names them (a test keeps them equal). */
export const STEP_TOOL_LIST = [
  "context.read",
  "claude.generate",
  "sms.queue",
  "call.schedule",
  "memory.update",
  "http.post",
] as const;

const step = z.object({
  id: z.string().regex(/^[a-z][a-z0-9_]{0,39}$/).describe(
    "The step's name, unique in the routine.",
  ),
  uses: z.enum(STEP_TOOL_LIST).describe(
    "context.read (no input) | claude.generate {instruction, context?, max_chars?, json?} | " +
      "sms.queue (queue_message's input without user_id) | call.schedule (schedule_call's " +
      "input without user_id) | memory.update (remember's input without user_id) | " +
      "http.post {url, body} (allowlisted origins only).",
  ),
  with: z.record(z.string(), z.unknown()).optional().describe(
    "The tool's input. Strings may hold ${steps.<id>.<path>}, ${params.<name>}, " +
      "${user.timezone}, ${user.local_date} or ${occurrence}; a step reads only earlier steps.",
  ),
  // Compiled here too: SQL can check only its shape, the library its syntax.
  when: z.string().min(1).max(1000).superRefine((expression, ctx) => {
    try {
      checkCondition(expression);
    } catch (err) {
      if (!(err instanceof ConditionError)) throw err;
      ctx.addIssue({ code: "custom", message: err.message });
    }
  }).optional().describe(
    "A JMESPath condition over {steps, params, user}; the step is skipped when it is falsy.",
  ),
}).strict();

const routineState = z.object({
  routine_id: z.uuid(),
  status: z.enum(["active", "paused", "ended"]),
  snoozed_until: z.string().nullable(),
  next_run_at: z.string().nullable().describe("Null until the next occurrence is computed."),
});

export const ROUTINE_TOOL_SCHEMAS = {
  create_routine: {
    input: z.object({
      user_id: userId,
      name: z.string().trim().min(1).max(100),
      steps: z.array(step).min(1).max(20),
      rrule: z.string().max(500).optional().describe(
        "When it recurs, an RRULE in the user's time zone (as for schedule_call), e.g. " +
          "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8;BYMINUTE=30. Give rrule or run_at.",
      ),
      run_at: instant.optional().describe("For a routine that runs once: when."),
      params: z.record(z.string(), z.unknown()).optional().describe(
        "Values the steps read as ${params.<name>}.",
      ),
      missed: z.enum(["once", "each"]).optional().describe(
        "Occurrences missed while nothing ran: once (default) runs the latest, each runs all.",
      ),
      idempotency_key: z.string().min(1).max(100).regex(/^[\x21-\x7e]+$/).optional(),
    }).strict(),
    output: routineState.extend({ replayed: z.boolean() }),
  },
  pause_routine: { input: z.object({ routine_id: routineId }).strict(), output: routineState },
  resume_routine: { input: z.object({ routine_id: routineId }).strict(), output: routineState },
  snooze_routine: {
    input: z.object({
      routine_id: routineId,
      until: instant.describe("Occurrences before this instant are skipped."),
    }).strict(),
    output: routineState,
  },
  end_routine: { input: z.object({ routine_id: routineId }).strict(), output: routineState },
  run_routine_now: {
    input: z.object({ routine_id: routineId }).strict(),
    output: z.object({ routine_id: z.uuid(), run_id: z.uuid() }),
  },
  enable_builtin_routine: {
    input: z.object({
      user_id: userId,
      template: z.enum(["morning_plan", "weekly_review", "commitment_follow_up"]),
      params: z.object({
        time: z.string().optional().describe("morning_plan, weekly_review: local HH:MM."),
        days: z.string().optional().describe("morning_plan: e.g. MO,TU,WE,TH,FR."),
        day: z.string().optional().describe("weekly_review: e.g. SU."),
        delay_minutes: z.number().int().optional().describe(
          "commitment_follow_up: minutes after the due time (0 to 1440, default 30).",
        ),
        channel: z.enum(["sms", "call"]).optional().describe("commitment_follow_up: how."),
      }).strict().optional(),
    }).strict(),
    output: routineState.extend({ params: z.record(z.string(), z.unknown()) }),
  },
} as const;

export const ROUTINE_TOOL_DESCRIPTIONS: Record<keyof typeof ROUTINE_TOOL_SCHEMAS, string> = {
  create_routine: "Create a routine: a pipeline of steps run for a user on an RRULE in their " +
    "time zone (or once at run_at), such as reading their context, writing with Claude and " +
    "queueing an SMS. Everything is checked now; a bad step names itself and its field.",
  pause_routine: "Pause a routine: its occurrences are skipped (and recorded so) until resumed.",
  resume_routine: "Resume a paused or snoozed routine.",
  snooze_routine: "Skip a routine's occurrences until an instant, then carry on.",
  end_routine: "End a routine for good.",
  run_routine_now: "Run a routine once now, whatever its schedule; returns the run's id.",
  enable_builtin_routine: "Install or adjust one of the built-ins for a user: morning_plan " +
    "(weekdays at a local time, default 08:30), weekly_review (default Sunday 18:00) or " +
    "commitment_follow_up (a check-in after each open commitment's due time, default 30 min).",
};
