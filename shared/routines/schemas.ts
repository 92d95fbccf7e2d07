// The step tools' input and output schemas. The three that act through the
// front door's tools take those tools' own inputs without user_id (the run's
// user) and without idempotency_key (the run and step make it), and their
// full schemas are applied again when a step runs; their JSON Schemas
// (z.toJSONSchema) are what create_routine checks a step's `with` against, in
// public.routine_step_tools.
import { z } from "zod";
import {
  getUserContextOutput,
  queueMessageInput,
  rememberInput,
  rememberOutput,
  scheduleCallInput,
} from "../agents/schemas.ts";

export const CLAUDE_MAX_CHARS = 1600;

const contextReadInput = z.object({}).strict();

const claudeGenerateInput = z.object({
  instruction: z.string().trim().min(1).max(4000).describe(
    "What to write; templates such as ${steps.ctx.open_commitments} are filled in first.",
  ),
  context: z.unknown().optional().describe(
    "What the model may read, usually a template such as ${steps.ctx}; shown to it as data.",
  ),
  max_chars: z.number().int().min(1).max(CLAUDE_MAX_CHARS).default(320).describe(
    "The text is cut to this many characters.",
  ),
  json: z.boolean().default(false).describe(
    "Ask for one JSON object; it is returned parsed as data (a reply that is not one fails).",
  ),
}).strict();

const claudeGenerateOutput = z.object({
  text: z.string(),
  data: z.record(z.string(), z.unknown()).optional(),
});

const smsQueueInput = z.object(queueMessageInput.shape)
  .omit({ user_id: true, idempotency_key: true }).strict();
const callScheduleInput = z.object(scheduleCallInput.shape)
  .omit({ user_id: true, idempotency_key: true }).strict();
const memoryUpdateInput = z.object(rememberInput.shape).omit({ user_id: true }).strict();

const httpPostInput = z.object({
  url: z.url({ protocol: /^https?$/ }).max(2000).describe(
    "An http(s) URL whose origin is in ROUTINE_HTTP_ALLOWLIST.",
  ),
  body: z.unknown().optional().describe("Any JSON value, sent as the request body."),
}).strict();

const httpPostOutput = z.object({
  status: z.number().int(),
  body: z.unknown(),
});

export const STEP_TOOLS = {
  "context.read": { input: contextReadInput, output: getUserContextOutput },
  "claude.generate": { input: claudeGenerateInput, output: claudeGenerateOutput },
  "sms.queue": {
    input: smsQueueInput,
    output: z.object({ message_id: z.uuid(), status: z.string() }),
  },
  "call.schedule": {
    input: callScheduleInput,
    output: z.object({ call_id: z.uuid(), status: z.string(), scheduled_for: z.string() }),
  },
  "memory.update": { input: memoryUpdateInput, output: rememberOutput },
  "http.post": { input: httpPostInput, output: httpPostOutput },
} as const;

export type StepToolName = keyof typeof STEP_TOOLS;
export const STEP_TOOL_NAMES = Object.keys(STEP_TOOLS) as StepToolName[];

export function isStepTool(name: string): name is StepToolName {
  return Object.hasOwn(STEP_TOOLS, name);
}

/**
 * The JSON Schema create_routine checks a step's `with` against. sms.queue's
 * "text or data" rule is a refinement zod cannot express in JSON Schema, so it
 * is added here as the oneOf it is.
 */
export function stepInputJsonSchema(name: StepToolName): Record<string, unknown> {
  const { $schema: _, ...schema } = z.toJSONSchema(STEP_TOOLS[name].input, { io: "input" });
  if (name === "sms.queue") {
    return { ...schema, oneOf: [{ required: ["text"] }, { required: ["data"] }] };
  }
  return schema;
}

/** The top-level fields a template may read from a step's output. */
export function stepOutputFields(name: StepToolName): string[] {
  return Object.keys(STEP_TOOLS[name].output.shape);
}
