import { loadConfig } from "../../../shared/config.ts";
import { connect } from "../../../shared/db.ts";
import { createMcpHandler } from "./handler.ts";

const config = loadConfig(Deno.env.toObject());
const sql = connect(config.SUPABASE_DB_URL, 4);

Deno.serve(
  createMcpHandler({
    sql,
    now: () => new Date(),
    clock: () => performance.now(),
  }),
);
