// Serves every edge function with Deno from its own entrypoint and its own
// deno.json, one process each, behind a gateway at /functions/v1/<name> like
// the Supabase CLI's.
import { join } from "node:path";
import { denoNetworkEnv } from "./env.ts";
import { exists, pipeLines, runOrThrow } from "./process.ts";

export interface FunctionsServer {
  names: string[];
  stop(): Promise<void>;
}

export interface FunctionsOptions {
  root: string;
  apiPort: number;
  /** The port of the i-th function (sorted by name), on 127.0.0.1 only. */
  functionPort: (index: number) => number;
  env: Record<string, string>;
  log: (line: string) => void;
}

export async function listFunctions(root: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(join(root, "supabase/functions"))) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    if (await exists(join(root, "supabase/functions", entry.name, "index.ts"))) {
      names.push(entry.name);
    }
  }
  return names.sort();
}

/**
 * Fetches every function's packages, one function at a time, from its own
 * deno.json and lock file, before any is served: a fresh machine has an empty
 * Deno cache, and the functions would otherwise all race to fill it.
 */
export async function cacheFunctionPackages(
  root: string,
  names: string[],
  log: (line: string) => void,
): Promise<void> {
  for (const name of names) {
    const dir = join(root, "supabase/functions", name);
    log(`fetching the packages of ${name}`);
    await runOrThrow(Deno.execPath(), [
      "install",
      "--quiet",
      "--frozen",
      "--config",
      join(dir, "deno.json"),
      "--entrypoint",
      join(dir, "index.ts"),
    ], { cwd: root, env: { ...Deno.env.toObject(), ...denoNetworkEnv() } });
  }
}

function spawnFunction(o: FunctionsOptions, name: string, port: number) {
  const dir = join(o.root, "supabase/functions", name);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--frozen",
      "--config",
      join(dir, "deno.json"),
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-sys",
      join(dir, "index.ts"),
    ],
    cwd: o.root,
    // Only what the stack passes: a function never sees this process's secrets.
    clearEnv: true,
    env: { ...o.env, ...denoNetworkEnv(), DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${port}` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const onLine = (line: string) => {
    if (line.trim()) o.log(`[${name}] ${line}`);
  };
  const piping = Promise.all([pipeLines(child.stdout, onLine), pipeLines(child.stderr, onLine)]);
  const state: { exited?: Deno.CommandStatus } = {};
  child.status.then((status) => (state.exited = status));
  const ready = (async () => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (state.exited) {
        throw new Error(`function ${name} exited (${state.exited.code}) before listening`);
      }
      if (Date.now() > deadline) throw new Error(`function ${name} did not listen within 60 s`);
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  })();
  return { child, ready, piping };
}

export async function serveFunctions(o: FunctionsOptions): Promise<FunctionsServer> {
  const names = await listFunctions(o.root);
  await cacheFunctionPackages(o.root, names, o.log);
  const ports = new Map(names.map((name, i) => [name, o.functionPort(i)]));
  const children = names.map((name) => spawnFunction(o, name, ports.get(name)!));

  let gateway: Deno.HttpServer | undefined;
  const stop = async () => {
    for (const { child } of children) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
    }
    await Promise.allSettled(children.flatMap(({ child, piping }) => [child.status, piping]));
    await gateway?.shutdown();
  };

  try {
    await Promise.all(children.map((c) => c.ready));
    gateway = Deno.serve(
      { hostname: "127.0.0.1", port: o.apiPort, onListen: () => {} },
      (req) => proxy(req, ports),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { names, stop };
}

async function proxy(req: Request, ports: Map<string, number>): Promise<Response> {
  const url = new URL(req.url);
  const match = /^\/functions\/v1\/([^/]+)(\/.*)?$/.exec(url.pathname);
  const port = match ? ports.get(match[1]) : undefined;
  if (!match || port === undefined) {
    return Response.json({ error: "not_found", message: "no such function" }, { status: 404 });
  }
  const target = `http://127.0.0.1:${port}/${match[1]}${match[2] ?? ""}${url.search}`;
  try {
    const res = await fetch(target, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      redirect: "manual",
    });
    return new Response(res.body, { status: res.status, headers: res.headers });
  } catch (err) {
    return Response.json({
      error: "function_unavailable",
      message: err instanceof Error ? err.message : String(err),
    }, { status: 502 });
  }
}
