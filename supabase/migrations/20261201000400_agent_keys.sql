-- The front door for agents (SPEC section 10): scoped agent keys, a per-key
-- rate limit, a log of every call, idempotency for the tools with an effect,
-- full-text search over transcripts, and quiet hours an agent may set.
--
-- A key is 244 random bits (two gen_random_uuid(), a CSPRNG since Postgres 13)
-- and only its SHA-256 is stored. A slow password hash (bcrypt) protects
-- guessable human passwords; a key this long cannot be guessed, so one fast
-- hash is as strong and lets every request authenticate with an index lookup.

-- Tools ---------------------------------------------------------------------------
-- The tool registry's names (shared/agents/registry.ts; a test keeps the two equal).
create or replace function public.agent_tool_names() returns text[]
language sql immutable parallel safe set search_path = '' as $$
  select array[
    'queue_message', 'get_message_status', 'schedule_call', 'cancel_scheduled_call',
    'get_user_context', 'record_interaction', 'search_interactions', 'remember',
    'set_contact_preferences'
  ]::text[]
$$;

-- Tables --------------------------------------------------------------------------
create table public.agent_keys (
  id uuid primary key default gen_random_uuid(),
  agent_id text not null
    constraint agent_keys_agent_id check (agent_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$'),
  key_hash bytea not null constraint agent_keys_key_hash unique,
  -- Null: every tool / every user.
  tools text[] constraint agent_keys_tools check (tools <@ public.agent_tool_names()),
  user_ids uuid[],
  requests_per_minute integer not null default 120
    constraint agent_keys_rate check (requests_per_minute between 1 and 10000),
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);
create index agent_keys_agent_idx on public.agent_keys (agent_id) where revoked_at is null;

-- One fixed one-minute window per key, counted by an atomic upsert.
create table public.agent_rate_windows (
  key_id uuid primary key references public.agent_keys (id) on delete cascade,
  window_start timestamptz not null,
  used integer not null
);

-- Every call through the front door: who, which tool, for which user, how it
-- ended and how long it took. Never the input: it may hold texts or numbers.
create table public.agent_calls (
  id bigint generated always as identity primary key,
  key_id uuid references public.agent_keys (id) on delete set null,
  agent_id text not null,
  transport text not null constraint agent_calls_transport check (transport in ('agents', 'mcp')),
  tool text not null constraint agent_calls_tool check (length(tool) between 1 and 64),
  user_id uuid references public.users (id) on delete set null,
  outcome text not null constraint agent_calls_outcome check (
    outcome in ('ok', 'invalid_input', 'forbidden', 'not_found', 'conflict', 'limited', 'error')
  ),
  error_code text,
  duration_ms integer not null,
  created_at timestamptz not null default now()
);
create index agent_calls_agent_idx on public.agent_calls (agent_id, created_at desc);
create index agent_calls_created_idx on public.agent_calls (created_at);
create index agent_calls_key_idx on public.agent_calls (key_id);
create index agent_calls_user_idx on public.agent_calls (user_id);

-- The first result of each tool call made with an idempotency key, and a hash of
-- its input: the same key with the same input replays it, with another input is
-- a conflict. The row is written in the transaction of the call's effect, so a
-- concurrent retry waits for it and then replays.
create table public.agent_idempotency (
  agent_id text not null,
  user_id uuid not null references public.users (id) on delete cascade,
  tool text not null,
  idempotency_key text not null
    constraint agent_idempotency_key_length check (length(idempotency_key) between 1 and 100),
  input_hash text not null,
  result jsonb,
  created_at timestamptz not null default now(),
  primary key (agent_id, user_id, tool, idempotency_key)
);
create index agent_idempotency_user_idx on public.agent_idempotency (user_id);

-- Full-text search over transcripts: the document is stored beside, not in,
-- interactions, whose rows travel whole in the analysis webhook. GIN over
-- (user, document) answers one user's search without touching other users'.
create extension if not exists btree_gin with schema extensions;
create table public.interaction_search (
  interaction_id uuid primary key references public.interactions (id) on delete cascade,
  user_id uuid not null references public.users (id) on delete cascade,
  created_at timestamptz not null,
  document tsvector not null
);
create index interaction_search_user_document_idx on public.interaction_search
  using gin (user_id, document);

do $$
declare
  t text;
begin
  foreach t in array array[
    'agent_keys', 'agent_rate_windows', 'agent_calls', 'agent_idempotency', 'interaction_search'
  ] loop
    execute format('alter table public.%I enable row level security', t);
    execute format('revoke all on table public.%I from anon, authenticated', t);
    execute format('grant all on table public.%I to service_role', t);
    execute format(
      'create policy %I on public.%I as restrictive for all to anon, authenticated using (false) with check (false)',
      t || '_no_client_access', t
    );
  end loop;
end
$$;

-- Search documents ------------------------------------------------------------------
create or replace function public.search_document(p_text text) returns tsvector
language sql immutable parallel safe set search_path = '' as $$
  -- tsvector holds at most 1 MB; a transcript is at most 200,000 characters.
  select pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(p_text, ''))
$$;

create or replace function public.index_interaction_for_search() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.interaction_search (interaction_id, user_id, created_at, document)
  values (new.id, new.user_id, new.created_at, public.search_document(new.transcript))
  on conflict (interaction_id) do update
     set document = excluded.document, user_id = excluded.user_id;
  return null;
end
$$;

create trigger interactions_search_index after insert or update of transcript
  on public.interactions for each row execute function public.index_interaction_for_search();

insert into public.interaction_search (interaction_id, user_id, created_at, document)
select id, user_id, created_at, public.search_document(transcript) from public.interactions
on conflict (interaction_id) do nothing;

-- Keys --------------------------------------------------------------------------------
create or replace function public.agent_key_hash(p_key text) returns bytea
language sql immutable parallel safe set search_path = '' as $$
  select pg_catalog.sha256(pg_catalog.convert_to(p_key, 'UTF8'))
$$;

-- A new key for p_agent_id, returned once: 'oak_' and 64 hex digits.
create or replace function public.create_agent_key(
  p_agent_id text,
  p_tools text[] default null,
  p_user_ids uuid[] default null,
  p_requests_per_minute integer default 120
) returns text
language plpgsql security definer set search_path = '' as $$
declare
  v_key text := 'oak_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  v_unknown text;
  v_missing uuid;
begin
  if p_agent_id is null or p_agent_id !~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$' then
    raise exception 'p_agent_id must be 1 to 64 characters of A-Z, a-z, 0-9, ., _, : or -, starting with a letter or digit'
      using errcode = '22023';
  end if;
  if p_tools is not null and (cardinality(p_tools) = 0 or array_position(p_tools, null) is not null) then
    raise exception 'p_tools must name at least one tool (null means every tool)' using errcode = '22023';
  end if;
  select t into v_unknown from unnest(p_tools) t where t <> all (public.agent_tool_names()) limit 1;
  if found then
    raise exception 'unknown tool % in p_tools (tools: %)', v_unknown,
      array_to_string(public.agent_tool_names(), ', ') using errcode = '22023';
  end if;
  if p_user_ids is not null
     and (cardinality(p_user_ids) = 0 or array_position(p_user_ids, null) is not null) then
    raise exception 'p_user_ids must name at least one user (null means every user)'
      using errcode = '22023';
  end if;
  select u into v_missing from unnest(p_user_ids) u
   where not exists (select 1 from public.users where id = u) limit 1;
  if found then
    raise exception 'unknown user %', v_missing using errcode = 'P0002';
  end if;
  if p_requests_per_minute is null or p_requests_per_minute not between 1 and 10000 then
    raise exception 'p_requests_per_minute must be between 1 and 10000' using errcode = '22023';
  end if;
  insert into public.agent_keys (agent_id, key_hash, tools, user_ids, requests_per_minute)
  values (
    p_agent_id, public.agent_key_hash(v_key),
    (select array_agg(distinct t order by t) from unnest(p_tools) t),
    (select array_agg(distinct u order by u) from unnest(p_user_ids) u),
    p_requests_per_minute
  );
  return v_key;
end
$$;

-- Revokes every live key of the agent; returns how many.
create or replace function public.revoke_agent_key(p_agent_id text) returns integer
language plpgsql security definer set search_path = '' as $$
declare
  v_count integer;
begin
  if p_agent_id is null or length(p_agent_id) = 0 then
    raise exception 'p_agent_id is required' using errcode = '22023';
  end if;
  update public.agent_keys set revoked_at = now() where agent_id = p_agent_id and revoked_at is null;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- The live key a bearer token is, with its scope, or null. With p_count the
-- request is counted in the key's current one-minute window: `allowed` says
-- whether it fits, `retry_after_seconds` when the window ends. The lookup is by
-- the hash, so the token itself is never compared.
create or replace function public.agent_authenticate(p_key text, p_count boolean default true)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_key public.agent_keys;
  v_window timestamptz := date_trunc('minute', clock_timestamp());
  v_used integer := 0;
  v_window_start timestamptz := v_window;
begin
  if p_key is null or p_key !~ '^oak_[0-9a-f]{64}$' then
    return null;
  end if;
  select * into v_key from public.agent_keys
   where key_hash = public.agent_key_hash(p_key) and revoked_at is null;
  if not found then
    return null;
  end if;
  if coalesce(p_count, true) then
    insert into public.agent_rate_windows as w (key_id, window_start, used)
    values (v_key.id, v_window, 1)
    on conflict (key_id) do update
       set used = case when w.window_start >= excluded.window_start
                       then least(w.used + 1, 1000000000) else 1 end,
           window_start = greatest(w.window_start, excluded.window_start)
    returning used, window_start into v_used, v_window_start;
  end if;
  return jsonb_build_object(
    'key_id', v_key.id,
    'agent_id', v_key.agent_id,
    'tools', to_jsonb(v_key.tools),
    'user_ids', to_jsonb(v_key.user_ids),
    'requests_per_minute', v_key.requests_per_minute,
    'allowed', v_used <= v_key.requests_per_minute,
    'retry_after_seconds', greatest(1, ceil(extract(epoch from
      (v_window_start + interval '1 minute' - clock_timestamp()))))::integer
  );
end
$$;

-- Contact preferences -------------------------------------------------------------------
-- Quiet hours an agent may set: whole minutes, between 6 and 16 hours long, so
-- an agent can neither switch them off nor silence the user for most of the day.
-- A null keeps the stored value. Returns the stored pair.
create or replace function public.set_quiet_hours(p_user_id uuid, p_start time, p_end time)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_user public.users;
  v_start time;
  v_end time;
  v_minutes integer;
begin
  if p_user_id is null then
    raise exception 'p_user_id is required' using errcode = '22023';
  end if;
  select * into v_user from public.users where id = p_user_id for update;
  if not found then
    raise exception 'unknown user %', p_user_id using errcode = 'P0002';
  end if;
  v_start := coalesce(p_start, v_user.quiet_hours_start);
  v_end := coalesce(p_end, v_user.quiet_hours_end);
  if date_trunc('minute', v_start) <> v_start or date_trunc('minute', v_end) <> v_end then
    raise exception 'p_start and p_end must be whole minutes' using errcode = '22023';
  end if;
  v_minutes := (extract(epoch from (v_end - v_start))::integer / 60 + 1440) % 1440;
  if v_minutes not between 360 and 960 then
    raise exception 'quiet hours must last 6 to 16 hours (% to % is % minutes)',
      to_char(v_start, 'HH24:MI'), to_char(v_end, 'HH24:MI'), v_minutes using errcode = '22023';
  end if;
  update public.users set quiet_hours_start = v_start, quiet_hours_end = v_end where id = p_user_id;
  return jsonb_build_object('quiet_hours_start', to_char(v_start, 'HH24:MI'),
                            'quiet_hours_end', to_char(v_end, 'HH24:MI'));
end
$$;

-- Access: service_role only. ------------------------------------------------------------
revoke execute on function public.index_interaction_for_search() from public, anon, authenticated;
do $$
declare
  f text;
begin
  foreach f in array array[
    'public.agent_tool_names()',
    'public.search_document(text)',
    'public.agent_key_hash(text)',
    'public.create_agent_key(text, text[], uuid[], integer)',
    'public.revoke_agent_key(text)',
    'public.agent_authenticate(text, boolean)',
    'public.set_quiet_hours(uuid, time, time)'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
