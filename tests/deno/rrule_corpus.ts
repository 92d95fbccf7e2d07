// tests/corpus/rrules.json: the RRULEs the TypeScript validator (shared/time/rrule.ts) and the
// SQL one (public.rrule_problem) must decide alike: accepted, or refused with exactly `reason`.
import { z } from "zod";

const corpus = z.array(z.union([
  z.object({ rule: z.string(), accepted: z.literal(true), reason: z.string().min(1) }),
  z.object({ rule: z.string(), accepted: z.literal(false), reason: z.string().min(1) }),
]));
export type RRuleCase = z.infer<typeof corpus>[number];

export async function loadRRuleCorpus(): Promise<RRuleCase[]> {
  const url = new URL("../corpus/rrules.json", import.meta.url);
  return corpus.parse(JSON.parse(await Deno.readTextFile(url)));
}

/** What a validator answered, in the corpus' terms: null when accepted, else its reason. */
export function mismatch(c: RRuleCase, problem: string | null): string | null {
  if (c.accepted) return problem === null ? null : `refused: ${problem}`;
  return problem === c.reason ? null : `expected "${c.reason}", got ${JSON.stringify(problem)}`;
}
