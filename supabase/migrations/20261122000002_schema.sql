-- The orchestrator's tables (SPEC section 4). Every table has RLS enabled and is
-- closed to the client roles: only service_role (edge functions, the SDK) and
-- the SECURITY DEFINER RPCs touch the data.

-- Validation helpers --------------------------------------------------------
create or replace function public.is_iana_timezone(p_name text) returns boolean
language sql stable parallel safe set search_path = '' as $$
  select p_name is not null
     and p_name !~ '^(posix|right)/'
     and exists (select 1 from pg_catalog.pg_timezone_names where name = p_name)
$$;

create or replace function public.touch_updated_at() returns trigger
language plpgsql set search_path = '' as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- users -----------------------------------------------------------------------
create table public.users (
  id uuid primary key default gen_random_uuid(),
  phone_number text not null unique
    constraint users_phone_e164 check (phone_number ~ '^\+[1-9][0-9]{6,14}$'),
  timezone text not null default 'UTC'
    constraint users_timezone_iana check (public.is_iana_timezone(timezone)),
  quiet_hours_start time not null default '22:00',
  quiet_hours_end time not null default '08:00',
  daily_message_limit integer not null default 10
    constraint users_daily_limit_range check (daily_message_limit between 0 and 1000),
  hourly_message_limit integer not null default 2
    constraint users_hourly_limit_range check (hourly_message_limit between 0 and 1000),
  sms_opted_out_at timestamptz,
  last_inbound_at timestamptz,
  insights jsonb not null default '{}'
    constraint users_insights_object check (jsonb_typeof(insights) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint users_quiet_hours_minutes check (
    date_trunc('minute', quiet_hours_start) = quiet_hours_start
    and date_trunc('minute', quiet_hours_end) = quiet_hours_end
  )
);
create trigger users_touch before update on public.users
  for each row execute function public.touch_updated_at();

-- scheduled_calls -------------------------------------------------------------
create table public.scheduled_calls (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  call_type text not null constraint scheduled_calls_call_type check (call_type ~ '^[a-z0-9_-]{1,64}$'),
  scheduled_for timestamptz not null,
  custom_instructions text
    constraint scheduled_calls_instructions_length check (length(custom_instructions) <= 4000),
  rrule text constraint scheduled_calls_rrule_length check (length(rrule) <= 500),
  status text not null default 'pending'
    constraint scheduled_calls_status check (
      status in ('pending', 'dispatched', 'completed', 'cancelled', 'failed')
    ),
  idempotency_key text,
  recurrence_of uuid references public.scheduled_calls (id) on delete set null,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null,
  -- While claimed a call stays 'pending' and next_attempt_at is the end of the
  -- lease, so a lapsed lease makes it due again with no sweep.
  claim_token uuid,
  locked_until timestamptz,
  last_error text,
  cancel_reason text,
  dispatched_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint scheduled_calls_idempotency unique (user_id, idempotency_key)
);
create index scheduled_calls_due_idx on public.scheduled_calls (next_attempt_at)
  where status = 'pending';
create index scheduled_calls_user_idx on public.scheduled_calls (user_id, scheduled_for);
create index scheduled_calls_recurrence_idx on public.scheduled_calls (recurrence_of)
  where recurrence_of is not null;
create trigger scheduled_calls_touch before update on public.scheduled_calls
  for each row execute function public.touch_updated_at();

-- interactions ----------------------------------------------------------------
create table public.interactions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  call_type text not null default 'general'
    constraint interactions_call_type check (call_type ~ '^[a-z0-9_-]{1,64}$'),
  channel text not null constraint interactions_channel check (channel in ('voice', 'sms')),
  transcript text not null default ''
    constraint interactions_transcript_length check (length(transcript) <= 200000),
  scheduled_call_id uuid references public.scheduled_calls (id) on delete set null,
  created_at timestamptz not null default now(),
  sentiment text
    constraint interactions_sentiment check (
      sentiment in ('positive', 'neutral', 'negative', 'mixed')
    ),
  extracted_commitments jsonb not null default '[]'
    constraint interactions_commitments_array check (jsonb_typeof(extracted_commitments) = 'array'),
  analysis_status text not null default 'pending'
    constraint interactions_analysis_status check (
      analysis_status in ('pending', 'running', 'done', 'failed', 'skipped')
    ),
  analysis_error text,
  analyzed_at timestamptz
);
create index interactions_user_idx on public.interactions (user_id, created_at desc);
create index interactions_call_idx on public.interactions (scheduled_call_id)
  where scheduled_call_id is not null;

-- The durable analysis job: one per interaction, re-dispatched by the
-- per-minute run until it finishes or runs out of attempts.
create table public.analysis_jobs (
  interaction_id uuid primary key references public.interactions (id) on delete cascade,
  user_id uuid not null references public.users (id) on delete cascade,
  attempts integer not null default 0,
  max_attempts integer not null default 5,
  next_attempt_at timestamptz not null default now(),
  claim_token uuid,
  locked_until timestamptz,
  -- How often the job was sent to the function (the webhook counts).
  dispatches integer not null default 0,
  last_request_id bigint,
  last_error text,
  finished_at timestamptz,
  created_at timestamptz not null default now()
);
create index analysis_jobs_due_idx on public.analysis_jobs (next_attempt_at)
  where finished_at is null;
create index analysis_jobs_user_idx on public.analysis_jobs (user_id) where finished_at is null;

-- message_queue ---------------------------------------------------------------
create table public.message_queue (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  agent_id text not null constraint message_queue_agent_id check (length(agent_id) between 1 and 128),
  priority text not null default 'medium'
    constraint message_queue_priority check (priority in ('urgent', 'high', 'medium', 'low')),
  priority_rank smallint not null generated always as (
    case priority when 'urgent' then 0 when 'high' then 1 when 'medium' then 2 else 3 end
  ) stored,
  message_data jsonb,
  final_message text constraint message_queue_final_length check (length(final_message) between 1 and 1600),
  can_delay boolean not null default true,
  requires_fresh_context boolean not null default false,
  scheduled_for timestamptz not null default now(),
  expires_at timestamptz,
  sequence_id uuid,
  sequence_position integer,
  sequence_total integer,
  idempotency_key text,
  supersede_key text,
  status text not null default 'queued'
    constraint message_queue_status check (
      status in (
        'queued', 'sending', 'sent', 'delivered', 'failed', 'superseded', 'expired',
        'cancelled', 'unknown'
      )
    ),
  status_reason text,
  -- When the processor should next look at it: scheduled_for, or the first
  -- instant a deferred message may go out.
  next_attempt_at timestamptz not null default now(),
  attempts integer not null default 0,
  render_attempts integer not null default 0,
  -- The claim: a token per claiming transaction and a lease; a lease that
  -- expires before send_started_at is set means nothing left, so it is safe to
  -- requeue; after it, the outcome is unknown and the message is never re-sent.
  claim_token uuid,
  locked_until timestamptz,
  send_started_at timestamptz,
  -- The budget unit this message spent (on a sequence's first member only).
  unit_kind text constraint message_queue_unit_kind check (unit_kind in ('capped', 'urgent')),
  unit_spent_at timestamptz,
  unit_local_date date,
  rendered_body text,
  twilio_sid text,
  error_code text,
  sent_at timestamptz,
  delivered_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint message_queue_one_body check (num_nonnulls(message_data, final_message) = 1),
  constraint message_queue_sequence check (
    (sequence_id is null and sequence_position is null and sequence_total is null)
    or (sequence_id is not null and sequence_total between 1 and 20
        and sequence_position between 1 and sequence_total)
  )
);
-- Partial, so the many rows without a key cost nothing to index.
create unique index message_queue_idempotency_idx on public.message_queue (user_id, idempotency_key)
  where idempotency_key is not null;
create index message_queue_due_idx on public.message_queue (next_attempt_at)
  where status = 'queued';
create index message_queue_user_queued_idx on public.message_queue (user_id, next_attempt_at)
  where status = 'queued';
create index message_queue_supersede_idx on public.message_queue (user_id, supersede_key)
  where status = 'queued' and supersede_key is not null;
create index message_queue_sequence_idx on public.message_queue (sequence_id)
  where sequence_id is not null;
create index message_queue_twilio_sid_idx on public.message_queue (twilio_sid)
  where twilio_sid is not null;
create index message_queue_lease_idx on public.message_queue (locked_until)
  where status = 'sending';
create index message_queue_hourly_units_idx on public.message_queue (user_id, unit_spent_at)
  where unit_kind = 'capped';
-- A queue table: its status mix shifts all day while the table grows, so keep
-- the planner's statistics fresh, or it misjudges the partial indexes above.
alter table public.message_queue set (
  autovacuum_analyze_scale_factor = 0.005,
  autovacuum_vacuum_scale_factor = 0.01
);
-- No touch trigger here: a per-row trigger is a real share of a claim's cost,
-- so every update of the queue sets updated_at itself.

-- messages: every SMS that went out or came in ---------------------------------
create table public.messages (
  id uuid primary key default gen_random_uuid(),
  user_id uuid references public.users (id) on delete cascade,
  message_queue_id uuid references public.message_queue (id) on delete set null,
  direction text not null constraint messages_direction check (direction in ('outbound', 'inbound')),
  body text not null,
  from_number text not null,
  to_number text not null,
  twilio_sid text unique,
  status text not null,
  error_code text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index messages_user_idx on public.messages (user_id, created_at desc);
create index messages_queue_idx on public.messages (message_queue_id) where message_queue_id is not null;
create trigger messages_touch before update on public.messages
  for each row execute function public.touch_updated_at();

-- user_message_budget: units used per user per local day ----------------------
create table public.user_message_budget (
  user_id uuid not null references public.users (id) on delete cascade,
  local_date date not null,
  units_used integer not null default 0 constraint user_message_budget_units check (units_used >= 0),
  urgent_used integer not null default 0 constraint user_message_budget_urgent check (urgent_used >= 0),
  updated_at timestamptz not null default now(),
  primary key (user_id, local_date)
);

-- user_sessions: a bounded running summary per user ---------------------------
create table public.user_sessions (
  user_id uuid primary key references public.users (id) on delete cascade,
  context_summary text not null default ''
    constraint user_sessions_summary_bounded check (octet_length(context_summary) < 4096),
  last_interaction_id uuid references public.interactions (id) on delete set null,
  updated_at timestamptz not null default now()
);
create index user_sessions_last_interaction_idx on public.user_sessions (last_interaction_id);

-- commitments -------------------------------------------------------------------
create table public.commitments (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  interaction_id uuid references public.interactions (id) on delete set null,
  description text not null constraint commitments_description check (length(description) between 1 and 1000),
  due_at timestamptz,
  status text not null default 'open'
    constraint commitments_status check (status in ('open', 'done', 'dropped')),
  idempotency_key text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint commitments_idempotency unique (user_id, idempotency_key)
);
create index commitments_open_idx on public.commitments (user_id, due_at) where status = 'open';
create index commitments_interaction_idx on public.commitments (interaction_id);
create trigger commitments_touch before update on public.commitments
  for each row execute function public.touch_updated_at();

-- sdk_actions: one row per analysis run -----------------------------------------
create table public.sdk_actions (
  id uuid primary key default gen_random_uuid(),
  interaction_id uuid references public.interactions (id) on delete cascade,
  user_id uuid references public.users (id) on delete cascade,
  model text,
  duration_ms integer,
  input_tokens integer not null default 0,
  output_tokens integer not null default 0,
  cache_read_tokens integer not null default 0,
  cache_write_tokens integer not null default 0,
  cost_usd numeric(12, 6) not null default 0,
  actions jsonb not null default '[]',
  success boolean not null,
  error text,
  created_at timestamptz not null default now()
);
create index sdk_actions_interaction_idx on public.sdk_actions (interaction_id);
create index sdk_actions_user_idx on public.sdk_actions (user_id, created_at desc);

-- agent_actions_log: one row per LLM call or notable action ----------------------
create table public.agent_actions_log (
  id bigint generated always as identity primary key,
  user_id uuid references public.users (id) on delete cascade,
  agent_id text not null,
  action text not null,
  model text,
  input_tokens integer not null default 0,
  output_tokens integer not null default 0,
  cache_read_tokens integer not null default 0,
  cache_write_tokens integer not null default 0,
  cost_usd numeric(12, 6) not null default 0,
  duration_ms integer,
  details jsonb not null default '{}',
  created_at timestamptz not null default now()
);
create index agent_actions_log_user_idx on public.agent_actions_log (user_id, created_at desc);
create index agent_actions_log_created_idx on public.agent_actions_log (created_at);

-- Access: RLS on every table; the client roles get neither grants nor rows. ----
do $$
declare
  t text;
begin
  foreach t in array array[
    'users', 'scheduled_calls', 'interactions', 'analysis_jobs', 'message_queue', 'messages',
    'user_message_budget', 'user_sessions', 'commitments', 'sdk_actions', 'agent_actions_log'
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

revoke execute on function public.is_iana_timezone(text) from public, anon, authenticated;
revoke execute on function public.touch_updated_at() from public, anon, authenticated;
grant execute on function public.is_iana_timezone(text) to service_role;
