import { z } from "zod";
import {
  handle,
  json,
  parseWith,
  readJson,
  requireBearer,
  requireMethod,
} from "../../../shared/http.ts";

const processRequest = z.object({ source: z.string().max(64).optional() }).strict();

export function createProcessQueueHandler(deps: { secret: string }) {
  return handle(async (req) => {
    requireMethod(req, "POST");
    requireBearer(req, deps.secret);
    const { source } = parseWith(processRequest, await readJson(req));
    return json({
      function: "process-queue",
      source: source ?? "manual",
      sent: 0,
      deferred: 0,
      superseded: 0,
      expired: 0,
      failed: 0,
      calls_dispatched: 0,
      analyses_redispatched: 0,
    });
  });
}
