-- The delivery schema of this round (issues 7 and 11); the functions that use
-- it follow in 20261201000100_delivery_claims.sql.

-- Settings an operator may change: one row per name ------------------------------
create table public.orchestrator_settings (
  name text primary key,
  value integer not null,
  description text not null
);
alter table public.orchestrator_settings enable row level security;
revoke all on table public.orchestrator_settings from anon, authenticated;
grant all on table public.orchestrator_settings to service_role;
create policy orchestrator_settings_no_client_access on public.orchestrator_settings
  as restrictive for all to anon, authenticated using (false) with check (false);

insert into public.orchestrator_settings (name, value, description) values
  ('max_queued_per_user', 1000, 'queued messages one user may hold; enqueue_message refuses past it'),
  ('sequence_timeout_minutes', 360, 'a sequence that cannot go out whole within this long after its first member was queued ends failed'),
  ('agent_daily_messages_per_user', 20, 'messages one agent may queue for one user per local day, unless agent_message_limits says otherwise'),
  ('delivery_event_retention_days', 30, 'delivery_events and processor_runs older than this are pruned daily'),
  ('fast_lane_enabled', 1, '1: urgent and can_delay = false messages due now wake delivery at once; 0: they wait for the per-minute run');

create or replace function public.setting(p_name text) returns integer
language sql stable set search_path = '' as $$
  select value from public.orchestrator_settings where name = p_name
$$;

-- Users: preferred hours and snooze -------------------------------------------------
alter table public.users
  add column preferred_hours_start time,
  add column preferred_hours_end time,
  add column snoozed_until timestamptz,
  add column snooze_reason text constraint users_snooze_reason_length check (length(snooze_reason) <= 500),
  add constraint users_preferred_hours check (
    (preferred_hours_start is null and preferred_hours_end is null)
    or (date_trunc('minute', preferred_hours_start) = preferred_hours_start
        and date_trunc('minute', preferred_hours_end) = preferred_hours_end
        and preferred_hours_start <> preferred_hours_end)
  );

-- message_queue: why a row waits, resends after reconciliation --------------------
alter table public.message_queue
  add column wait_reason text constraint message_queue_wait_reason check (wait_reason in (
    'quiet_hours', 'daily_cap', 'hourly_cap', 'preferred_hours', 'snoozed', 'urgent_ceiling',
    'sequence_wait', 'send_retry', 'render_retry', 'reconcile'
  )),
  add column resends smallint not null default 0;

create unique index message_queue_sequence_position_idx
  on public.message_queue (sequence_id, sequence_position) where sequence_id is not null;
-- A user's due work in the order it goes out, so a claim reads only the first rows.
create index message_queue_user_order_idx
  on public.message_queue (user_id, priority_rank, scheduled_for, created_at, id)
  where status = 'queued';
-- Urgent work is looked for on its own, so a backlog elsewhere never hides it.
create index message_queue_urgent_due_idx on public.message_queue (next_attempt_at)
  where status = 'queued' and priority_rank = 0;
create index message_queue_unknown_idx on public.message_queue (next_attempt_at)
  where status = 'unknown';
create index message_queue_failed_idx on public.message_queue (updated_at)
  where status = 'failed';
-- Per-agent caps and activity.
create index message_queue_agent_idx on public.message_queue (agent_id, created_at);
create index message_queue_user_agent_idx on public.message_queue (user_id, agent_id, created_at);
-- Urgent units count toward the rolling hour too.
drop index public.message_queue_hourly_units_idx;
create index message_queue_hourly_units_idx on public.message_queue (user_id, unit_spent_at)
  where unit_kind is not null;

-- messages: how each SMS was encoded ------------------------------------------------
alter table public.messages
  add column encoding text constraint messages_encoding check (encoding in ('GSM-7', 'UCS-2')),
  add column segments integer constraint messages_segments check (segments between 1 and 20);
alter table public.message_queue
  add column encoding text constraint message_queue_encoding check (encoding in ('GSM-7', 'UCS-2')),
  add column segments integer constraint message_queue_segments check (segments between 1 and 20);

-- Per-agent caps ---------------------------------------------------------------------
create table public.agent_message_limits (
  agent_id text primary key constraint agent_message_limits_agent check (length(agent_id) between 1 and 128),
  daily_messages_per_user integer not null
    constraint agent_message_limits_daily check (daily_messages_per_user between 0 and 1000),
  updated_at timestamptz not null default now()
);
alter table public.agent_message_limits enable row level security;
revoke all on table public.agent_message_limits from anon, authenticated;
grant all on table public.agent_message_limits to service_role;
create policy agent_message_limits_no_client_access on public.agent_message_limits
  as restrictive for all to anon, authenticated using (false) with check (false);

-- The fast lane: at most one woken run at a time (see request_fast_lane) ------------
create table public.fast_lane_state (
  id integer primary key constraint fast_lane_state_one check (id = 1),
  active_since timestamptz,
  missed boolean not null default false
);
insert into public.fast_lane_state (id) values (1);
alter table public.fast_lane_state enable row level security;
revoke all on table public.fast_lane_state from anon, authenticated;
grant all on table public.fast_lane_state to service_role;
create policy fast_lane_state_no_client_access on public.fast_lane_state
  as restrictive for all to anon, authenticated using (false) with check (false);

-- Every suppression on record: one typed row each time a message is deferred,
-- superseded, expired, cancelled, failed or reconciled, or an enqueue refused.
-- A deferral is written once per message and reason, not every time the
-- message is looked at. Retention is bounded by prune_history.
create table public.delivery_events (
  id bigint generated always as identity primary key,
  -- Null only for a refused enqueue, which made no message.
  message_id uuid references public.message_queue (id) on delete cascade,
  user_id uuid not null references public.users (id) on delete cascade,
  agent_id text,
  kind text not null constraint delivery_events_kind check (
    kind in ('deferred', 'superseded', 'expired', 'cancelled', 'failed', 'reconciled', 'refused')
  ),
  -- deferred: a message_queue.wait_reason. superseded: supersede_key | not_relevant.
  -- expired: expired. cancelled: opt_out | agent | sequence_broken. failed: send_refused |
  -- send_retries | render_retries | render_too_long | sequence_timeout | resend_absent. reconciled: found |
  -- resent | callback. refused: agent_daily_cap | user_queue_cap.
  reason text not null constraint delivery_events_reason check (length(reason) between 1 and 64),
  detail text constraint delivery_events_detail check (length(detail) <= 1000),
  next_eligible_at timestamptz,
  created_at timestamptz not null default now()
);
create index delivery_events_message_idx on public.delivery_events (message_id, id);
create index delivery_events_user_idx on public.delivery_events (user_id, created_at desc);
create index delivery_events_created_idx on public.delivery_events (created_at);

alter table public.delivery_events enable row level security;
revoke all on table public.delivery_events from anon, authenticated;
grant all on table public.delivery_events to service_role;
create policy delivery_events_no_client_access on public.delivery_events
  as restrictive for all to anon, authenticated using (false) with check (false);
