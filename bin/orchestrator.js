#!/usr/bin/env node
// `npx orchestrator`: runs the operator CLI (cli/main.ts) with the Deno that
// npm installed, so nothing needs building. Ctrl-C (and a SIGINT sent to this
// process alone) reaches Deno, which stops cleanly; its exit code is ours.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const deno = join(root, "node_modules", ".bin", process.platform === "win32" ? "deno.cmd" : "deno");
const child = spawn(
  deno,
  [
    "run",
    "-A",
    "--quiet",
    "--config",
    join(root, "deno.json"),
    join(root, "cli", "main.ts"),
    ...process.argv.slice(2),
  ],
  { stdio: "inherit" },
);
process.on("SIGINT", () => child.kill("SIGINT"));
process.on("SIGTERM", () => child.kill("SIGTERM"));
child.on("error", (err) => {
  console.error(`orchestrator: cannot start Deno (${err.message}); run npm install first`);
  process.exit(1);
});
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
