-- Every suppression on record (issue 11): one typed row each time a message is
-- deferred, superseded, expired, cancelled, failed or reconciled. A deferral is
-- written once per message and reason until the reason changes, not every
-- minute. Retention is bounded by prune_history (delivery_event_retention_days).

create table public.delivery_events (
  id bigint generated always as identity primary key,
  message_id uuid not null references public.message_queue (id) on delete cascade,
  user_id uuid not null references public.users (id) on delete cascade,
  kind text not null constraint delivery_events_kind check (
    kind in ('deferred', 'superseded', 'expired', 'cancelled', 'failed', 'reconciled', 'refused')
  ),
  -- Deferred: quiet_hours | daily_cap | hourly_cap | preferred_hours | snoozed | urgent_ceiling |
  --           sequence_wait | send_retry | render_retry
  -- Cancelled: opt_out | agent | sequence_broken. Reconciled: found | absent | resent.
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

insert into public.orchestrator_settings (name, value, description) values
  ('delivery_event_retention_days', 30, 'delivery_events older than this are pruned daily');
