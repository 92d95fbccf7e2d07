// npm run reset: wipe the local database (the next start creates a new one).
import { join } from "node:path";
import { isRunning } from "./local/postgres.ts";
import { exists } from "./local/process.ts";
import { repoRoot } from "./local/stack.ts";

const dir = join(repoRoot(), ".local/db");
if (await exists(join(dir, "data")) && await isRunning({ dir, port: 54322, durable: true })) {
  console.error("The local stack is running: stop it (Ctrl-C in its terminal) before a reset.");
  Deno.exit(1);
}
await Deno.remove(dir, { recursive: true }).catch((err) => {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
});
console.log(`Removed ${dir}. The next npm start creates a fresh database.`);
