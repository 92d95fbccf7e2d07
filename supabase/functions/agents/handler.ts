import { z } from "zod";
import { readJson } from "../../../shared/http.ts";
import { authenticate } from "../../../shared/agents/auth.ts";
import { AgentError, invalidInput } from "../../../shared/agents/errors.ts";
import { agentErrorResponse } from "../../../shared/agents/http.ts";
import { callTool, type RegistryDeps } from "../../../shared/agents/registry.ts";

// The envelope only; the tool validates its own input.
const envelope = z.object({
  tool: z.string().min(1).max(64),
  input: z.record(z.string(), z.unknown()).default({}),
}).strict();

/** POST {"tool", "input"} -> 200 {"data"}, or {"error": {code, message, field}}. */
export function createAgentsHandler(deps: RegistryDeps) {
  return async (req: Request): Promise<Response> => {
    try {
      if (req.method !== "POST") throw new AgentError("method_not_allowed", "use POST");
      // The key first: nobody without one gets the body read.
      const principal = await authenticate(deps.sql, req);
      const parsed = envelope.safeParse(await readJson(req));
      if (!parsed.success) throw invalidInput(parsed.error);
      const data = await callTool(deps, principal, "agents", parsed.data.tool, parsed.data.input);
      return Response.json({ data });
    } catch (err) {
      return agentErrorResponse(err);
    }
  };
}
