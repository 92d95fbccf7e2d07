import { connect } from "../../../shared/db.ts";
import { createHealthHandler } from "./handler.ts";

const url = Deno.env.get("SUPABASE_DB_URL");
if (!url) throw new Error("SUPABASE_DB_URL is required");

Deno.serve(createHealthHandler({ sql: connect(url, 1) }));
