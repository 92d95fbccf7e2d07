// The Debian packages the local stack needs, installed when we are root.
import { exists, isRoot, runOrThrow } from "./process.ts";

export interface DebianPackage {
  name: string;
  /** A file the package installs; its presence means the package is there. */
  provides: string;
}

export const PG_BIN = "/usr/lib/postgresql/15/bin";

export const RUNTIME_PACKAGES: DebianPackage[] = [
  { name: "postgresql-15", provides: `${PG_BIN}/postgres` },
  { name: "postgresql-15-cron", provides: "/usr/lib/postgresql/15/lib/pg_cron.so" },
];

export const TEST_PACKAGES: DebianPackage[] = [
  { name: "postgresql-15-pgtap", provides: "/usr/share/postgresql/15/extension/pgtap.control" },
  {
    name: "postgresql-15-plpgsql-check",
    provides: "/usr/lib/postgresql/15/lib/plpgsql_check.so",
  },
  { name: "libtap-parser-sourcehandler-pgtap-perl", provides: "/usr/bin/pg_prove" },
  { name: "postgresql-client-15", provides: "/usr/bin/psql" },
];

export async function ensurePackages(
  packages: DebianPackage[],
  log: (line: string) => void,
): Promise<void> {
  const missing: string[] = [];
  for (const pkg of packages) {
    if (!(await exists(pkg.provides))) missing.push(pkg.name);
  }
  if (missing.length === 0) return;
  const command = `apt-get update && apt-get install -y ${missing.join(" ")}`;
  if (!isRoot()) {
    throw new Error(
      `missing Debian packages: ${
        missing.join(", ")
      }.\nInstall them with:\n  sudo sh -c '${command}'`,
    );
  }
  log(`installing ${missing.join(", ")} with apt-get (one-time)...`);
  const env = { ...Deno.env.toObject(), DEBIAN_FRONTEND: "noninteractive" };
  await runOrThrow("apt-get", ["update", "-qq"], { env });
  await runOrThrow("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], {
    env,
  });
}
