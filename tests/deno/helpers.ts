// What the integration tests share: the throw-away stack that `npm test`
// started (its addresses come in the environment), and polling helpers.
import { connect, type Sql } from "../../shared/db.ts";
import { z } from "zod";

function required(name: string): string {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set: run the suite with npm test`);
  return value;
}

export const stack = {
  get dbUrl() {
    return required("TEST_DB_URL");
  },
  get apiUrl() {
    return required("TEST_API_URL");
  },
  get secret() {
    return required("ORCHESTRATOR_SECRET");
  },
};

export const functionUrl = (name: string) => `${stack.apiUrl}/functions/v1/${name}`;

let shared: Sql | undefined;
/** One pool per test file; tests share it, so sanitizers are off for them. */
export function db(): Sql {
  shared ??= connect(stack.dbUrl, 6);
  return shared;
}

/** A Deno test that uses the database or the network. */
export function stackTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
}

/**
 * Polls until `probe` returns a value, or fails after `timeoutMs`. The deadline
 * only guards against a hang; no test depends on how fast things happen.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A fictional North American number in the 555-01xx range. */
export function testPhone(): string {
  const area = 201 + Math.floor(Math.random() * 780);
  const line = String(Math.floor(Math.random() * 100)).padStart(2, "0");
  return `+1${area}55501${line}`;
}

/**
 * Numbers no user holds and the SMS catcher has never seen: a deleted user's
 * number would otherwise bring that user's caught texts into a new test.
 */
async function freshPhones(count: number): Promise<string[]> {
  const catcher = Deno.env.get("TEST_CATCHER_URL");
  const seen = new Set<string>();
  if (catcher) {
    const caught: { to: string }[] = await (await fetch(`${catcher}/__catcher/messages`)).json();
    for (const m of caught) seen.add(m.to);
  }
  const phones = new Set<string>();
  while (phones.size < count) {
    const phone = testPhone();
    if (!seen.has(phone)) phones.add(phone);
  }
  return [...phones];
}

export async function createUser(
  sql: Sql,
  fields: { timezone?: string } = {},
): Promise<{ id: string; phone_number: string }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const [phone] = await freshPhones(1);
    const [row] = await sql<{ id: string; phone_number: string }[]>`
      insert into public.users (phone_number, timezone)
      values (${phone}, ${fields.timezone ?? "UTC"})
      on conflict (phone_number) do nothing
      returning id, phone_number`;
    if (row) return row;
  }
  throw new Error("could not find a free test phone number");
}

/** Many users in one statement, with distinct fictional numbers. */
export async function createUsers(
  sql: Sql,
  count: number,
): Promise<{ id: string; phone_number: string }[]> {
  const users = await sql<{ id: string; phone_number: string }[]>`
    insert into public.users (phone_number)
    select p from unnest(${await freshPhones(count)}::text[]) as p
    on conflict (phone_number) do nothing
    returning id, phone_number`;
  // Numbers another test took meanwhile are skipped; top up one at a time.
  while (users.length < count) users.push(await createUser(sql));
  return users;
}

/** A local HTTP server that records what reaches it. */
export function recordingServer(
  respond: (req: Request) => Response | Promise<Response> = () => new Response("ok"),
) {
  const received: { url: string; method: string; headers: Headers; body: string }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    received.push({
      url: req.url,
      method: req.method,
      headers: req.headers,
      body: await req.text(),
    });
    return respond(req);
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  return { url, received, close: () => server.shutdown() };
}

// The throw-away stack's control API (scripts/local/functions.ts): kill a
// function's process mid-flight, as an Edge Runtime isolate dies, and wait
// for the process the stack starts in its place.
const FunctionProcess = z.object({
  pid: z.number().int(),
  restarts: z.number().int(),
  listening: z.boolean(),
});
const killedPids = new Map<string, Set<number>>();

async function stackControl(path: string, method: "GET" | "POST") {
  const res = await fetch(`${required("TEST_STACK_URL")}/functions/${path}`, { method });
  if (!res.ok) throw new Error(`${method} /__stack/functions/${path}: ${res.status}`);
  return FunctionProcess.extend({ killed_pid: z.number().int().optional() }).parse(
    await res.json(),
  );
}

/** The state of a function's process: {pid, restarts, listening}. */
export const functionProcess = (name: string) => stackControl(name, "GET");

/** SIGKILLs the function's process; resolves once it is gone, with its pid. */
export async function killFunction(name: string): Promise<number> {
  const { killed_pid } = await stackControl(`${name}/kill`, "POST");
  const pid = killed_pid!;
  killedPids.set(name, (killedPids.get(name) ?? new Set()).add(pid));
  return pid;
}

/** Waits until a process that killFunction did not kill listens for `name`. */
export function waitFunctionBack(name: string) {
  return waitFor(`${name} to be restarted`, async () => {
    const state = await functionProcess(name);
    return state.listening && !killedPids.get(name)?.has(state.pid) && state;
  });
}
