// A PostgreSQL 15 cluster in a folder of ours, with pg_cron preloaded.
import { join } from "node:path";
import { PG_BIN } from "./packages.ts";
import { exists, isRoot, run, runOrThrow } from "./process.ts";

export interface ClusterOptions {
  /** Folder holding data/, the socket and the server log; created on first use. */
  dir: string;
  port: number;
  /** Throw-away clusters trade durability for speed. */
  durable: boolean;
}

export const dbUrl = (port: number) => `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`;

const dataDir = (o: ClusterOptions) => join(o.dir, "data");

async function chownToPostgres(path: string): Promise<void> {
  if (isRoot()) await runOrThrow("chown", ["-R", "postgres:postgres", path]);
}

/** initdb on first use; returns true when the cluster was created just now. */
export async function ensureCluster(o: ClusterOptions): Promise<boolean> {
  if (await exists(join(dataDir(o), "PG_VERSION"))) return false;
  await Deno.mkdir(o.dir, { recursive: true });
  const pwfile = join(o.dir, "pwfile");
  await Deno.writeTextFile(pwfile, "postgres\n");
  await chownToPostgres(o.dir);
  try {
    await runOrThrow(`${PG_BIN}/initdb`, [
      "-D",
      dataDir(o),
      "-U",
      "postgres",
      "--pwfile",
      pwfile,
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "-E",
      "UTF8",
      "--locale=C.UTF-8",
    ], { asPostgres: true });
  } finally {
    await Deno.remove(pwfile);
  }
  return true;
}

function serverOptions(o: ClusterOptions): string[] {
  const settings: Record<string, string> = {
    port: String(o.port),
    listen_addresses: "127.0.0.1",
    unix_socket_directories: o.dir,
    shared_preload_libraries: "pg_cron",
    "cron.database_name": "postgres",
    // Jobs run in background workers, so pg_cron needs no password to connect.
    "cron.use_background_workers": "on",
    max_worker_processes: "32",
    max_connections: "200",
    timezone: "UTC",
  };
  if (!o.durable) {
    Object.assign(settings, { fsync: "off", synchronous_commit: "off", full_page_writes: "off" });
  }
  return Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`);
}

export async function isRunning(o: ClusterOptions): Promise<boolean> {
  const status = await run(`${PG_BIN}/pg_ctl`, ["-D", dataDir(o), "status"], { asPostgres: true });
  return status.code === 0;
}

/** Starts the server unless it already runs; returns false when it was already up. */
export async function startCluster(o: ClusterOptions): Promise<boolean> {
  if (await isRunning(o)) return false;
  await runOrThrow(`${PG_BIN}/pg_ctl`, [
    "-D",
    dataDir(o),
    "-l",
    join(o.dir, "postgres.log"),
    "-w",
    "-t",
    "60",
    "-o",
    serverOptions(o).join(" "),
    "start",
  ], { asPostgres: true });
  return true;
}

export async function stopCluster(o: ClusterOptions): Promise<void> {
  if (!(await isRunning(o))) return;
  await runOrThrow(`${PG_BIN}/pg_ctl`, ["-D", dataDir(o), "-m", "fast", "-w", "stop"], {
    asPostgres: true,
  });
}
