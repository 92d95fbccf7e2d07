import {
  handle,
  json,
  parseWith,
  readJson,
  requireBearer,
  requireMethod,
} from "../../../shared/http.ts";
import { analyzeRequest } from "./request.ts";

export function createAnalyzeHandler(deps: { secret: string }) {
  return handle(async (req) => {
    requireMethod(req, "POST");
    requireBearer(req, deps.secret);
    const { interactionId } = parseWith(analyzeRequest, await readJson(req));
    return json({ accepted: true, interaction_id: interactionId }, 202);
  });
}
