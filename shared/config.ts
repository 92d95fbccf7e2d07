// Configuration read from the environment once per isolate and validated, so a
// missing secret is a clear startup error rather than a confusing 500 later.
import { z } from "zod";

const schema = z.object({
  SUPABASE_DB_URL: z.string().min(1, "SUPABASE_DB_URL is required"),
  SUPABASE_URL: z.string().url().optional(),
  ORCHESTRATOR_SECRET: z.string().min(16, "ORCHESTRATOR_SECRET must be at least 16 characters"),
});

export type Config = z.infer<typeof schema>;

export function loadConfig(env: Record<string, string | undefined> = Deno.env.toObject()): Config {
  const result = schema.safeParse(env);
  if (!result.success) {
    throw new Error(
      `configuration: ${
        result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")
      }`,
    );
  }
  return result.data;
}
