// @ts-types="@modelcontextprotocol/sdk/server/webStandardStreamableHttp"
import {
  WebStandardStreamableHTTPServerTransport,
} from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { json, readJson } from "../../../shared/http.ts";
import { authenticate, bearerToken } from "../../../shared/agents/auth.ts";
import { AgentError } from "../../../shared/agents/errors.ts";
import { agentErrorResponse } from "../../../shared/agents/http.ts";
import type { RegistryDeps } from "../../../shared/agents/registry.ts";
import { buildMcpServer } from "./server.ts";

/** Only a tools/call spends the key's rate: the handshake and listing are free. */
export function callsATool(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((m) => (m as { method?: unknown } | null)?.method === "tools/call");
}

/**
 * MCP over Streamable HTTP, stateless: every POST is answered on its own with
 * a fresh server and transport. There is no session, so there is no stream to
 * open with GET or to end with DELETE.
 */
export function createMcpHandler(deps: RegistryDeps) {
  return async (req: Request): Promise<Response> => {
    try {
      if (req.method !== "POST") {
        throw new AgentError(
          "method_not_allowed",
          "this MCP server is stateless: use POST",
        );
      }
      bearerToken(req);
      let body: unknown;
      try {
        body = await readJson(req);
      } catch (err) {
        if ((err as { status?: number }).status === 413) throw err;
        return json({
          jsonrpc: "2.0",
          id: null,
          error: { code: -32700, message: "Parse error: the body is not JSON" },
        }, 400);
      }
      const principal = await authenticate(deps.sql, req, callsATool(body));
      const server = buildMcpServer(deps, principal);
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true,
      });
      await server.connect(transport);
      try {
        return await transport.handleRequest(req, { parsedBody: body });
      } finally {
        await server.close();
      }
    } catch (err) {
      return agentErrorResponse(err);
    }
  };
}
