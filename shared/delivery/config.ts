// Delivery settings that live in the function's environment.
import { z } from "zod";

const schema = z.object({
  // One segment is asked for; a render over this many is asked again once, then failed.
  RENDER_MAX_SEGMENTS: z.preprocess(
    (v) => (typeof v === "string" && v.trim() === "" ? undefined : v),
    z.coerce.number().int().min(1).max(10).default(2),
  ),
});

export interface DeliveryConfig {
  renderMaxSegments: number;
}

/** Throws naming the variable when a value is out of bounds. */
export function deliveryConfigFromEnv(env: Record<string, string | undefined>): DeliveryConfig {
  const result = schema.safeParse(env);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new Error(`Delivery configuration: ${issues.join("; ")}`);
  }
  return { renderMaxSegments: result.data.RENDER_MAX_SEGMENTS };
}
