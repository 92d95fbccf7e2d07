import type { Sql } from "../../../shared/db.ts";
import { handle, json, requireMethod } from "../../../shared/http.ts";
import { logError } from "../../../shared/log.ts";

export interface HealthDeps {
  sql: Sql;
  now?: () => number;
  /** Where the driver's error goes: the operator's log, never the caller. */
  logFailure?: (err: unknown) => void;
}

/**
 * GET: is the database reachable, and how fast. 503 when it is not, with a
 * generic message: anyone may call this, and a driver's error can name hosts,
 * users and settings.
 */
export function createHealthHandler(deps: HealthDeps) {
  const now = deps.now ?? (() => performance.now());
  const logFailure = deps.logFailure ??
    ((err: unknown) => logError("health", "database check failed", err));
  return handle(async (req) => {
    requireMethod(req, "GET");
    const started = now();
    try {
      await deps.sql`select 1`;
      const latency = Math.round((now() - started) * 100) / 100;
      return json({ status: "ok", database: { connected: true, latency_ms: latency } });
    } catch (err) {
      logFailure(err);
      return json({
        status: "unavailable",
        database: { connected: false, error: "database unreachable" },
      }, 503);
    }
  });
}
