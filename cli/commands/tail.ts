// tail: follows operator_events until Ctrl-C. Each poll re-reads a short
// overlap before the last event seen, because a transaction that began earlier
// can commit later with an earlier timestamp; event keys drop the repeats.
import { type Ctx, type Outcome, userId } from "../context.ts";
import { isoMinute, maskPhones, paintState } from "../output.ts";

interface Event {
  key: string;
  at: Date;
  kind: string;
  user_id: string | null;
  what: string;
  detail: string | null;
}

const OVERLAP_MS = 10_000;

/** Remembers keys seen within the overlap window, forgetting older ones. */
export function createDeduper() {
  const seen = new Map<string, number>();
  return (events: Event[], horizon: number): Event[] => {
    for (const [key, at] of seen) if (at < horizon) seen.delete(key);
    return events.filter((e) => {
      if (seen.has(e.key)) return false;
      seen.set(e.key, e.at.getTime());
      return true;
    });
  };
}

export async function tail(ctx: Ctx): Promise<Outcome> {
  const since = (ctx.flags.since as Date | undefined) ?? new Date();
  const intervalMs = (ctx.flags.interval as number) * 1000;
  const user = ctx.flags.user ? await userId(ctx.sql, ctx.flags.user as string) : null;
  const stop = ctx.interrupted();
  const fresh = createDeduper();
  let cursor = since.getTime();
  let count = 0;
  while (!stop.aborted) {
    const from = new Date(Math.max(cursor - OVERLAP_MS, since.getTime()));
    const rows = await ctx.sql<Event[]>`
      select key, at, kind, user_id, what, detail from public.operator_events
       where at >= ${from} and (${user}::uuid is null or user_id = ${user})
       order by at, key limit 1000`;
    for (const e of fresh(rows, from.getTime() - OVERLAP_MS)) {
      cursor = Math.max(cursor, e.at.getTime());
      count++;
      ctx.emit(ctx.flags.json ? JSON.stringify(maskPhones(e)) : line(ctx, e));
    }
    await sleep(intervalMs, stop);
  }
  return { data: { events: count }, text: "", streamed: true };
}

function line(ctx: Ctx, e: Event): string {
  const time = e.at.toISOString().slice(11, 19);
  const what = e.what.split(" ");
  const painted = [what[0], paintState(ctx.style, what.slice(1).join(" "))].join(" ");
  return `${ctx.style.dim(`${isoMinute(e.at).slice(0, 10)} ${time}Z`)} ${
    e.kind.padEnd(8)
  } ${painted}` +
    `${e.detail ? `  ${e.detail}` : ""}${e.user_id ? ctx.style.dim(`  user ${e.user_id}`) : ""}`;
}

function sleep(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      stop.removeEventListener("abort", done);
      resolve();
    }
    stop.addEventListener("abort", done);
  });
}
