-- Routines, issue 10 (SPEC section 11): recurring work for one user, as a pipeline of step tools
-- run by the run-routines function every minute.
--
--   create_routine / enable_builtin_routine ──▶ routines (active) ──plan (TypeScript RRULE)──▶
--     next_run_at ──claim_routine_runs──▶ routine_runs: one row per routine and occurrence
--       running ──each step recorded──▶ succeeded
--          │ a step fails: retried after a backoff (next_attempt_at), then ──▶ failed
--          └ the routine paused, snoozed or ended when the occurrence came ──▶ skipped (reason)
--
--   - Validation happens here, at creation, for every caller (SQL, the agent tools, the
--     built-ins): the RRULE with the calls' validator and guardrails (rrule_problem), each step's
--     shape, tool and input against the tool's JSON Schema (routine_step_tools, generated from the
--     zod schemas in shared/routines/schemas.ts; tests/deno/routines.test.ts compares them), every
--     ${...} template reference (a step reads only earlier steps), and each `when` condition's
--     references and brackets. A `when` is compiled by the JMESPath library when the step runs;
--     one that does not compile fails the run naming the step and `when`.
--   - Occurrences of an RRULE are computed in TypeScript (shared/routines/plan.ts), which stores
--     next_run_at (routines_to_plan, record_routine_plans), as for the calls.
--   - Materialising an occurrence locks the routine (FOR UPDATE SKIP LOCKED) and inserts its run
--     with ON CONFLICT DO NOTHING on (routine_id, occurrence_key): overlapping ticks make one run.
--   - A run is claimed under a lease; each finished step is written with its output in the same
--     transaction as its effect (record_routine_step checks the lease), so a run cut off between
--     steps resumes after the last finished one once its lease lapses, and never repeats one.
--   - Missed occurrences (the project was down) make one run, the latest missed, unless the
--     routine was created with p_missed 'each'.

-- Tables ------------------------------------------------------------------------------------
create table public.routines (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  name text not null constraint routines_name check (length(name) between 1 and 100),
  -- The built-in it was installed from, if any.
  template text constraint routines_template
    check (template in ('morning_plan', 'weekly_review', 'commitment_follow_up')),
  -- 'schedule': rrule or run_at; 'commitments': one run per open commitment past its due time.
  trigger text not null default 'schedule'
    constraint routines_trigger check (trigger in ('schedule', 'commitments')),
  rrule text,
  run_at timestamptz,
  -- The RRULE's DTSTART: its first occurrence counts as one and is never run.
  series_start timestamptz not null default date_trunc('minute', now()),
  steps jsonb not null,
  params jsonb not null default '{}',
  missed text not null default 'once' constraint routines_missed check (missed in ('once', 'each')),
  max_attempts integer not null default 3
    constraint routines_max_attempts check (max_attempts between 1 and 10),
  status text not null default 'active'
    constraint routines_status check (status in ('active', 'paused', 'ended')),
  status_reason text,
  snoozed_until timestamptz,
  next_run_at timestamptz,
  -- false while the RRULE's next occurrence after plan_after is still to be computed.
  next_run_known boolean not null default false,
  plan_after timestamptz,
  created_by text not null constraint routines_created_by check (length(created_by) between 1 and 100),
  idempotency_key text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  ended_at timestamptz,
  constraint routines_idempotency unique (user_id, idempotency_key)
);
create index routines_due_idx on public.routines (next_run_at)
  where status <> 'ended' and next_run_known and next_run_at is not null;
create index routines_to_plan_idx on public.routines (created_at)
  where status <> 'ended' and not next_run_known;
create index routines_user_idx on public.routines (user_id);
create index routines_commitments_idx on public.routines (user_id)
  where trigger = 'commitments' and status <> 'ended';
-- A built-in once per user: enabling it again adjusts that routine.
create unique index routines_builtin_idx on public.routines (user_id, template)
  where template is not null and status <> 'ended';
create trigger routines_touch before update on public.routines
  for each row execute function public.touch_updated_at();

create table public.routine_runs (
  id uuid primary key default gen_random_uuid(),
  routine_id uuid not null references public.routines (id) on delete cascade,
  user_id uuid not null references public.users (id) on delete cascade,
  occurrence timestamptz not null,
  -- The occurrence's instant, 'commitment:<id>' for a follow-up, 'manual:<uuid>' for run now.
  occurrence_key text not null,
  -- What started it beyond the schedule (the commitment followed up), given to it as params.
  trigger jsonb not null default '{}',
  manual boolean not null default false,
  status text not null default 'running'
    constraint routine_runs_status check (status in ('running', 'succeeded', 'failed', 'skipped')),
  reason text,
  failed_step text,
  error text,
  -- By step id: {status, attempts, input, output, duration_ms, input_tokens, output_tokens,
  -- cost_usd, error, finished_at}; outputs bounded to 8 KB.
  steps jsonb not null default '{}',
  attempt integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  lease_token uuid,
  lease_until timestamptz,
  claims integer not null default 0,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  constraint routine_runs_once unique (routine_id, occurrence_key)
);
create index routine_runs_claim_idx on public.routine_runs (next_attempt_at) where status = 'running';
create index routine_runs_user_idx on public.routine_runs (user_id, created_at);

-- The step tools and the JSON Schema of each one's input (z.toJSONSchema of
-- shared/routines/schemas.ts), with the fields of its output a template may read.
create table public.routine_step_tools (
  name text primary key,
  input_schema jsonb not null,
  output_fields text[] not null
);
insert into public.routine_step_tools (name, input_schema, output_fields) values
  ('context.read', $json${"type":"object","properties":{},"additionalProperties":false}$json$::jsonb, array['user_id', 'timezone', 'local_time', 'quiet_hours', 'preferred_hours', 'active_now', 'sms_opted_out', 'budget', 'memory', 'session_summary', 'open_commitments', 'pending_calls', 'queued_messages', 'last_interactions', 'truncated']),
  ('claude.generate', $json${"type":"object","properties":{"instruction":{"type":"string","minLength":1,"maxLength":4000,"description":"What to write; templates such as ${steps.ctx.open_commitments} are filled in first."},"context":{"description":"What the model may read, usually a template such as ${steps.ctx}; shown to it as data."},"max_chars":{"default":320,"description":"The text is cut to this many characters.","type":"integer","minimum":1,"maximum":1600},"json":{"default":false,"description":"Ask for one JSON object; it is returned parsed as data (a reply that is not one fails).","type":"boolean"}},"required":["instruction"],"additionalProperties":false}$json$::jsonb, array['text', 'data']),
  ('sms.queue', $json${"type":"object","properties":{"text":{"description":"The SMS exactly as the user should read it (sent verbatim). Give text or data, not both.","type":"string","minLength":1,"maxLength":1600},"data":{"description":"Structured facts to be written up as a short SMS just before sending (for example {\"kind\": \"reminder\", \"what\": \"dentist\", \"at\": \"15:00\"}). Give text or data, not both.","type":"object","propertyNames":{"type":"string"},"additionalProperties":{}},"priority":{"default":"medium","description":"urgent skips quiet hours and caps (at most 5 a day, then it waits like high); high, medium and low wait for allowed hours and budget, higher first.","type":"string","enum":["urgent","high","medium","low"]},"can_delay":{"default":true,"description":"true lets delivery wait for a better time; false sends at the first allowed instant.","type":"boolean"},"requires_fresh_context":{"default":false,"description":"Ask just before sending whether the message still makes sense; if not it is dropped.","type":"boolean"},"scheduled_for":{"description":"The earliest time to send, ISO 8601 with offset; now when absent. Within a year.","type":"string","format":"date-time","pattern":"^(?:(?:\\d\\d[2468][048]|\\d\\d[13579][26]|\\d\\d0[48]|[02468][048]00|[13579][26]00)-02-29|\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|(?:02)-(?:0[1-9]|1\\d|2[0-8])))T(?:(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d+)?(?:Z|([+-](?:[01]\\d|2[0-3]):[0-5]\\d)))$"},"expires_at":{"description":"After this instant the message is no longer worth sending and is dropped.","type":"string","format":"date-time","pattern":"^(?:(?:\\d\\d[2468][048]|\\d\\d[13579][26]|\\d\\d0[48]|[02468][048]00|[13579][26]00)-02-29|\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|(?:02)-(?:0[1-9]|1\\d|2[0-8])))T(?:(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d+)?(?:Z|([+-](?:[01]\\d|2[0-3]):[0-5]\\d)))$"},"supersede_key":{"description":"A newer message with the same key replaces this user's older queued ones.","type":"string","minLength":1,"maxLength":100}},"additionalProperties":false,"oneOf":[{"required":["text"]},{"required":["data"]}]}$json$::jsonb, array['message_id', 'status']),
  ('call.schedule', $json${"type":"object","properties":{"call_type":{"type":"string","pattern":"^[a-z0-9_-]{1,64}$","description":"What the call is for, as a slug such as check_in, reminder or follow_up."},"scheduled_for":{"type":"string","format":"date-time","pattern":"^(?:(?:\\d\\d[2468][048]|\\d\\d[13579][26]|\\d\\d0[48]|[02468][048]00|[13579][26]00)-02-29|\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|(?:02)-(?:0[1-9]|1\\d|2[0-8])))T(?:(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d+)?(?:Z|([+-](?:[01]\\d|2[0-3]):[0-5]\\d)))$","description":"When to call, ISO 8601 with offset, between 1 minute and 90 days from now."},"custom_instructions":{"description":"What the voice assistant should cover on the call.","type":"string","minLength":1,"maxLength":4000},"rrule":{"description":"For a recurring call, an RFC 5545 RRULE (FREQ=DAILY, WEEKLY or MONTHLY, e.g. FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=8;BYMINUTE=30) in the user's time zone, from scheduled_for.","type":"string","maxLength":500}},"required":["call_type","scheduled_for"],"additionalProperties":false}$json$::jsonb, array['call_id', 'status', 'scheduled_for']),
  ('memory.update', $json${"type":"object","properties":{"items":{"description":"Facts to add or refresh; an existing key is updated, never duplicated.","maxItems":20,"type":"array","items":{"type":"object","properties":{"key":{"type":"string","minLength":1,"maxLength":80,"description":"A short stable name for the fact, such as preferred_call_time."},"value":{"type":"string","minLength":1,"maxLength":500,"description":"What is known, in one sentence."},"category":{"type":"string","enum":["preference","fact","goal","routine","relationship","health","other"]}},"required":["key","value"],"additionalProperties":false}},"retire":{"description":"Keys of facts no longer true.","maxItems":20,"type":"array","items":{"type":"string","minLength":1,"maxLength":80}}},"additionalProperties":false}$json$::jsonb, array['items_stored', 'added', 'refreshed', 'retired']),
  ('http.post', $json${"type":"object","properties":{"url":{"type":"string","maxLength":2000,"format":"uri","description":"An http(s) URL whose origin is in ROUTINE_HTTP_ALLOWLIST."},"body":{"description":"Any JSON value, sent as the request body."}},"required":["url"],"additionalProperties":false}$json$::jsonb, array['status', 'body']);

-- The origins http.post may reach, as run-routines last read them from ROUTINE_HTTP_ALLOWLIST
-- (each tick writes them here), so that create_routine can refuse any other at creation.
create table public.routine_http_origins (
  origin text primary key,
  synced_at timestamptz not null default now()
);

do $$
declare
  t text;
begin
  foreach t in array array['routines', 'routine_runs', 'routine_step_tools', 'routine_http_origins']
  loop
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

-- Validation ------------------------------------------------------------------------------
-- Why a JSON value does not match the subset of JSON Schema the step tools' schemas use, or null.
-- A string holding a template matches whatever it will be: it is known only when the step runs,
-- when the tool's zod schema checks it.
create or replace function public.routine_json_problem(p_schema jsonb, p_value jsonb, p_path text)
returns text
language plpgsql stable security invoker set search_path = '' as $$
declare
  v_type text := pg_catalog.jsonb_typeof(p_value);
  v_types text[];
  v_text text;
  v_problem text;
  v_key text;
  v_item jsonb;
  v_n integer := 0;
begin
  if v_type = 'string' and strpos(p_value #>> '{}', '${') > 0 then
    return null;
  end if;
  if p_schema ? 'type' then
    v_types := case when pg_catalog.jsonb_typeof(p_schema -> 'type') = 'array'
      then array(select pg_catalog.jsonb_array_elements_text(p_schema -> 'type'))
      else array[p_schema ->> 'type'] end;
    if not (v_type = any (v_types)
            or ('integer' = any (v_types) and v_type = 'number'
                and (p_value #>> '{}')::numeric = trunc((p_value #>> '{}')::numeric))) then
      return format('%s must be %s', p_path, array_to_string(v_types, ' or '));
    end if;
  end if;
  if p_schema ? 'enum' and not (p_schema -> 'enum') @> pg_catalog.jsonb_build_array(p_value) then
    return format('%s must be one of %s', p_path,
      (select string_agg(e, ', ') from pg_catalog.jsonb_array_elements_text(p_schema -> 'enum') e));
  end if;
  if v_type = 'string' then
    v_text := p_value #>> '{}';
    if char_length(v_text) < coalesce((p_schema ->> 'minLength')::integer, 0) then
      return format('%s must be at least %s characters', p_path, p_schema ->> 'minLength');
    end if;
    if char_length(v_text) > coalesce((p_schema ->> 'maxLength')::integer, 2147483647) then
      return format('%s must be at most %s characters', p_path, p_schema ->> 'maxLength');
    end if;
    if p_schema ? 'pattern' and v_text !~ (p_schema ->> 'pattern') then
      return format('%s is not valid%s', p_path,
        case when p_schema ->> 'format' = 'date-time' then ' (an ISO 8601 instant with offset)' else '' end);
    end if;
    if p_schema ->> 'format' = 'uri' and v_text !~ '^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s]+$' then
      return format('%s must be a URL', p_path);
    end if;
  elsif v_type = 'number' then
    if (p_value #>> '{}')::numeric < coalesce((p_schema ->> 'minimum')::numeric, '-Infinity') then
      return format('%s must be at least %s', p_path, p_schema ->> 'minimum');
    end if;
    if (p_value #>> '{}')::numeric > coalesce((p_schema ->> 'maximum')::numeric, 'Infinity') then
      return format('%s must be at most %s', p_path, p_schema ->> 'maximum');
    end if;
  elsif v_type = 'array' then
    if pg_catalog.jsonb_array_length(p_value) > coalesce((p_schema ->> 'maxItems')::integer, 2147483647) then
      return format('%s must have at most %s items', p_path, p_schema ->> 'maxItems');
    end if;
    if p_schema ? 'items' then
      for v_item in select pg_catalog.jsonb_array_elements(p_value) loop
        v_problem := public.routine_json_problem(p_schema -> 'items', v_item,
          format('%s[%s]', p_path, v_n));
        if v_problem is not null then
          return v_problem;
        end if;
        v_n := v_n + 1;
      end loop;
    end if;
  elsif v_type = 'object' then
    select format('%s.%s is required', p_path, r) into v_problem
      from pg_catalog.jsonb_array_elements_text(coalesce(p_schema -> 'required', '[]')) r
     where not p_value ? r limit 1;
    if v_problem is not null then
      return v_problem;
    end if;
    if p_schema ? 'oneOf' and (
      select count(*) from pg_catalog.jsonb_array_elements(p_schema -> 'oneOf') o
       where not exists (select 1 from pg_catalog.jsonb_array_elements_text(o -> 'required') r
                          where not p_value ? r)) <> 1 then
      return format('%s must have exactly one of %s', p_path,
        (select string_agg(o -> 'required' ->> 0, ', ')
           from pg_catalog.jsonb_array_elements(p_schema -> 'oneOf') o));
    end if;
    for v_key, v_item in select key, value from pg_catalog.jsonb_each(p_value) loop
      if p_schema -> 'properties' ? v_key then
        v_problem := public.routine_json_problem(p_schema -> 'properties' -> v_key, v_item,
          p_path || '.' || v_key);
      elsif p_schema -> 'additionalProperties' = 'false'::jsonb then
        v_problem := format('%s.%s is not a field of this tool', p_path, v_key);
      end if;
      if v_problem is not null then
        return v_problem;
      end if;
    end loop;
  end if;
  return null;
end
$$;

-- The run-time names a trigger adds to params, which templates may read.
create or replace function public.routine_trigger_params(p_trigger text) returns text[]
language sql immutable security invoker set search_path = '' as $$
  select case p_trigger when 'commitments' then array['commitment', 'call_at'] else array[]::text[] end
$$;

-- Why a ${...} reference is not one a step may use, or null. p_earlier maps the earlier steps'
-- ids to their tools.
create or replace function public.routine_reference_problem(
  p_ref text, p_earlier jsonb, p_params jsonb, p_trigger text
) returns text
language plpgsql stable security invoker set search_path = '' as $$
declare
  v_parts text[] := string_to_array(btrim(p_ref), '.');
  v_fields text[];
begin
  if btrim(p_ref) = 'occurrence' then
    return null;
  end if;
  if btrim(p_ref) !~ '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$' then
    return format('${%s} is not a reference (steps.<id>.<path>, params.<name>, user.timezone, '
      'user.local_date or occurrence)', p_ref);
  end if;
  if v_parts[1] = 'user' then
    if cardinality(v_parts) = 2 and v_parts[2] in ('id', 'timezone', 'local_date', 'local_time') then
      return null;
    end if;
    return format('${%s}: user has id, timezone, local_date and local_time', p_ref);
  end if;
  if v_parts[1] = 'params' then
    if cardinality(v_parts) < 2 then
      return format('${%s} must name a parameter', p_ref);
    end if;
    if not (p_params ? v_parts[2] or v_parts[2] = any (public.routine_trigger_params(p_trigger))) then
      return format('${%s}: there is no parameter %s', p_ref, v_parts[2]);
    end if;
    return null;
  end if;
  if v_parts[1] = 'steps' then
    if cardinality(v_parts) < 2 or not p_earlier ? v_parts[2] then
      return format('${%s}: a step may only refer to steps before it', p_ref);
    end if;
    if cardinality(v_parts) >= 3 then
      select output_fields into v_fields from public.routine_step_tools
       where name = p_earlier ->> v_parts[2];
      if not v_parts[3] = any (v_fields) then
        return format('${%s}: %s has no output field %s (it has %s)', p_ref,
          p_earlier ->> v_parts[2], v_parts[3], array_to_string(v_fields, ', '));
      end if;
    end if;
    return null;
  end if;
  return format('${%s} is not a reference (steps.<id>.<path>, params.<name>, user.timezone, '
    'user.local_date or occurrence)', p_ref);
end
$$;

-- Why a `when` condition cannot be right, or null: its step references and its brackets. The
-- JMESPath library compiles it when the step runs.
create or replace function public.routine_condition_problem(p_when text, p_earlier jsonb)
returns text
language plpgsql immutable security invoker set search_path = '' as $$
declare
  v_bare text;
  v_ref text;
  v_open text := '';
  v_char text;
begin
  if p_when is null or length(btrim(p_when)) = 0 or length(p_when) > 1000 then
    return 'when must be a JMESPath expression of 1 to 1000 characters';
  end if;
  -- Literals ('raw', "quoted", `json`) hold no references and no brackets.
  v_bare := regexp_replace(p_when, $re$'(\\.|[^'\\])*'|"(\\.|[^"\\])*"|`(\\.|[^`\\])*`$re$, '""', 'g');
  if v_bare ~ $re$['"`]$re$ and regexp_replace(v_bare, '""', '', 'g') ~ $re$['"`]$re$ then
    return 'when has an unterminated literal';
  end if;
  for v_ref in select m[1] from regexp_matches(v_bare, '(?:^|[^A-Za-z0-9_.@])steps\.([A-Za-z_][A-Za-z0-9_]*)', 'g') m loop
    if not p_earlier ? v_ref then
      return format('when reads steps.%s: a step may only refer to steps before it', v_ref);
    end if;
  end loop;
  foreach v_char in array regexp_split_to_array(regexp_replace(v_bare, '[^][(){}]', '', 'g'), '') loop
    if v_char = '' then
      continue;
    elsif v_char in ('(', '[', '{') then
      v_open := v_open || v_char;
    elsif v_open = '' or right(v_open, 1) <> translate(v_char, ')]}', '([{') then
      return 'when has unbalanced brackets';
    else
      v_open := left(v_open, -1);
    end if;
  end loop;
  if v_open <> '' then
    return 'when has unbalanced brackets';
  end if;
  return null;
end
$$;

-- Why an http.post URL is refused at creation, or null: a literal http(s) origin in the
-- allowlist (the path and query may hold templates).
create or replace function public.routine_url_problem(p_url text) returns text
language plpgsql stable security invoker set search_path = '' as $$
declare
  v_origin text := lower(substring(p_url from '^(https?://[^/?#]*)'));
begin
  if v_origin is null then
    return 'with.url must be an http or https URL';
  end if;
  if strpos(v_origin, '${') > 0 then
    return 'with.url must name its origin literally (templates only after it)';
  end if;
  if strpos(v_origin, '@') > 0 then
    return 'with.url must not carry credentials';
  end if;
  if not exists (select 1 from public.routine_http_origins where origin = v_origin) then
    return format('with.url: %s is not in ROUTINE_HTTP_ALLOWLIST', v_origin);
  end if;
  return null;
end
$$;

-- The first problem with a routine's steps, as 'p_steps: step <id> (#n) <field>: ...', or null.
create or replace function public.routine_steps_problem(
  p_steps jsonb, p_params jsonb, p_trigger text
) returns text
language plpgsql stable security invoker set search_path = '' as $$
declare
  v_step jsonb;
  v_n integer := 0;
  v_id text;
  v_where text;
  v_earlier jsonb := '{}';
  v_schema jsonb;
  v_problem text;
  v_string text;
  v_ref text;
begin
  if p_steps is null or pg_catalog.jsonb_typeof(p_steps) <> 'array' then
    return 'p_steps must be a JSON array of steps';
  end if;
  if pg_catalog.jsonb_array_length(p_steps) not between 1 and 20 then
    return 'p_steps must have 1 to 20 steps';
  end if;
  if length(p_steps::text) > 65536 then
    return 'p_steps must be at most 64 KB';
  end if;
  for v_step in select pg_catalog.jsonb_array_elements(p_steps) loop
    v_n := v_n + 1;
    v_where := format('p_steps: step #%s', v_n);
    if pg_catalog.jsonb_typeof(v_step) <> 'object' then
      return v_where || ' must be an object {id, uses, with, when}';
    end if;
    select format('%s has an unknown field %s', v_where, k) into v_problem
      from pg_catalog.jsonb_object_keys(v_step) k where k not in ('id', 'uses', 'with', 'when') limit 1;
    if v_problem is not null then
      return v_problem;
    end if;
    v_id := v_step ->> 'id';
    if pg_catalog.jsonb_typeof(v_step -> 'id') is distinct from 'string'
       or v_id !~ '^[a-z][a-z0-9_]{0,39}$' then
      return v_where || ' id must be 1 to 40 characters of a-z, 0-9 and _, starting with a letter';
    end if;
    v_where := format('p_steps: step %s (#%s)', v_id, v_n);
    if v_earlier ? v_id then
      return v_where || ' id is used by an earlier step';
    end if;
    select input_schema into v_schema from public.routine_step_tools
     where name = v_step ->> 'uses' and pg_catalog.jsonb_typeof(v_step -> 'uses') = 'string';
    if not found then
      return format('%s uses must be one of %s', v_where,
        (select string_agg(name, ', ' order by name) from public.routine_step_tools));
    end if;
    if v_step ? 'with' and pg_catalog.jsonb_typeof(v_step -> 'with') <> 'object' then
      return v_where || ' with must be an object';
    end if;
    v_problem := public.routine_json_problem(v_schema, coalesce(v_step -> 'with', '{}'), 'with');
    if v_problem is not null then
      return v_where || ' ' || v_problem;
    end if;
    if v_step ->> 'uses' = 'http.post' and pg_catalog.jsonb_typeof(v_step -> 'with' -> 'url') = 'string' then
      v_problem := public.routine_url_problem(v_step -> 'with' ->> 'url');
      if v_problem is not null then
        return v_where || ' ' || v_problem;
      end if;
    end if;
    for v_string in select s #>> '{}' from pg_catalog.jsonb_path_query(
      coalesce(v_step -> 'with', '{}'), 'strict $.** ? (@.type() == "string")') s loop
      if v_string ~ '\$\{[^}]*$' then
        return v_where || ' with has a ${ without its closing }';
      end if;
      for v_ref in select m[1] from regexp_matches(v_string, '\$\{([^}]*)\}', 'g') m loop
        v_problem := public.routine_reference_problem(v_ref, v_earlier, p_params, p_trigger);
        if v_problem is not null then
          return v_where || ' with: ' || v_problem;
        end if;
      end loop;
    end loop;
    if v_step ? 'when' then
      if pg_catalog.jsonb_typeof(v_step -> 'when') <> 'string' then
        return v_where || ' when must be a string';
      end if;
      v_problem := public.routine_condition_problem(v_step ->> 'when', v_earlier);
      if v_problem is not null then
        return v_where || ' ' || v_problem;
      end if;
    end if;
    v_earlier := v_earlier || pg_catalog.jsonb_build_object(v_id, v_step ->> 'uses');
  end loop;
  return null;
end
$$;

-- Why a routine's params are refused, or null: an object of at most 8 KB whose keys templates
-- can name.
create or replace function public.routine_params_problem(p_params jsonb, p_trigger text)
returns text
language sql stable security invoker set search_path = '' as $$
  select case
    when p_params is null or pg_catalog.jsonb_typeof(p_params) <> 'object'
      then 'p_params must be a JSON object'
    when length(p_params::text) > 8192 then 'p_params must be at most 8 KB'
    else (select format('p_params: %s must be 1 to 40 characters of A-Z, a-z, 0-9 and _, '
                        'not starting with a digit', k)
            from pg_catalog.jsonb_object_keys(p_params) k
           where k !~ '^[A-Za-z_][A-Za-z0-9_]{0,39}$' limit 1)
  end
$$;

-- The insert behind create_routine and enable_builtin_routine: everything checked, nothing
-- written on any problem. The caller has checked the user exists.
create or replace function public.insert_routine(
  p_user_id uuid, p_name text, p_steps jsonb, p_rrule text, p_run_at timestamptz,
  p_params jsonb, p_idempotency_key text, p_missed text, p_created_by text,
  p_trigger text, p_template text
) returns uuid
language plpgsql security invoker set search_path = '' as $$
declare
  v_problem text;
  v_id uuid;
begin
  if p_name is null or length(btrim(p_name)) not between 1 and 100 then
    raise exception 'p_name must be 1 to 100 characters' using errcode = '22023';
  end if;
  if p_created_by is null or length(p_created_by) not between 1 and 100 then
    raise exception 'p_created_by must be 1 to 100 characters' using errcode = '22023';
  end if;
  if p_missed is null or p_missed not in ('once', 'each') then
    raise exception 'p_missed must be once or each' using errcode = '22023';
  end if;
  if p_trigger = 'schedule' and (p_rrule is null) = (p_run_at is null) then
    raise exception 'p_rrule and p_run_at: give exactly one (a recurrence or one instant)'
      using errcode = '22023';
  end if;
  if p_rrule is not null then
    v_problem := public.rrule_problem(p_rrule);
    if v_problem is not null then
      raise exception 'p_rrule is not accepted: %', v_problem using errcode = '22023';
    end if;
  end if;
  if p_run_at is not null and p_run_at not between now() - interval '1 minute' and now() + interval '366 days' then
    raise exception 'p_run_at must be from now to a year ahead' using errcode = '22023';
  end if;
  v_problem := coalesce(public.routine_params_problem(p_params, p_trigger),
                        public.routine_steps_problem(p_steps, p_params, p_trigger));
  if v_problem is not null then
    raise exception '%', v_problem using errcode = '22023';
  end if;
  insert into public.routines (
    user_id, name, template, trigger, rrule, run_at, steps, params, missed, created_by,
    idempotency_key, next_run_at, next_run_known
  ) values (
    p_user_id, btrim(p_name), p_template, p_trigger, p_rrule, p_run_at, p_steps, p_params, p_missed,
    p_created_by, p_idempotency_key, p_run_at, p_rrule is null
  )
  returning id into v_id;
  return v_id;
end
$$;

-- RPCs ----------------------------------------------------------------------------------------
create or replace function public.create_routine(
  p_user_id uuid,
  p_name text,
  p_steps jsonb,
  p_rrule text default null,
  p_run_at timestamptz default null,
  p_params jsonb default '{}',
  p_idempotency_key text default null,
  p_missed text default 'once',
  p_created_by text default 'sql'
) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  v_id uuid;
begin
  if p_user_id is null then
    raise exception 'p_user_id is required' using errcode = '22023';
  end if;
  perform 1 from public.users where id = p_user_id for key share;
  if not found then
    raise exception 'unknown user %', p_user_id using errcode = 'P0002';
  end if;
  if p_idempotency_key is not null then
    if length(p_idempotency_key) not between 1 and 200 then
      raise exception 'p_idempotency_key must be 1 to 200 characters' using errcode = '22023';
    end if;
    perform pg_catalog.pg_advisory_xact_lock(
      pg_catalog.hashtextextended('public.create_routine:' || p_user_id::text, 0));
    select id into v_id from public.routines
     where user_id = p_user_id and idempotency_key = p_idempotency_key;
    if found then
      return v_id;
    end if;
  end if;
  return public.insert_routine(p_user_id, p_name, p_steps, p_rrule, p_run_at,
    p_params, p_idempotency_key, p_missed, p_created_by, 'schedule', null);
end
$$;

-- The routine, locked; P0002 when there is none, 22023 when it has ended.
create or replace function public.live_routine(p_routine_id uuid) returns public.routines
language plpgsql security invoker set search_path = '' as $$
declare
  v_routine public.routines;
begin
  if p_routine_id is null then
    raise exception 'p_routine_id is required' using errcode = '22023';
  end if;
  select * into v_routine from public.routines where id = p_routine_id for update;
  if not found then
    raise exception 'unknown routine %', p_routine_id using errcode = 'P0002';
  end if;
  if v_routine.status = 'ended' then
    raise exception 'p_routine_id: the routine has ended' using errcode = '22023';
  end if;
  return v_routine;
end
$$;

create or replace function public.pause_routine(p_routine_id uuid) returns void
language plpgsql security definer set search_path = '' as $$
begin
  perform public.live_routine(p_routine_id);
  update public.routines set status = 'paused', status_reason = 'paused' where id = p_routine_id;
end
$$;

create or replace function public.resume_routine(p_routine_id uuid) returns void
language plpgsql security definer set search_path = '' as $$
begin
  perform public.live_routine(p_routine_id);
  update public.routines set status = 'active', status_reason = null, snoozed_until = null
   where id = p_routine_id;
end
$$;

create or replace function public.snooze_routine(p_routine_id uuid, p_until timestamptz)
returns void
language plpgsql security definer set search_path = '' as $$
begin
  perform public.live_routine(p_routine_id);
  if p_until is null or p_until <= now() or p_until > now() + interval '366 days' then
    raise exception 'p_until must be after now and at most a year ahead' using errcode = '22023';
  end if;
  update public.routines set snoozed_until = p_until where id = p_routine_id;
end
$$;

create or replace function public.end_routine(p_routine_id uuid) returns void
language plpgsql security definer set search_path = '' as $$
begin
  perform public.live_routine(p_routine_id);
  update public.routines
     set status = 'ended', status_reason = 'ended', ended_at = now(), next_run_at = null,
         next_run_known = true
   where id = p_routine_id;
  -- Runs that have not begun a step end with it; one under way finishes.
  update public.routine_runs
     set status = 'skipped', reason = 'the routine was ended', finished_at = now()
   where routine_id = p_routine_id and status = 'running' and steps = '{}'
     and (lease_until is null or lease_until < now());
end
$$;

-- A run of the routine now, whatever its schedule, pause or snooze; run-routines starts it on
-- its next tick. Returns the run.
create or replace function public.run_routine_now(p_routine_id uuid) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  v_routine public.routines := public.live_routine(p_routine_id);
  v_id uuid;
begin
  insert into public.routine_runs (routine_id, user_id, occurrence, occurrence_key, manual)
  values (v_routine.id, v_routine.user_id, now(), 'manual:' || gen_random_uuid()::text, true)
  returning id into v_id;
  return v_id;
end
$$;

-- Built-ins -----------------------------------------------------------------------------------
-- A built-in's params with their defaults, checked: the user's own values win.
create or replace function public.builtin_routine_params(p_template text, p_params jsonb)
returns jsonb
language plpgsql immutable security invoker set search_path = '' as $$
declare
  c_defaults constant jsonb := case p_template
    when 'morning_plan' then '{"time": "08:30", "days": "MO,TU,WE,TH,FR"}'
    when 'weekly_review' then '{"time": "18:00", "day": "SU"}'
    when 'commitment_follow_up' then '{"delay_minutes": 30, "channel": "sms"}'
  end;
  v_params jsonb;
  v_key text;
begin
  if c_defaults is null then
    raise exception 'p_template must be morning_plan, weekly_review or commitment_follow_up'
      using errcode = '22023';
  end if;
  if p_params is null or pg_catalog.jsonb_typeof(p_params) <> 'object' then
    raise exception 'p_params must be a JSON object' using errcode = '22023';
  end if;
  for v_key in select pg_catalog.jsonb_object_keys(p_params) loop
    if not c_defaults ? v_key then
      raise exception 'p_params.% is not a parameter of % (it has %)', v_key, p_template,
        (select string_agg(k, ', ') from pg_catalog.jsonb_object_keys(c_defaults) k)
        using errcode = '22023';
    end if;
  end loop;
  v_params := c_defaults || p_params;
  if v_params ? 'time' and (pg_catalog.jsonb_typeof(v_params -> 'time') <> 'string'
      or v_params ->> 'time' !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$') then
    raise exception 'p_params.time must be HH:MM (24-hour)' using errcode = '22023';
  end if;
  if v_params ? 'days' and (pg_catalog.jsonb_typeof(v_params -> 'days') <> 'string'
      or v_params ->> 'days' !~ '^(MO|TU|WE|TH|FR|SA|SU)(,(MO|TU|WE|TH|FR|SA|SU))*$') then
    raise exception 'p_params.days must be days such as MO,TU,WE,TH,FR' using errcode = '22023';
  end if;
  if v_params ? 'day' and (pg_catalog.jsonb_typeof(v_params -> 'day') <> 'string'
      or v_params ->> 'day' !~ '^(MO|TU|WE|TH|FR|SA|SU)$') then
    raise exception 'p_params.day must be one of MO, TU, WE, TH, FR, SA, SU' using errcode = '22023';
  end if;
  if v_params ? 'delay_minutes' and (pg_catalog.jsonb_typeof(v_params -> 'delay_minutes') <> 'number'
      or (v_params ->> 'delay_minutes')::numeric not between 0 and 1440
      or (v_params ->> 'delay_minutes')::numeric <> trunc((v_params ->> 'delay_minutes')::numeric)) then
    raise exception 'p_params.delay_minutes must be a whole number from 0 to 1440'
      using errcode = '22023';
  end if;
  if v_params ? 'channel' and (v_params ->> 'channel') is distinct from 'sms'
      and (v_params ->> 'channel') is distinct from 'call' then
    raise exception 'p_params.channel must be sms or call' using errcode = '22023';
  end if;
  return v_params;
end
$$;

-- A built-in's RRULE (null for the follow-ups, which follow the commitments) from its params.
create or replace function public.builtin_routine_rrule(p_template text, p_params jsonb)
returns text
language sql immutable security invoker set search_path = '' as $$
  select case p_template
    when 'morning_plan' then format('FREQ=WEEKLY;BYDAY=%s;BYHOUR=%s;BYMINUTE=%s', p_params ->> 'days',
      split_part(p_params ->> 'time', ':', 1)::integer, split_part(p_params ->> 'time', ':', 2)::integer)
    when 'weekly_review' then format('FREQ=WEEKLY;BYDAY=%s;BYHOUR=%s;BYMINUTE=%s', p_params ->> 'day',
      split_part(p_params ->> 'time', ':', 1)::integer, split_part(p_params ->> 'time', ':', 2)::integer)
  end
$$;

-- A built-in's steps: ordinary steps, checked like any routine's.
create or replace function public.builtin_routine_steps(p_template text) returns jsonb
language sql immutable security invoker set search_path = '' as $$
  select case p_template
    when 'morning_plan' then $json$[
      {"id": "ctx", "uses": "context.read"},
      {"id": "plan", "uses": "claude.generate", "with": {
        "instruction": "Write the user's plan for today, ${user.local_date}, as one SMS of at most 300 characters: what is due (open commitments), the calls coming up, and one useful thing from what you remember about them or from yesterday's summary. Plain text, no preamble.",
        "context": "${steps.ctx}", "max_chars": 300}},
      {"id": "send", "uses": "sms.queue", "when": "length(steps.plan.text) > `0`", "with": {
        "text": "${steps.plan.text}", "priority": "low", "can_delay": true,
        "supersede_key": "routine:morning_plan"}}
    ]$json$::jsonb
    when 'weekly_review' then $json$[
      {"id": "ctx", "uses": "context.read"},
      {"id": "review", "uses": "claude.generate", "with": {
        "instruction": "Review the user's week up to ${user.local_date}: their recent conversations, open commitments and what you remember. Reply with one JSON object: {\"summary\": \"a short SMS (at most 300 characters) on how the week went and one suggestion\", \"patterns\": [{\"key\": \"short_snake_case_name\", \"value\": \"one sentence\", \"category\": \"routine\"}]} with at most 5 patterns you see repeated, and none you are unsure of.",
        "context": "${steps.ctx}", "json": true, "max_chars": 1600}},
      {"id": "remember", "uses": "memory.update",
       "when": "length(steps.review.data.patterns || `[]`) > `0`",
       "with": {"items": "${steps.review.data.patterns}"}},
      {"id": "send", "uses": "sms.queue", "when": "steps.review.data.summary", "with": {
        "text": "${steps.review.data.summary}", "priority": "low", "can_delay": true,
        "supersede_key": "routine:weekly_review"}}
    ]$json$::jsonb
    when 'commitment_follow_up' then $json$[
      {"id": "check_in", "uses": "sms.queue", "when": "params.channel == 'sms'", "with": {
        "text": "Checking in on \"${params.commitment.description}\": how did it go?",
        "priority": "medium", "can_delay": true}},
      {"id": "call", "uses": "call.schedule", "when": "params.channel == 'call'", "with": {
        "call_type": "follow_up", "scheduled_for": "${params.call_at}",
        "custom_instructions": "Follow up on what the user committed to: ${params.commitment.description}"}}
    ]$json$::jsonb
  end
$$;

-- Installs a built-in for the user, or adjusts the one they have (its params, schedule and
-- steps; a pause stays). Returns the routine.
create or replace function public.enable_builtin_routine(
  p_user_id uuid, p_template text, p_params jsonb default '{}'
) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  v_params jsonb;
  v_rrule text;
  v_steps jsonb;
  v_trigger text;
  v_id uuid;
  v_problem text;
begin
  if p_user_id is null then
    raise exception 'p_user_id is required' using errcode = '22023';
  end if;
  perform 1 from public.users where id = p_user_id for key share;
  if not found then
    raise exception 'unknown user %', p_user_id using errcode = 'P0002';
  end if;
  v_params := public.builtin_routine_params(p_template, p_params);
  v_rrule := public.builtin_routine_rrule(p_template, v_params);
  v_steps := public.builtin_routine_steps(p_template);
  v_trigger := case when p_template = 'commitment_follow_up' then 'commitments' else 'schedule' end;
  perform pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended('public.create_routine:' || p_user_id::text, 0));
  select id into v_id from public.routines
   where user_id = p_user_id and template = p_template and status <> 'ended' for update;
  if not found then
    return public.insert_routine(p_user_id, replace(p_template, '_', ' '), v_steps, v_rrule, null,
      v_params, null, 'once', 'builtin', v_trigger, p_template);
  end if;
  if v_rrule is not null then
    v_problem := public.rrule_problem(v_rrule);
    if v_problem is not null then
      raise exception 'p_params give an RRULE that is not accepted: %', v_problem using errcode = '22023';
    end if;
  end if;
  update public.routines
     set params = v_params, steps = v_steps, rrule = v_rrule,
         series_start = date_trunc('minute', now()), plan_after = null, next_run_at = null,
         next_run_known = v_rrule is null
   where id = v_id;
  return v_id;
end
$$;

-- The runner ------------------------------------------------------------------------------------
create or replace function public.occurrence_text(p_at timestamptz) returns text
language sql immutable security invoker set search_path = '' as $$
  select to_char(p_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- Makes the runs of occurrences that came (skipped when the routine is paused or snoozed), then
-- leases up to p_limit runs that are due and returns them with what run-routines needs.
create or replace function public.claim_routine_runs(p_limit integer, p_lease_seconds integer)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_runs jsonb;
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = '22023';
  end if;
  if p_lease_seconds is null or p_lease_seconds not between 10 and 900 then
    raise exception 'p_lease_seconds must be between 10 and 900' using errcode = '22023';
  end if;

  -- Scheduled occurrences: one run each, and the routine waits for its next to be planned.
  with due as (
    select r.id, r.user_id, r.next_run_at, r.rrule,
           case when r.status = 'paused' then 'the routine is paused'
                when r.snoozed_until > r.next_run_at
                  then 'the routine is snoozed until ' || public.occurrence_text(r.snoozed_until)
           end as skip
      from public.routines r
     where r.status <> 'ended' and r.next_run_known and r.next_run_at <= now()
     order by r.next_run_at
     limit p_limit
       for update skip locked
  ), made as (
    insert into public.routine_runs (routine_id, user_id, occurrence, occurrence_key, status,
                                     reason, finished_at)
    select id, user_id, next_run_at, public.occurrence_text(next_run_at),
           case when skip is null then 'running' else 'skipped' end, skip,
           case when skip is not null then now() end
      from due
    on conflict (routine_id, occurrence_key) do nothing
  )
  update public.routines r
     set next_run_at = null,
         next_run_known = d.rrule is null,
         plan_after = d.next_run_at,
         status = case when d.rrule is null then 'ended' else r.status end,
         status_reason = case when d.rrule is null then 'its one run has come' else r.status_reason end,
         ended_at = case when d.rrule is null then now() else r.ended_at end
    from due d
   where r.id = d.id;

  -- Follow-ups: one run per open commitment whose follow-up time came (within a day of the
  -- routine being enabled, so enabling it brings no check-ins on old commitments).
  insert into public.routine_runs (routine_id, user_id, occurrence, occurrence_key, trigger, status,
                                   reason, finished_at)
  select r.id, r.user_id, c.due_at + d.delay, 'commitment:' || c.id::text,
         pg_catalog.jsonb_build_object('commitment', pg_catalog.jsonb_build_object(
           'id', c.id, 'description', c.description, 'due_at', c.due_at)),
         case when s.skip is null then 'running' else 'skipped' end, s.skip,
         case when s.skip is not null then now() end
    from public.routines r
   cross join lateral (
     select make_interval(mins => coalesce((r.params ->> 'delay_minutes')::integer, 30)) as delay) d
    join public.commitments c
      on c.user_id = r.user_id and c.status = 'open' and c.due_at is not null
   cross join lateral (
     select case when r.status = 'paused' then 'the routine is paused'
                 when r.snoozed_until > c.due_at + d.delay
                   then 'the routine is snoozed until ' || public.occurrence_text(r.snoozed_until)
            end as skip) s
   where r.trigger = 'commitments' and r.status <> 'ended'
     and c.due_at + d.delay <= now()
     and c.due_at + d.delay > r.created_at - interval '1 day'
     and not exists (select 1 from public.routine_runs x
                      where x.routine_id = r.id and x.occurrence_key = 'commitment:' || c.id::text)
   limit p_limit
  on conflict (routine_id, occurrence_key) do nothing;

  -- Due runs, leased, but for those not begun whose routine was paused or snoozed since, or whose
  -- commitment was settled: those are skipped with the reason. Only the runs picked are looked
  -- at, so a claim costs the same however many runs wait.
  with picked as (
    select x.id from public.routine_runs x
     where x.status = 'running' and x.next_attempt_at <= now()
       and (x.lease_until is null or x.lease_until < now())
     order by x.next_attempt_at, x.occurrence
     limit p_limit
       for update skip locked
  ), reasons as (
    select y.id,
           case when c.status is not null and c.status <> 'open' then 'the commitment is ' || c.status
                when not y.manual and r.status = 'paused' then 'the routine is paused'
                when not y.manual and r.snoozed_until > y.occurrence
                  then 'the routine is snoozed until ' || public.occurrence_text(r.snoozed_until)
           end as reason
      from picked p
      join public.routine_runs y on y.id = p.id
      join public.routines r on r.id = y.routine_id
      left join public.commitments c on c.id = (y.trigger -> 'commitment' ->> 'id')::uuid
     where y.steps = '{}'
  ), skipped as (
    update public.routine_runs x
       set status = 'skipped', finished_at = now(), reason = s.reason
      from reasons s
     where x.id = s.id and s.reason is not null
    returning x.id
  ), leased as (
    update public.routine_runs x
       set lease_token = gen_random_uuid(),
           lease_until = now() + make_interval(secs => p_lease_seconds),
           started_at = coalesce(x.started_at, pg_catalog.clock_timestamp()),
           claims = x.claims + 1
      from picked
     where x.id = picked.id and x.id not in (select id from skipped)
    returning x.*
  )
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'run_id', l.id, 'lease_token', l.lease_token, 'routine_id', l.routine_id,
           'user_id', l.user_id, 'timezone', u.timezone, 'occurrence', l.occurrence,
           'trigger', l.trigger, 'done', l.steps, 'attempt', l.attempt, 'steps', r.steps,
           'params', r.params, 'max_attempts', r.max_attempts)), '[]'::jsonb)
    into v_runs
    from leased l
    join public.routines r on r.id = l.routine_id
    join public.users u on u.id = l.user_id;
  return v_runs;
end
$$;

-- Locks a leased run for one step's transaction; 55000 when the lease was lost, so the step's
-- effect is rolled back with it.
create or replace function public.hold_routine_run(p_run_id uuid, p_lease_token uuid) returns void
language plpgsql security definer set search_path = '' as $$
begin
  perform 1 from public.routine_runs
   where id = p_run_id and lease_token = p_lease_token and status = 'running'
     and lease_until > pg_catalog.clock_timestamp()
     for update;
  if not found then
    raise exception 'the lease on routine run % was lost', p_run_id using errcode = '55000';
  end if;
end
$$;

-- A finished step, written in its effect's transaction; the lease is extended.
create or replace function public.record_routine_step(
  p_run_id uuid, p_lease_token uuid, p_step_id text, p_record jsonb, p_lease_seconds integer
) returns void
language plpgsql security definer set search_path = '' as $$
begin
  perform public.hold_routine_run(p_run_id, p_lease_token);
  update public.routine_runs
     set steps = steps || pg_catalog.jsonb_build_object(p_step_id, p_record), attempt = 0,
         lease_until = pg_catalog.clock_timestamp() + make_interval(secs => p_lease_seconds)
   where id = p_run_id;
end
$$;

-- A failed step: the run is retried after a backoff (30 s, doubling, at most 10 minutes) until
-- the routine's max_attempts, then failed with the step and error. Returns the run's status, or
-- null when the lease was lost.
create or replace function public.fail_routine_step(
  p_run_id uuid, p_lease_token uuid, p_step_id text, p_record jsonb, p_error text
) returns text
language plpgsql security definer set search_path = '' as $$
declare
  v_status text;
begin
  update public.routine_runs x
     set attempt = x.attempt + 1,
         steps = x.steps || pg_catalog.jsonb_build_object(p_step_id, p_record),
         status = case when x.attempt + 1 >= r.max_attempts then 'failed' else 'running' end,
         failed_step = case when x.attempt + 1 >= r.max_attempts then p_step_id end,
         error = left(p_error, 2000),
         reason = case when x.attempt + 1 >= r.max_attempts
           then format('step %s failed %s times', p_step_id, x.attempt + 1) end,
         finished_at = case when x.attempt + 1 >= r.max_attempts then now() end,
         next_attempt_at = now() + least(interval '10 minutes',
           interval '30 seconds' * power(2, x.attempt)),
         lease_token = null, lease_until = null
    from public.routines r
   where r.id = x.routine_id and x.id = p_run_id and x.lease_token = p_lease_token
     and x.status = 'running'
  returning x.status into v_status;
  return v_status;
end
$$;

-- The run's last step is done (or skipped by its condition).
create or replace function public.finish_routine_run(p_run_id uuid, p_lease_token uuid)
returns boolean
language sql security definer set search_path = '' as $$
  with done as (
    update public.routine_runs
       set status = 'succeeded', finished_at = now(), lease_token = null, lease_until = null
     where id = p_run_id and lease_token = p_lease_token and status = 'running'
    returning 1
  )
  select exists (select 1 from done)
$$;

-- A run cut off by the function's time budget, to be resumed by the next tick.
create or replace function public.release_routine_run(p_run_id uuid, p_lease_token uuid)
returns void
language sql security definer set search_path = '' as $$
  update public.routine_runs set lease_token = null, lease_until = null
   where id = p_run_id and lease_token = p_lease_token and status = 'running'
$$;

-- RRULE routines whose next occurrence is to be computed (in TypeScript).
create or replace function public.routines_to_plan(p_limit integer) returns jsonb
language sql stable security definer set search_path = '' as $$
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'id', r.id, 'rrule', r.rrule, 'series_start', r.series_start,
           'plan_after', r.plan_after, 'missed', r.missed, 'timezone', u.timezone)), '[]'::jsonb)
    from (select * from public.routines
           where status <> 'ended' and not next_run_known and rrule is not null
           order by created_at limit greatest(1, least(p_limit, 5000))) r
    join public.users u on u.id = r.user_id
$$;

-- Next occurrences computed: [{id, plan_after (as routines_to_plan gave it), next_run_at or null,
-- reason}]. A routine changed meanwhile (plan_after moved) is left for the next plan; one with
-- no next occurrence ends. Returns how many were recorded.
create or replace function public.record_routine_plans(p_results jsonb) returns integer
language sql security definer set search_path = '' as $$
  with done as (
    update public.routines r
       set next_run_at = (e ->> 'next_run_at')::timestamptz,
           next_run_known = true,
           status = case when e ->> 'next_run_at' is null then 'ended' else r.status end,
           status_reason = case when e ->> 'next_run_at' is null
             then coalesce(e ->> 'reason', 'the RRULE has no further occurrence') else r.status_reason end,
           ended_at = case when e ->> 'next_run_at' is null then now() else r.ended_at end
      from pg_catalog.jsonb_array_elements(p_results) e
     where r.id = (e ->> 'id')::uuid and not r.next_run_known and r.status <> 'ended'
       and r.plan_after is not distinct from (e ->> 'plan_after')::timestamptz
    returning 1
  )
  select count(*)::integer from done
$$;

-- The allowlist as run-routines read it from ROUTINE_HTTP_ALLOWLIST: origins like
-- https://hooks.example.com (lower-case, no path).
create or replace function public.sync_routine_http_origins(p_origins text[]) returns void
language plpgsql security definer set search_path = '' as $$
begin
  if p_origins is null or exists (select 1 from unnest(p_origins) o
                                   where o is null or o !~ '^https?://[a-z0-9.-]+(:[0-9]{1,5})?$') then
    raise exception 'p_origins must be origins such as https://hooks.example.com'
      using errcode = '22023';
  end if;
  delete from public.routine_http_origins where origin <> all (p_origins);
  insert into public.routine_http_origins (origin) select distinct o from unnest(p_origins) o
  on conflict (origin) do update set synced_at = now();
end
$$;

-- The agent tools that manage routines join the front door's list.
create or replace function public.agent_tool_names() returns text[]
language sql immutable parallel safe set search_path = '' as $$
  select array[
    'queue_message', 'get_message_status', 'schedule_call', 'cancel_scheduled_call',
    'get_user_context', 'record_interaction', 'search_interactions', 'remember',
    'set_contact_preferences', 'create_routine', 'pause_routine', 'resume_routine',
    'snooze_routine', 'end_routine', 'run_routine_now', 'enable_builtin_routine'
  ]::text[]
$$;

do $$
declare
  f text;
begin
  foreach f in array array[
    'public.routine_json_problem(jsonb, jsonb, text)',
    'public.routine_trigger_params(text)',
    'public.routine_reference_problem(text, jsonb, jsonb, text)',
    'public.routine_condition_problem(text, jsonb)',
    'public.routine_url_problem(text)',
    'public.routine_steps_problem(jsonb, jsonb, text)',
    'public.routine_params_problem(jsonb, text)',
    'public.insert_routine(uuid, text, jsonb, text, timestamptz, jsonb, text, text, text, text, text)',
    'public.create_routine(uuid, text, jsonb, text, timestamptz, jsonb, text, text, text)',
    'public.live_routine(uuid)',
    'public.pause_routine(uuid)',
    'public.resume_routine(uuid)',
    'public.snooze_routine(uuid, timestamptz)',
    'public.end_routine(uuid)',
    'public.run_routine_now(uuid)',
    'public.builtin_routine_params(text, jsonb)',
    'public.builtin_routine_rrule(text, jsonb)',
    'public.builtin_routine_steps(text)',
    'public.enable_builtin_routine(uuid, text, jsonb)',
    'public.occurrence_text(timestamptz)',
    'public.claim_routine_runs(integer, integer)',
    'public.hold_routine_run(uuid, uuid)',
    'public.record_routine_step(uuid, uuid, text, jsonb, integer)',
    'public.fail_routine_step(uuid, uuid, text, jsonb, text)',
    'public.finish_routine_run(uuid, uuid)',
    'public.release_routine_run(uuid, uuid)',
    'public.routines_to_plan(integer)',
    'public.record_routine_plans(jsonb)',
    'public.sync_routine_http_origins(text[])',
    'public.agent_tool_names()'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;

-- Routines run in their own function, on their own per-minute job, so that a slow model never
-- eats process-queue's time budget for delivering texts.
select cron.schedule(
  'run-routines',
  '* * * * *',
  $$select public.invoke_edge_function('run-routines', '{"source":"pg_cron"}'::jsonb, 150000)$$
);
