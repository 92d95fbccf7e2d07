import type { Sql } from "../../../shared/db.ts";
import { handle, json, requireMethod } from "../../../shared/http.ts";

/** GET: is the database reachable, and how fast. 503 when it is not. */
export function createHealthHandler(deps: { sql: Sql; now?: () => number }) {
  const now = deps.now ?? (() => performance.now());
  return handle(async (req) => {
    requireMethod(req, "GET");
    const started = now();
    try {
      await deps.sql`select 1`;
      const latency = Math.round((now() - started) * 100) / 100;
      return json({ status: "ok", database: { connected: true, latency_ms: latency } });
    } catch (err) {
      return json({
        status: "unavailable",
        database: { connected: false, error: err instanceof Error ? err.message : String(err) },
      }, 503);
    }
  });
}
