// Bringing a bare cluster to what the functions expect: the Supabase baseline,
// our migrations through the real Supabase CLI, and the Vault secrets.
import { join } from "node:path";
import type { Sql } from "../../shared/db.ts";
import { run } from "./process.ts";

export async function applyBaseline(sql: Sql, root: string): Promise<void> {
  await sql.unsafe(await Deno.readTextFile(join(root, "scripts/local/baseline.sql")));
}

export async function pushMigrations(root: string, url: string): Promise<string> {
  const result = await run(
    join(root, "node_modules/.bin/supabase"),
    ["db", "push", "--db-url", url, "--yes", "--workdir", root],
    { env: { ...Deno.env.toObject(), PGSSLMODE: "disable", DO_NOT_TRACK: "1" }, cwd: root },
  );
  const output = `${result.stdout}${result.stderr}`;
  const applied = /Finished supabase db push|up to date/i.test(output);
  if (result.code !== 0 || !applied) {
    throw new Error(`supabase db push failed (exit ${result.code}):\n${output}`);
  }
  return output;
}

/** The secrets SQL reads to call the edge functions (pg_cron, the webhook trigger). */
export async function seedVault(
  sql: Sql,
  secrets: { project_url: string; orchestrator_secret: string },
): Promise<void> {
  for (const [name, value] of Object.entries(secrets)) {
    await sql`
      select case
        when exists (select 1 from vault.secrets where name = ${name})
          then (select vault.update_secret(id, ${value}) from vault.secrets where name = ${name})::text
        else vault.create_secret(${value}, ${name})::text
      end`;
  }
}
