// A step's `when`: a JMESPath expression over {steps, params, user}, evaluated
// by the maintained @jmespath-community/jmespath library. The step runs when
// the result is truthy in JMESPath's own sense: false, null, "", [] and {} are
// false, everything else true.
import { compile, search } from "@jmespath-community/jmespath";

export class ConditionError extends Error {
  override name = "ConditionError";
}

export type JSONValue = Parameters<typeof search>[0];

/** Throws ConditionError naming the problem when `expression` is not JMESPath. */
export function checkCondition(expression: string): void {
  try {
    compile(expression);
  } catch (err) {
    throw new ConditionError(`when is not a JMESPath expression: ${(err as Error).message}`);
  }
}

export function isTruthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === "") return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === "object") return Object.keys(value).length > 0;
  return true;
}

export function conditionHolds(expression: string, data: Record<string, unknown>): boolean {
  checkCondition(expression);
  try {
    return isTruthy(search(data as JSONValue, expression));
  } catch (err) {
    throw new ConditionError(`when could not be evaluated: ${(err as Error).message}`);
  }
}
