// Serves every edge function with Deno from its own entrypoint and its own
// deno.json, one process each, behind a gateway at /functions/v1/<name> like
// the Supabase CLI's. A process that dies is started again on its port, as the
// Edge Runtime boots a new isolate; throw-away stacks can kill one on request.
import { join } from "node:path";
import { denoNetworkEnv } from "./env.ts";
import { exists, pipeLines, runOrThrow } from "./process.ts";

export interface FunctionsServer {
  names: string[];
  stop(): Promise<void>;
}

/** What the control API reports about one function's process. */
export interface FunctionState {
  pid: number;
  restarts: number;
  listening: boolean;
}

export interface FunctionsOptions {
  root: string;
  apiPort: number;
  /** The port of the i-th function (sorted by name), on 127.0.0.1 only. */
  functionPort: (index: number) => number;
  env: Record<string, string>;
  log: (line: string) => void;
  /**
   * Answer /__stack/functions/<name> (state) and .../kill (SIGKILL, then the
   * restart) on the gateway: for throw-away stacks' tests, never npm start.
   */
  controlApi?: boolean;
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

/** One process of one function: it ends when `status` resolves. */
interface FunctionProcess {
  child: Deno.ChildProcess;
  /** Resolves once the port accepts connections; rejects when it never does. */
  ready: Promise<void>;
  /** The process has exited and its output is fully logged. */
  done: Promise<Deno.CommandStatus>;
}

const LISTEN_TIMEOUT_MS = 60_000;

function spawnFunction(o: FunctionsOptions, name: string, port: number): FunctionProcess {
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
  const done = child.status.then(async (status) => {
    state.exited = status;
    await piping.catch(() => {});
    return status;
  });
  const ready = (async () => {
    const deadline = Date.now() + LISTEN_TIMEOUT_MS;
    for (;;) {
      if (state.exited) {
        throw new Error(`function ${name} exited (${state.exited.code}) before listening`);
      }
      if (Date.now() > deadline) {
        throw new Error(`function ${name} did not listen within ${LISTEN_TIMEOUT_MS / 1000} s`);
      }
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  })();
  return { child, ready, done };
}

/** Restart delays: doubling from the first to the cap, back to the first once a process lasted. */
export const RESTART_BACKOFF = { firstMs: 100, maxMs: 5_000, stableAfterMs: 10_000 };

export function nextRestartDelay(previousMs: number | null, upForMs: number): number {
  if (previousMs === null || upForMs >= RESTART_BACKOFF.stableAfterMs) {
    return RESTART_BACKOFF.firstMs;
  }
  return Math.min(previousMs * 2, RESTART_BACKOFF.maxMs);
}

const describeExit = (status: Deno.CommandStatus) =>
  status.signal ? `signal ${status.signal}` : `code ${status.code}`;

/** Keeps one function running on its port until stop(). */
class FunctionSupervisor {
  #current: FunctionProcess;
  #listening = false;
  #restarts = 0;
  #stopping = false;
  #wake = Promise.withResolvers<void>();
  /** Resolved at the next change: a process listens or exits, or stop(). */
  #changed = Promise.withResolvers<void>();
  readonly firstReady: Promise<void>;
  readonly #loop: Promise<void>;

  constructor(private o: FunctionsOptions, readonly name: string, readonly port: number) {
    this.#current = this.#start();
    this.firstReady = this.#current.ready;
    this.#loop = this.#superviseFrom(this.#current);
  }

  state(): FunctionState {
    return {
      pid: this.#current.child.pid,
      restarts: this.#restarts,
      listening: this.#listening,
    };
  }

  /** Resolves true once a process listens, false after `timeoutMs` or on stop(). */
  async whenListening(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#listening && !this.#stopping && Date.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>((r) => (timer = setTimeout(r, deadline - Date.now())));
      await Promise.race([this.#changed.promise, timeout]);
      clearTimeout(timer);
    }
    return this.#listening;
  }

  /** Wakes everyone waiting in whenListening, to look again. */
  #signalChange(): void {
    const previous = this.#changed;
    this.#changed = Promise.withResolvers<void>();
    previous.resolve();
  }

  /** SIGKILLs the running process (as an isolate dies) and waits until it is gone. */
  async kill(): Promise<number> {
    const { child, done } = this.#current;
    try {
      child.kill("SIGKILL");
    } catch {
      // it had already exited; the restart is under way
    }
    await done;
    return child.pid;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake.resolve();
    this.#signalChange();
    const { child, done } = this.#current;
    const signal = (sig: Deno.Signal) => {
      try {
        child.kill(sig);
      } catch {
        // already exited
      }
    };
    signal("SIGTERM");
    const forced = setTimeout(() => signal("SIGKILL"), 5_000);
    await done;
    clearTimeout(forced);
    await this.#loop;
  }

  #start(): FunctionProcess {
    const proc = spawnFunction(this.o, this.name, this.port);
    proc.ready.then(() => {
      if (this.#current !== proc) return;
      this.#listening = true;
      this.#signalChange();
    }, () => {
      // Never listened: end it, and the loop starts another.
      try {
        proc.child.kill("SIGKILL");
      } catch {
        // already exited
      }
    });
    return proc;
  }

  async #superviseFrom(first: FunctionProcess): Promise<void> {
    let proc = first;
    let delay: number | null = null;
    for (;;) {
      const startedAt = Date.now();
      const status = await proc.done;
      this.#listening = false;
      this.#signalChange();
      if (this.#stopping) return;
      delay = nextRestartDelay(delay, Date.now() - startedAt);
      this.o.log(
        `[${this.name}] process ${proc.child.pid} exited (${describeExit(status)}); ` +
          `restarting on port ${this.port} in ${delay} ms`,
      );
      const timer = setTimeout(() => this.#wake.resolve(), delay);
      await this.#wake.promise;
      clearTimeout(timer);
      this.#wake = Promise.withResolvers<void>();
      if (this.#stopping) return;
      this.#restarts++;
      proc = this.#current = this.#start();
      this.o.log(
        `[${this.name}] restarted as process ${proc.child.pid} (restart ${this.#restarts})`,
      );
    }
  }
}

export async function serveFunctions(o: FunctionsOptions): Promise<FunctionsServer> {
  const names = await listFunctions(o.root);
  await cacheFunctionPackages(o.root, names, o.log);
  const supervisors = new Map(
    names.map((name, i) => [name, new FunctionSupervisor(o, name, o.functionPort(i))]),
  );

  let gateway: Deno.HttpServer | undefined;
  const stop = async () => {
    await Promise.allSettled([...supervisors.values()].map((s) => s.stop()));
    await gateway?.shutdown();
  };

  try {
    await Promise.all([...supervisors.values()].map((s) => s.firstReady));
    gateway = Deno.serve(
      { hostname: "127.0.0.1", port: o.apiPort, onListen: () => {} },
      (req) => {
        const control = o.controlApi ? controlRoute(req, supervisors) : undefined;
        return control ?? proxy(req, supervisors);
      },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { names, stop };
}

/** How long a request waits for a restarting function, as for an isolate booting. */
const BOOT_WAIT_MS = 30_000;

async function proxy(
  req: Request,
  supervisors: Map<string, FunctionSupervisor>,
): Promise<Response> {
  const url = new URL(req.url);
  const match = /^\/functions\/v1\/([^/]+)(\/.*)?$/.exec(url.pathname);
  const fn = match ? supervisors.get(match[1]) : undefined;
  if (!match || fn === undefined) {
    return Response.json({ error: "not_found", message: "no such function" }, { status: 404 });
  }
  if (!(await fn.whenListening(BOOT_WAIT_MS))) {
    return Response.json({
      error: "function_unavailable",
      message: `${fn.name} is restarting`,
    }, { status: 503 });
  }
  const target = `http://127.0.0.1:${fn.port}/${match[1]}${match[2] ?? ""}${url.search}`;
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

/**
 * The throw-away stack's control API: `GET /__stack/functions/<name>` gives
 * {pid, restarts, listening}; `POST /__stack/functions/<name>/kill` SIGKILLs
 * the process and answers once it is gone, with the pid it killed.
 */
function controlRoute(
  req: Request,
  supervisors: Map<string, FunctionSupervisor>,
): Promise<Response> | undefined {
  const match = /^\/__stack\/functions\/([^/]+)(\/kill)?$/.exec(new URL(req.url).pathname);
  if (!match) return undefined;
  const fn = supervisors.get(match[1]);
  if (!fn) {
    return Promise.resolve(
      Response.json({ error: "not_found", message: "no such function" }, { status: 404 }),
    );
  }
  const expected = match[2] ? "POST" : "GET";
  if (req.method !== expected) {
    return Promise.resolve(
      Response.json({ error: "method_not_allowed", message: `use ${expected}` }, {
        status: 405,
      }),
    );
  }
  if (!match[2]) return Promise.resolve(Response.json(fn.state()));
  return fn.kill().then((pid) => Response.json({ killed_pid: pid, ...fn.state() }));
}
