// npm run bench: speed figures on a throw-away stack, printed as JSON. Not part
// of npm test; nothing here asserts a threshold.
import { startThrowawayStack } from "./local/stack.ts";
import type { Sql } from "../shared/db.ts";

const USERS = 2_000;
const MESSAGES = 20_000;
const HISTORICAL = 1_000_000;
const PROCESSORS = 4;
const NEW_USERS = 20_000;
const BACKLOG = 50_000;
const BACKLOG_NEIGHBOURS = 10_000;
/** Claims under a backlog are sampled until this many, or until the time budget is spent. */
const BACKLOG_SAMPLES = 100;
const BACKLOG_BUDGET_MS = 120_000;

/**
 * Fictional numbers +1 AAA 555 01NN, 100 per area code: the i-th of a block
 * that starts at area code `firstArea` (201 is the drain users', 221 onwards
 * the benches' below, so no two blocks share a number).
 */
const fictionalPhone = (firstArea: number, i: string) =>
  `'+1' || (${firstArea} + ${i} / 100) || '55501' || lpad((${i} % 100)::text, 2, '0')`;

const secret = `bench-secret-${crypto.randomUUID()}`;
const log: string[] = [];
const progress = (line: string) => console.error(`bench: ${line}`);

const stack = await startThrowawayStack({ name: "bench", secret, log: (line) => log.push(line) });
const sql = stack.sql;
const catcher = stack.fakes.smsCatcherUrl!;

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const round = (n: number) => Math.round(n * 100) / 100;

async function processQueue(): Promise<void> {
  const res = await fetch(`${stack.apiUrl}/functions/v1/process-queue`, {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
    body: JSON.stringify({ source: "bench", time_budget_ms: 120_000, batch_size: 100 }),
  });
  if (!res.ok) throw new Error(`process-queue: ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

async function createUsers(db: Sql): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    insert into public.users (phone_number, quiet_hours_start, quiet_hours_end,
                              daily_message_limit, hourly_message_limit)
    select '+1' || (201 + i / 100) || '55501' || lpad((i % 100)::text, 2, '0'),
           '00:00', '00:00', 1000, 1000
      from generate_series(0, ${USERS - 1}) as i
    returning id`;
  return rows.map((r) => r.id);
}

// Each phase queues as its own agent: an agent may queue only so many a day for one user.
async function enqueueAll(db: Sql, users: string[], label: string): Promise<void> {
  await db`
    select public.enqueue_message(u.id, ${"bench-" + label}, 'medium',
                                  p_final_message := ${label} || ' #' || i)
      from unnest(${users}::uuid[]) as u(id), generate_series(1, ${MESSAGES / USERS}) as i`;
}

async function drain(label: string, latencyMs: number, users: string[]) {
  await fetch(`${catcher}/__catcher/behaviour`, {
    method: "POST",
    body: JSON.stringify({ latencyMs }),
  }).then((r) => r.body?.cancel());
  await enqueueAll(sql, users, label);
  progress(`draining ${MESSAGES} messages, catcher latency ${latencyMs} ms`);
  const started = performance.now();
  for (;;) {
    await Promise.all(Array.from({ length: PROCESSORS }, processQueue));
    const [{ left }] = await sql<{ left: number }[]>`
      select count(*)::int as left from public.message_queue
       where status in ('queued', 'sending') and final_message like ${label + " #%"}`;
    if (left === 0) break;
  }
  const seconds = (performance.now() - started) / 1000;
  const [{ sent }] = await sql<{ sent: number }[]>`
    select count(*)::int as sent from public.message_queue
     where status = 'sent' and final_message like ${label + " #%"}`;
  return {
    messages: sent,
    users: USERS,
    processors: PROCESSORS,
    catcher_latency_ms: latencyMs,
    seconds: round(seconds),
    messages_per_second: round(sent / seconds),
  };
}

async function claimLatency(users: string[]) {
  progress(`inserting ${HISTORICAL} historical rows`);
  await sql`
    insert into public.message_queue (user_id, agent_id, final_message, status, next_attempt_at,
                                      scheduled_for, sent_at, created_at)
    select (${users}::uuid[])[1 + (i % ${USERS})], 'history', 'old #' || i, 'sent',
           now() - interval '30 days', now() - interval '30 days', now() - interval '30 days',
           now() - interval '30 days'
      from generate_series(1, ${HISTORICAL}) as i`;
  const samples = 100;
  await sql`
    select public.enqueue_message(u.id, 'bench-claim', 'medium', p_final_message := 'claim #' || i)
      from unnest(${users}::uuid[]) as u(id), generate_series(1, ${(samples * 100) / USERS}) as i`;
  // The steady state autovacuum keeps (see the table's settings), not a bulk load's.
  await sql`analyze public.message_queue`;
  progress(`timing ${samples} claims of 100`);
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    await sql`select public.claim_messages(100, 300)`;
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const [{ rows }] = await sql<{ rows: number }[]>`
    select count(*)::int as rows from public.message_queue`;
  return {
    batch: 100,
    rows_in_queue: rows,
    samples,
    p50_ms: round(percentile(times, 50)),
    p99_ms: round(percentile(times, 99)),
  };
}

/** Insert -> the analyze-interaction request arriving, through the trigger and pg_net. */
async function webhookLatency(users: string[]) {
  const arrivals = new Map<string, number>();
  const receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const at = performance.now();
      const body = await req.json();
      if (body?.record?.id) arrivals.set(body.record.id, at);
      return Response.json({ accepted: true }, { status: 202 });
    },
  );
  // The receiver stands where the function is, so only the path there is timed.
  await sql`update vault.secrets set secret = ${`http://127.0.0.1:${receiver.addr.port}`}
             where name = 'project_url'`;
  const inserts = 200;
  const latencies: number[] = [];
  try {
    progress(`timing ${inserts} webhooks`);
    for (let i = 0; i < inserts; i++) {
      const started = performance.now();
      const [{ id }] = await sql<{ id: string }[]>`
        insert into public.interactions (user_id, channel, transcript)
        values (${users[i % users.length]}, 'voice', ${"bench transcript " + i}) returning id`;
      while (!arrivals.has(id)) await new Promise((r) => setTimeout(r, 1));
      latencies.push(arrivals.get(id)! - started);
    }
  } finally {
    await sql`update vault.secrets set secret = ${stack.apiUrl} where name = 'project_url'`;
    await receiver.shutdown();
  }
  latencies.sort((a, b) => a - b);
  return {
    inserts,
    p50_ms: round(percentile(latencies, 50)),
    p99_ms: round(percentile(latencies, 99)),
  };
}

const ZONES = [
  "Europe/Chisinau",
  "America/Santiago",
  "Australia/Lord_Howe",
  "Asia/Kolkata",
  "America/New_York",
  "UTC",
];

/** Writes to users: every one runs the time-zone CHECK, as an import or a sign-up would. */
async function insertUsers() {
  const batch = 1_000;
  progress(`inserting ${NEW_USERS} users, ${batch} a statement`);
  const started = performance.now();
  for (let from = 0; from < NEW_USERS; from += batch) {
    await sql.unsafe(
      `
      insert into public.users (phone_number, timezone)
      select ${fictionalPhone(221, "i")}, ($1::text[])[1 + i % ${ZONES.length}]
        from generate_series(${from}, ${from + batch - 1}) as i`,
      [ZONES],
    );
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    users: NEW_USERS,
    per_statement: batch,
    seconds: round(seconds),
    ms_per_user: round((seconds * 1000) / NEW_USERS),
  };
}

/** One user's row updated on its own, as each inbound SMS and memory update does. */
async function updateUserLatency(users: string[]) {
  const updates = 200;
  progress(`timing ${updates} single-user updates`);
  const times: number[] = [];
  for (let i = 0; i < updates; i++) {
    const started = performance.now();
    await sql`update public.users set last_inbound_at = now() where id = ${
      users[i % users.length]
    }`;
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return {
    updates,
    p50_ms: round(percentile(times, 50)),
    p99_ms: round(percentile(times, 99)),
  };
}

/**
 * One user holding BACKLOG due messages beside BACKLOG_NEIGHBOURS users with one
 * each. The rows are written directly, as a backlog that built up would be
 * (enqueue_message caps a user's queue). Each claim runs in a transaction that
 * is rolled back, so every sample sees the same queue.
 */
async function claimUnderBacklog() {
  // Nothing from the earlier benches may be due, or the claims would serve it.
  await sql`delete from public.message_queue where status in ('queued', 'sending')`;
  progress(`writing ${BACKLOG} due messages for one user, one for ${BACKLOG_NEIGHBOURS} others`);
  const [{ id: heavy }] = await sql.unsafe<{ id: string }[]>(`
    insert into public.users (phone_number, quiet_hours_start, quiet_hours_end,
                              daily_message_limit, hourly_message_limit)
    values (${fictionalPhone(421, "0")}, '00:00', '00:00', 1000, 1000) returning id`);
  // The backlog is the oldest due work, so a claim meets it first.
  await sql`
    insert into public.message_queue (user_id, agent_id, final_message, scheduled_for,
                                      next_attempt_at, created_at)
    select ${heavy}, 'backlog', 'backlog #' || i, now() - interval '1 hour' + i * interval '1 ms',
           now() - interval '1 hour' + i * interval '1 ms', now() - interval '1 hour'
      from generate_series(1, ${BACKLOG}) as i`;
  await sql.unsafe(`
    with neighbours as (
      insert into public.users (phone_number, quiet_hours_start, quiet_hours_end,
                                daily_message_limit, hourly_message_limit)
      select ${fictionalPhone(421, "i")}, '00:00', '00:00', 1000, 1000
        from generate_series(1, ${BACKLOG_NEIGHBOURS}) as i
      returning id
    )
    insert into public.message_queue (user_id, agent_id, final_message, scheduled_for,
                                      next_attempt_at, created_at)
    select id, 'neighbour', 'neighbour', now() - interval '1 minute',
           now() - interval '1 minute', now() - interval '1 minute'
      from neighbours`);
  await sql`analyze public.message_queue`;
  await sql`analyze public.users`;

  progress(
    `timing claims of 100 under the backlog (up to ${BACKLOG_SAMPLES}, ${
      BACKLOG_BUDGET_MS / 1000
    } s budget)`,
  );
  const times: number[] = [];
  let claimed = 0;
  const started = performance.now();
  while (times.length < BACKLOG_SAMPLES && performance.now() - started < BACKLOG_BUDGET_MS) {
    const t0 = performance.now();
    claimed = await claimAndRollBack();
    times.push(performance.now() - t0);
    // Slow claims are shown as they come, so a long run is seen to progress.
    if (times.at(-1)! > 1_000) {
      progress(`claim ${times.length}: ${round(times.at(-1)!)} ms, ${claimed} claimed`);
    }
  }
  const [{ due }] = await sql<{ due: number }[]>`
    select count(*)::int as due from public.message_queue
     where status = 'queued' and next_attempt_at <= now()`;
  times.sort((a, b) => a - b);
  return {
    batch: 100,
    backlog_user_due: BACKLOG,
    other_users_due: BACKLOG_NEIGHBOURS,
    due_rows: due,
    claimed_per_sample: claimed,
    samples: times.length,
    capped_by_time_budget: times.length < BACKLOG_SAMPLES,
    time_budget_s: BACKLOG_BUDGET_MS / 1000,
    p50_ms: round(percentile(times, 50)),
    p99_ms: round(percentile(times, 99)),
    max_ms: round(times.at(-1)!),
  };
}

class RolledBack extends Error {}

/** claim_messages(100, 120) in a transaction that is rolled back; returns how many it claimed. */
async function claimAndRollBack(): Promise<number> {
  let claimed = 0;
  try {
    await sql.begin(async (tx) => {
      const [{ n }] = await tx<{ n: number }[]>`
        select jsonb_array_length(public.claim_messages(100, 120) -> 'messages') as n`;
      claimed = n;
      throw new RolledBack();
    });
  } catch (err) {
    if (!(err instanceof RolledBack)) throw err;
  }
  return claimed;
}

/**
 * The front door: an agents call and an MCP tools/call of queue_message, and
 * search_interactions over 100,000 interactions (10,000 for the searched user).
 */
async function frontDoorLatency(users: string[]) {
  const [{ key }] = await sql<{ key: string }[]>`
    select public.create_agent_key('bench', p_requests_per_minute := 10000) as key`;
  const headers = {
    authorization: `Bearer ${key}`,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  const time = async (samples: number, once: (i: number) => Promise<void>) => {
    for (let i = 0; i < 10; i++) await once(-1 - i);
    const times: number[] = [];
    for (let i = 0; i < samples; i++) {
      const started = performance.now();
      await once(i);
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    return { samples, p50_ms: round(percentile(times, 50)), p99_ms: round(percentile(times, 99)) };
  };
  const post = async (name: string, body: unknown) => {
    const res = await fetch(`${stack.apiUrl}/functions/v1/${name}`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok || text.includes('"isError":true')) {
      throw new Error(`${name}: ${res.status} ${text}`);
    }
  };
  const queueInput = (i: number) => ({
    user_id: users[(i + users.length) % users.length],
    text: `front door #${i}`,
  });
  progress("timing agents and MCP calls of queue_message");
  const agents = await time(
    200,
    (i) => post("agents", { tool: "queue_message", input: queueInput(i) }),
  );
  const mcp = await time(200, (i) =>
    post("mcp", {
      jsonrpc: "2.0",
      id: i,
      method: "tools/call",
      params: { name: "queue_message", arguments: queueInput(i + 1000) },
    }));

  progress("inserting 100,000 interactions");
  const searched = users.slice(0, 10);
  await sql.begin(async (tx) => {
    // Bulk history, not conversations to analyse: triggers off, then indexed for search.
    await tx`set local session_replication_role = replica`;
    await tx`
      insert into public.interactions (user_id, channel, transcript, analysis_status, created_at)
      select (${searched}::uuid[])[1 + i % 10], 'voice',
             (select string_agg('w' || (abs(hashtextextended(i::text || ':' || j, 0)) % 2000), ' ')
                from generate_series(1, 60 + i % 40) as j),
             'skipped', now() - make_interval(mins => i)
        from generate_series(1, 100000) as i`;
  });
  await sql`
    insert into public.interaction_search (interaction_id, user_id, created_at, document)
    select id, user_id, created_at, public.search_document(transcript) from public.interactions
    on conflict (interaction_id) do nothing`;
  await sql`analyze public.interaction_search`;
  progress("timing search_interactions");
  const search = await time(200, (i) =>
    post("agents", {
      tool: "search_interactions",
      input: { user_id: searched[(i + 10) % 10], query: `w${(i + 100) % 2000} w${(i + 7) % 2000}` },
    }));
  return {
    agents_queue_message: agents,
    mcp_tools_call_queue_message: mcp,
    search_interactions: {
      interactions: 100_000,
      per_user: 10_000,
      query: "two words, each in about 4% of transcripts",
      ...search,
    },
  };
}

const FAST_LANE_MESSAGES = 50;
const FAST_LANE_SPREAD_MS = 10_000;

const setCron = (active: boolean) =>
  sql`update cron.job set active = ${active} where jobname = 'process-queue'`;

/**
 * 50 urgent messages for active users, enqueued over 10 seconds with the
 * per-minute cron running: from each enqueue's commit to its Twilio request at
 * the catcher.
 */
async function fastLane(users: string[]) {
  const chosen = users.slice(0, FAST_LANE_MESSAGES);
  await sql`update public.users set last_inbound_at = now() where id = any(${chosen})`;
  await setCron(true);
  progress(`fast lane: ${FAST_LANE_MESSAGES} urgent messages over ${FAST_LANE_SPREAD_MS} ms`);
  const committed = new Map<string, number>();
  const started = Date.now();
  for (const [i, id] of chosen.entries()) {
    const due = started + (i * FAST_LANE_SPREAD_MS) / FAST_LANE_MESSAGES;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    const body = `fast #${i}`;
    await sql`select public.enqueue_message(${id}, 'bench-fast', 'urgent', p_final_message := ${body})`;
    committed.set(body, Date.now());
  }
  const deadline = Date.now() + 120_000;
  let arrived: { body: string; createdAt: string }[] = [];
  while (Date.now() < deadline) {
    const all = await (await fetch(`${catcher}/__catcher/messages`)).json() as {
      body: string;
      createdAt: string;
    }[];
    arrived = all.filter((m) => committed.has(m.body));
    if (arrived.length === committed.size) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await setCron(false);
  const latencies = arrived.map((m) => Date.parse(m.createdAt) - committed.get(m.body)!)
    .sort((a, b) => a - b);
  const [{ runs }] = await sql<{ runs: number }[]>`
    select count(*)::int as runs from public.processor_runs
     where source = 'fast_lane' and started_at >= to_timestamp(${started / 1000})`;
  return {
    messages: FAST_LANE_MESSAGES,
    arrived: arrived.length,
    spread_ms: FAST_LANE_SPREAD_MS,
    fast_lane_runs: runs,
    p50_ms: percentile(latencies, 50),
    p95_ms: percentile(latencies, 95),
    max_ms: latencies.at(-1),
  };
}

const ROUTINE_USERS = 10_000;
const ROUTINE_BUDGET_MS = 600_000;

/**
 * Routines: 10,000 users each with a morning_plan (context.read, claude.generate on the scripted
 * model at 0 ms, sms.queue), all due at the same minute, run by the per-minute run-routines job
 * as in production. Throughput is finished runs over the time from the first start to the last
 * finish; lag is each run's start after its occurrence.
 */
async function routinesThroughput() {
  const setRoutineCron = (active: boolean) =>
    sql`update cron.job set active = ${active} where jobname = 'run-routines'`;
  await setRoutineCron(false);
  progress(`enabling morning_plan for ${ROUTINE_USERS} users`);
  await sql.unsafe(`
    with made as (
      insert into public.users (phone_number, quiet_hours_start, quiet_hours_end,
                                daily_message_limit, hourly_message_limit)
      select ${fictionalPhone(701, "i")}, '00:00', '00:00', 1000, 1000
        from generate_series(0, ${ROUTINE_USERS - 1}) as i
      returning id
    )
    select public.enable_builtin_routine(id, 'morning_plan') from made`);
  // Every plan's occurrence is the next whole minute, when pg_cron next calls run-routines.
  const [{ at }] = await sql<{ at: Date }[]>`
    update public.routines
       set series_start = now() - interval '1 day', next_run_known = true,
           next_run_at = date_trunc('minute', now()) + interval '1 minute'
     where template = 'morning_plan'
    returning next_run_at as at`;
  await sql`analyze public.routines`;
  await setRoutineCron(true);
  progress(`waiting for ${ROUTINE_USERS} runs due at ${at.toISOString()}`);
  const deadline = Date.now() + ROUTINE_BUDGET_MS;
  let finished = 0;
  while (Date.now() < deadline) {
    [{ finished }] = await sql<{ finished: number }[]>`
      select count(*)::int as finished from public.routine_runs r
        join public.routines t on t.id = r.routine_id
       where t.template = 'morning_plan' and r.status in ('succeeded', 'failed')`;
    if (finished >= ROUTINE_USERS) break;
    await new Promise((r) => setTimeout(r, 1_000));
  }
  await setRoutineCron(false);
  const [stats] = await sql<
    {
      runs: number;
      succeeded: number;
      span_s: number;
      lags: number[];
      queued: number;
    }[]
  >`
    select count(*)::int as runs,
           count(*) filter (where r.status = 'succeeded')::int as succeeded,
           extract(epoch from max(r.finished_at) - min(r.started_at))::float8 as span_s,
           array_agg(extract(epoch from r.started_at - r.occurrence)::float8
                     order by r.started_at - r.occurrence) as lags,
           (select count(*)::int from public.message_queue m
             where m.agent_id like 'agent:routine:%') as queued
      from public.routine_runs r join public.routines t on t.id = r.routine_id
     where t.template = 'morning_plan' and r.started_at is not null`;
  const lags = stats.lags ?? [];
  return {
    users_with_morning_plan: ROUTINE_USERS,
    runs_started: stats.runs,
    runs_succeeded: stats.succeeded,
    messages_queued: stats.queued,
    capped_by_time_budget: finished < ROUTINE_USERS,
    span_s: round(stats.span_s),
    runs_per_s: round(stats.succeeded / stats.span_s),
    lag_p50_s: round(percentile(lags, 50)),
    lag_p95_s: round(percentile(lags, 95)),
    lag_max_s: round(lags.at(-1) ?? NaN),
  };
}

/**
 * `npx orchestrator status` with a million historical texts (spread over 30
 * days, so the hour and day windows hold some), next to the million queue rows
 * of claimLatency (inserted here when run alone), 200,000 delivery events and
 * 100,000 Claude calls: the operator_status query alone, and the whole CLI run
 * (Node, Deno, connect, query).
 */
async function operatorStatus(users: string[]) {
  // Run on its own (`npm run bench -- operator_status`), it brings claimLatency's queue history.
  const [{ queued }] = await sql<{ queued: number }[]>`
    select count(*)::int as queued from public.message_queue`;
  if (queued < HISTORICAL) {
    progress(`inserting ${HISTORICAL} historical queue rows for status`);
    await sql`
      insert into public.message_queue (user_id, agent_id, final_message, status, next_attempt_at,
                                        scheduled_for, sent_at, created_at)
      select (${users}::uuid[])[1 + (i % ${USERS})], 'history', 'old #' || i, 'sent',
             now() - interval '30 days', now() - interval '30 days', now() - interval '30 days',
             now() - interval '30 days'
        from generate_series(1, ${HISTORICAL}) as i`;
  }
  progress(`inserting ${HISTORICAL} historical messages for status`);
  await sql`
    insert into public.messages (user_id, direction, body, from_number, to_number, twilio_sid,
                                 status, created_at)
    select (${users}::uuid[])[1 + (i % ${USERS})], 'outbound', 'old #' || i, '+12015550100',
           '+12015550101', 'SMhist' || i, 'delivered', now() - interval '30 days' * (i::float / ${HISTORICAL})
      from generate_series(1, ${HISTORICAL}) as i`;
  await sql`
    with q as (
      select id, user_id, row_number() over () - 1 as n from public.message_queue limit 1000
    )
    insert into public.delivery_events (message_id, user_id, kind, reason, next_eligible_at, created_at)
    select q.id, q.user_id, 'deferred', (array['quiet_hours', 'daily_cap', 'hourly_cap'])[1 + i % 3],
           now(), now() - interval '30 days' * (i::float / 200000)
      from generate_series(1, 200000) as i
      join q on q.n = i % 1000`;
  await sql`
    insert into public.agent_actions_log (agent_id, action, model, cost_usd, created_at)
    select 'bench', 'render', 'bench-model', 0.0012, now() - interval '30 days' * (i::float / 100000)
      from generate_series(1, 100000) as i`;
  await sql`analyze`;
  const samples = 20;
  const query: number[] = [];
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    await sql`select * from public.operator_status`;
    query.push(performance.now() - started);
  }
  const cli: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    const out = await new Deno.Command("node", {
      args: ["bin/orchestrator.js", "status", "--json", "--db-url", stack.dbUrl],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code !== 0) {
      throw new Error(`status exited ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
    }
    cli.push(performance.now() - started);
  }
  query.sort((a, b) => a - b);
  cli.sort((a, b) => a - b);
  const [{ messages, queue }] = await sql<{ messages: number; queue: number }[]>`
    select (select count(*)::int from public.messages) as messages,
           (select count(*)::int from public.message_queue) as queue`;
  return {
    messages,
    message_queue_rows: queue,
    query_p50_ms: round(percentile(query, 50)),
    query_max_ms: round(query.at(-1)!),
    cli_p50_ms: round(percentile(cli, 50)),
    cli_max_ms: round(cli.at(-1)!),
  };
}

// `npm run bench -- drain_0ms fast_lane` runs only the phases named; no names run all.
const only = new Set(Deno.args);
const phase = async <T>(name: string, run: () => Promise<T>): Promise<[string, T] | null> =>
  only.size === 0 || only.has(name) ? [name, await run()] : null;

try {
  // The cron job would compete with the timed runs; the figures are for ours alone,
  // but for the fast lane's, which is measured with the cron running.
  await setCron(false);
  const users = await createUsers(sql);
  const results = [
    await phase("drain_0ms", () => drain("drain0", 0, users)),
    await phase("drain_50ms", () => drain("drain50", 50, users)),
    await phase("webhook_latency", () => webhookLatency(users)),
    await phase("claim_latency", () => claimLatency(users)),
    await phase("front_door", () => frontDoorLatency(users)),
    await phase("fast_lane", () => fastLane(users)),
    await phase("users_insert", () => insertUsers()),
    await phase("user_update", () => updateUserLatency(users)),
    await phase("claim_backlog", () => claimUnderBacklog()),
    await phase("routines", () => routinesThroughput()),
    await phase("operator_status", () => operatorStatus(users)),
  ];
  console.log(JSON.stringify(
    {
      machine: { cores: navigator.hardwareConcurrency },
      ...Object.fromEntries(results.filter((r) => r !== null)),
    },
    null,
    2,
  ));
} finally {
  await stack.stop();
}
