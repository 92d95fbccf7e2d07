// ${...} templates in a step's `with`: ${steps.<id>.<path>}, ${params.<name>},
// ${user.timezone}, ${user.local_date}, ${user.local_time}, ${user.id} and
// ${occurrence}. A string that is one template alone becomes the value it
// names, whatever its type (so "${steps.review.data.patterns}" is an array);
// inside other text a value is written as itself if a string, else as JSON.
// A reference to nothing is empty text, and a lone one drops its field. Pure.

export interface Scope {
  steps: Record<string, unknown>;
  params: Record<string, unknown>;
  user: { id: string; timezone: string; local_date: string; local_time: string };
  occurrence: string;
}

const TEMPLATE = /\$\{([^}]*)\}/g;
const LONE = /^\$\{([^}]*)\}$/;

/** The value a reference such as `steps.ctx.memory.0.key` names, or undefined. */
export function lookUp(scope: Scope, ref: string): unknown {
  const [head, ...path] = ref.trim().split(".");
  if (head === "occurrence" && path.length === 0) return scope.occurrence;
  let value: unknown = head === "steps" || head === "params" || head === "user"
    ? scope[head]
    : undefined;
  for (const key of path) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

const asText = (value: unknown) =>
  value === undefined || value === null
    ? ""
    : typeof value === "string"
    ? value
    : JSON.stringify(value);

/** `value` with every template filled in from `scope`. */
export function render(value: unknown, scope: Scope): unknown {
  if (typeof value === "string") {
    const lone = LONE.exec(value);
    if (lone) return lookUp(scope, lone[1]);
    return value.replace(TEMPLATE, (_, ref: string) => asText(lookUp(scope, ref)));
  }
  if (Array.isArray(value)) return value.map((item) => render(item, scope));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .map(([key, item]) => [key, render(item, scope)] as const)
        .filter(([, item]) => item !== undefined),
    );
  }
  return value;
}
