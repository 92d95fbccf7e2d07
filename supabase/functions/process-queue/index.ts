import { loadConfig } from "../../../shared/config.ts";
import { createProcessQueueHandler } from "./handler.ts";

const config = loadConfig();

Deno.serve(createProcessQueueHandler({ secret: config.ORCHESTRATOR_SECRET }));
