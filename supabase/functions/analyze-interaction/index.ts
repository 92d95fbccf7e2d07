import { loadConfig } from "../../../shared/config.ts";
import { createAnalyzeHandler } from "./handler.ts";

const config = loadConfig();

Deno.serve(createAnalyzeHandler({ secret: config.ORCHESTRATOR_SECRET }));
