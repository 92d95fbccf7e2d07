import { z } from "zod";

const webhookPayload = z.object({
  type: z.literal("INSERT"),
  table: z.literal("interactions"),
  schema: z.literal("public"),
  record: z.object({ id: z.uuid() }).loose(),
  old_record: z.null().optional(),
});

const directPayload = z.object({ interaction_id: z.uuid() }).strict();

/**
 * The Database Webhook payload, or `{interaction_id}` from a retry or an SDK.
 * Which one is decided by the shape, so errors name the fields of that one.
 */
export const analyzeRequest = z.unknown().transform((body, ctx) => {
  const isWebhook = typeof body === "object" && body !== null && "type" in body;
  const parsed = (isWebhook ? webhookPayload : directPayload).safeParse(body);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, code: "custom" });
    return z.NEVER;
  }
  return {
    interactionId: "record" in parsed.data ? parsed.data.record.id : parsed.data.interaction_id,
  };
});
