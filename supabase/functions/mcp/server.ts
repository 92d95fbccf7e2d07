// The registry as an MCP server: one McpServer per request (the SDK's
// stateless pattern), listing only the tools the key may use, each with the
// registry's zod schemas (the SDK turns them into JSON Schema and validates
// arguments before a tool runs; a bad argument is a tool error naming it).
//
// The SDK's export map sends "<path>.js" to "<path>.js.d.ts" for types, which
// does not exist: the types are named with @ts-types.
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { Principal } from "../../../shared/agents/auth.ts";
import { asAgentError } from "../../../shared/agents/http.ts";
import { callTool, type RegistryDeps, toolsFor } from "../../../shared/agents/registry.ts";

export const SERVER_INFO = { name: "agent-orchestrator", version: "0.1.0" };

const INSTRUCTIONS = "Tools to reach a user by SMS and voice calls under their quiet hours, " +
  "budget and opt-out, and to read and add to what is known about them. Call " +
  "get_user_context before talking to a user. Every tool names the user by user_id; " +
  "tools with an effect take an optional idempotency_key, so a retry never acts twice.";

export function toolResult(data: unknown): CallToolResult {
  return {
    content: [{ type: "text", text: JSON.stringify(data) }],
    structuredContent: data as Record<string, unknown>,
  };
}

/** The front door's error as a tool error: the same {code, message, field} as the JSON API. */
export function toolError(err: unknown): CallToolResult {
  const error = asAgentError(err).toBody();
  const field = error.field ? ` (field: ${error.field})` : "";
  return {
    isError: true,
    content: [
      { type: "text", text: `${error.code}: ${error.message}${field}` },
      { type: "text", text: JSON.stringify({ error }) },
    ],
  };
}

export function buildMcpServer(
  deps: RegistryDeps,
  principal: Principal,
): McpServer {
  const server = new McpServer(SERVER_INFO, { instructions: INSTRUCTIONS });
  for (const tool of toolsFor(principal)) {
    server.registerTool(tool.name, {
      description: tool.description,
      inputSchema: tool.input,
      outputSchema: tool.output,
    }, async (args: unknown) => {
      try {
        return toolResult(
          await callTool(deps, principal, "mcp", tool.name, args),
        );
      } catch (err) {
        return toolError(err);
      }
    });
  }
  return server;
}
