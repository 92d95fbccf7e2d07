import { loadConfig } from "../../../shared/config.ts";
import { connect } from "../../../shared/db.ts";
import { createAgentsHandler } from "./handler.ts";

const config = loadConfig(Deno.env.toObject());
const sql = connect(config.SUPABASE_DB_URL, 4);

Deno.serve(createAgentsHandler({ sql, now: () => new Date(), clock: () => performance.now() }));
