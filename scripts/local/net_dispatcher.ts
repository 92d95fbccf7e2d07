// The local stand-in for pg_net's background worker. Requests are rows in
// net.http_request_queue, visible only once their transaction commits; the
// NOTIFY that wakes us is likewise delivered only on commit. Each request is
// taken off the queue, sent with its own timeout, and its outcome written to
// net._http_response, as pg_net does.
import type { Sql } from "../../shared/db.ts";

interface QueuedRequest {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Uint8Array<ArrayBuffer> | null;
  timeout_milliseconds: number;
}

export interface NetDispatcher {
  stop(): Promise<void>;
}

const BATCH = 200;
/** A safety net for a lost NOTIFY (for example across a reconnect). */
const POLL_MS = 1000;

export async function startNetDispatcher(
  sql: Sql,
  log: (line: string) => void,
): Promise<NetDispatcher> {
  let stopped = false;
  let draining: Promise<void> | null = null;
  let rerun = false;
  const inFlight = new Set<Promise<void>>();

  const send = async (req: QueuedRequest): Promise<void> => {
    try {
      const res = await fetch(req.url, {
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal: AbortSignal.timeout(req.timeout_milliseconds),
      });
      const content = await res.text();
      await sql`
        insert into net._http_response (id, status_code, content_type, headers, content, timed_out)
        values (${req.id}, ${res.status}, ${res.headers.get("content-type")},
                ${sql.json(Object.fromEntries(res.headers))}, ${content}, false)`;
    } catch (err) {
      const timedOut = err instanceof DOMException && err.name === "TimeoutError";
      const message = timedOut
        ? `Timeout of ${req.timeout_milliseconds} ms reached`
        : err instanceof Error
        ? err.message
        : String(err);
      if (!timedOut) log(`request ${req.id} to ${req.url} failed: ${message}`);
      await sql`
        insert into net._http_response (id, timed_out, error_msg)
        values (${req.id}, ${timedOut}, ${message})`.catch(() => {});
    }
  };

  const drainOnce = async (): Promise<void> => {
    do {
      rerun = false;
      const batch = await sql<QueuedRequest[]>`
        delete from net.http_request_queue
         where id in (
           select id from net.http_request_queue order by id limit ${BATCH} for update skip locked
         )
        returning id, method, url, headers, body, timeout_milliseconds`;
      for (const req of batch) {
        const p = send(req).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      if (batch.length === BATCH) rerun = true;
    } while (rerun && !stopped);
  };

  const drain = () => {
    if (stopped) return;
    if (draining) {
      rerun = true;
      return;
    }
    draining = drainOnce()
      .catch((err) => log(`dispatcher: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => (draining = null));
  };

  const listener = await sql.listen("net_http_request", drain);
  const timer = setInterval(drain, POLL_MS);
  // pg_net keeps responses for six hours.
  const sweeper = setInterval(() => {
    sql`delete from net._http_response where created < now() - interval '6 hours'`.catch(() => {});
  }, 60_000);
  drain();

  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearInterval(sweeper);
      await listener.unlisten();
      await draining;
      await Promise.allSettled([...inFlight]);
    },
  };
}
