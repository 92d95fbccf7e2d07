// The front door's HTTP errors: `{"error": {"code", "message", "field"}}` with
// the status of the code, Retry-After on 429, WWW-Authenticate on 401. An
// error of the shared HTTP plumbing (bad JSON, too large) keeps its status.
import { HttpError, json } from "../http.ts";
import { AgentError, type ErrorCode } from "./errors.ts";

const HTTP_CODES: Record<number, ErrorCode> = {
  400: "invalid_input",
  401: "unauthorized",
  405: "method_not_allowed",
  413: "payload_too_large",
};

export function asAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  if (err instanceof HttpError && HTTP_CODES[err.status]) {
    return new AgentError(
      HTTP_CODES[err.status],
      err.message,
      err.status === 400 ? "(body)" : null,
    );
  }
  console.error("agents: unhandled error:", err instanceof Error ? err.message : String(err));
  return new AgentError("internal", "internal error");
}

export function agentErrorResponse(err: unknown): Response {
  const error = asAgentError(err);
  const headers: Record<string, string> = {};
  if (error.code === "unauthorized") headers["www-authenticate"] = 'Bearer realm="orchestrator"';
  if (error.code === "method_not_allowed") headers["allow"] = "POST";
  if (error.retryAfterSeconds !== undefined) {
    headers["retry-after"] = String(error.retryAfterSeconds);
  }
  return json({ error: error.toBody() }, error.status, headers);
}
