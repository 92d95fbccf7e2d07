-- enqueue_message, second round (issues 7 and 11): a per-user cap on queued
-- messages and a per-agent cap per user and local day (SQLSTATE 54000),
-- supersession that holds under any interleaving (and reaches a message claimed
-- but not yet sending), sequence members that wake their waiting siblings, and
-- the fast lane. The contract is unchanged.

-- The fast lane: a message due now that is urgent or may not wait wakes
-- delivery at once, after commit, through pg_net (the cron call's path). At most
-- one woken run is active; a wake asked for while one runs is remembered, and
-- that run goes round again before it ends (finish_fast_lane), so a burst wakes
-- one run, and nothing waits for the minute.
create or replace function public.request_fast_lane() returns void
language plpgsql security definer set search_path = '' as $$
declare
  v_state public.fast_lane_state;
begin
  if public.setting('fast_lane_enabled') = 0 then
    return;
  end if;
  select * into v_state from public.fast_lane_state where id = 1 for update;
  -- A run that has been active this long died; its successor is woken.
  if v_state.active_since is null or v_state.active_since < now() - interval '30 seconds' then
    update public.fast_lane_state set active_since = now(), missed = false where id = 1;
    perform public.invoke_edge_function(
      'process-queue', '{"source":"fast_lane","time_budget_ms":20000}'::jsonb, 30000);
  elsif not v_state.missed then
    update public.fast_lane_state set missed = true where id = 1;
  end if;
end
$$;

-- Called by a fast-lane run when it has nothing left: true when a wake came in
-- meanwhile, so it goes round again; false when it may end.
create or replace function public.finish_fast_lane() returns boolean
language sql security definer set search_path = '' as $$
  with before as (select missed from public.fast_lane_state where id = 1 for update)
  update public.fast_lane_state f
     set missed = false, active_since = case when before.missed then now() end
    from before
   where f.id = 1
  returning before.missed
$$;

-- Messages one agent queued for one user today (the user's local day).
create or replace function public.agent_messages_today(p_user_id uuid, p_agent_id text, p_tz text)
returns integer
language sql stable security definer set search_path = '' as $$
  select count(*)::int from public.message_queue
   where user_id = p_user_id and agent_id = p_agent_id
     and created_at >= public.local_to_instant((now() at time zone p_tz)::date::timestamp, p_tz)
$$;

-- What an agent may queue for one user in a local day.
create or replace function public.agent_daily_limit(p_agent_id text) returns integer
language sql stable security definer set search_path = '' as $$
  select coalesce(
    (select daily_messages_per_user from public.agent_message_limits where agent_id = p_agent_id),
    public.setting('agent_daily_messages_per_user'))
$$;

-- A refused enqueue on record. enqueue_message's own refusal rolls back with
-- it, so callers that catch the error (the front door) record it here.
create or replace function public.record_enqueue_refusal(
  p_user_id uuid,
  p_agent_id text,
  p_reason text,
  p_detail text
) returns void
language sql security definer set search_path = '' as $$
  insert into public.delivery_events (user_id, agent_id, kind, reason, detail)
  select id, left(p_agent_id, 128), 'refused', p_reason, left(p_detail, 1000)
    from public.users where id = p_user_id
$$;


-- Queued messages of one user, counted up to p_cap through the partial index.
create or replace function public.queued_count(p_user_id uuid, p_cap integer) returns integer
language sql stable security definer set search_path = '' as $$
  select count(*)::int from (
    select 1 from public.message_queue
     where user_id = p_user_id and status = 'queued'
     limit p_cap
  ) q
$$;

create or replace function public.enqueue_message(
  p_user_id uuid,
  p_agent_id text,
  p_priority text default 'medium',
  p_message_data jsonb default null,
  p_final_message text default null,
  p_can_delay boolean default true,
  p_requires_fresh_context boolean default false,
  p_scheduled_for timestamptz default now(),
  p_expires_at timestamptz default null,
  p_sequence_id uuid default null,
  p_sequence_position integer default null,
  p_sequence_total integer default null,
  p_idempotency_key text default null,
  p_supersede_key text default null
) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  v_id uuid;
  v_opted_out timestamptz;
  v_existing uuid;
  v_max_queued integer := public.setting('max_queued_per_user');
  v_superseded uuid[];
  v_tz text;
  v_agent_limit integer;
begin
  if p_user_id is null then
    raise exception 'p_user_id is required' using errcode = '22023';
  end if;
  select sms_opted_out_at, timezone into v_opted_out, v_tz from public.users where id = p_user_id;
  if not found then
    raise exception 'unknown user %', p_user_id using errcode = 'P0002';
  end if;
  if p_agent_id is null or length(btrim(p_agent_id)) = 0 or length(p_agent_id) > 128 then
    raise exception 'p_agent_id must be 1 to 128 characters' using errcode = '22023';
  end if;
  if p_priority is null or p_priority not in ('urgent', 'high', 'medium', 'low') then
    raise exception 'p_priority must be urgent, high, medium or low (got %)', coalesce(p_priority, 'null')
      using errcode = '22023';
  end if;
  if num_nonnulls(p_message_data, p_final_message) <> 1 then
    raise exception 'exactly one of p_message_data and p_final_message is required'
      using errcode = '22023';
  end if;
  if p_message_data is not null
     and (jsonb_typeof(p_message_data) <> 'object' or p_message_data = '{}'::jsonb) then
    raise exception 'p_message_data must be a non-empty JSON object' using errcode = '22023';
  end if;
  if p_message_data is not null and octet_length(p_message_data::text) > 16384 then
    raise exception 'p_message_data must be at most 16 KB' using errcode = '22023';
  end if;
  if p_final_message is not null
     and (length(btrim(p_final_message)) = 0 or length(p_final_message) > 1600) then
    raise exception 'p_final_message must be 1 to 1600 characters' using errcode = '22023';
  end if;
  if p_can_delay is null or p_requires_fresh_context is null then
    raise exception 'p_can_delay and p_requires_fresh_context must not be null' using errcode = '22023';
  end if;
  if p_scheduled_for is null then
    raise exception 'p_scheduled_for must not be null' using errcode = '22023';
  end if;
  if p_scheduled_for > now() + interval '1 year' then
    raise exception 'p_scheduled_for must be within a year' using errcode = '22023';
  end if;
  if p_expires_at is not null and p_expires_at <= greatest(p_scheduled_for, now()) then
    raise exception 'p_expires_at must be after p_scheduled_for and in the future' using errcode = '22023';
  end if;
  if num_nonnulls(p_sequence_id, p_sequence_position, p_sequence_total) not in (0, 3) then
    raise exception 'p_sequence_id, p_sequence_position and p_sequence_total go together'
      using errcode = '22023';
  end if;
  if p_sequence_total is not null and (p_sequence_total not between 1 and 20
     or p_sequence_position not between 1 and p_sequence_total) then
    raise exception 'p_sequence_position must be between 1 and p_sequence_total (at most 20)'
      using errcode = '22023';
  end if;
  if p_sequence_id is not null and exists (
    select 1 from public.message_queue
     where sequence_id = p_sequence_id
       and (user_id <> p_user_id or sequence_total <> p_sequence_total
            or (sequence_position = p_sequence_position
                and idempotency_key is distinct from p_idempotency_key))
  ) then
    raise exception 'sequence % already has that position, another total, or another user', p_sequence_id
      using errcode = '22023';
  end if;
  if p_idempotency_key is not null and length(p_idempotency_key) not between 1 and 200 then
    raise exception 'p_idempotency_key must be 1 to 200 characters' using errcode = '22023';
  end if;
  if p_supersede_key is not null and length(p_supersede_key) not between 1 and 200 then
    raise exception 'p_supersede_key must be 1 to 200 characters' using errcode = '22023';
  end if;
  if p_supersede_key is not null then
    -- Enqueues with one user and key take turns, so the last one always sees
    -- (and supersedes) every earlier one, whatever the interleaving.
    perform pg_advisory_xact_lock(hashtextextended(p_user_id::text || '/' || p_supersede_key, 0));
  end if;
  if p_idempotency_key is not null and exists (
    select 1 from public.message_queue where user_id = p_user_id and idempotency_key = p_idempotency_key
  ) then
    -- The same idempotency key again: the message it already made, whatever the caps say now.
    select id into v_existing from public.message_queue
     where user_id = p_user_id and idempotency_key = p_idempotency_key;
    return v_existing;
  end if;
  if v_opted_out is null and public.queued_count(p_user_id, v_max_queued) >= v_max_queued then
    raise exception 'user % already has % queued messages, the most one user may hold', p_user_id, v_max_queued
      using errcode = '54000', constraint = 'user_queue_cap',
            hint = 'wait for the queue to drain, or raise max_queued_per_user in orchestrator_settings';
  end if;
  v_agent_limit := public.agent_daily_limit(p_agent_id);
  if public.agent_messages_today(p_user_id, p_agent_id, v_tz) >= v_agent_limit then
    raise exception 'agent % already queued % messages for user % today, its daily limit',
      p_agent_id, v_agent_limit, p_user_id
      using errcode = '54000', constraint = 'agent_daily_cap',
            hint = 'a runaway agent? raise it in agent_message_limits if this is intended';
  end if;

  insert into public.message_queue (
    user_id, agent_id, priority, message_data, final_message, can_delay, requires_fresh_context,
    scheduled_for, next_attempt_at, expires_at, sequence_id, sequence_position, sequence_total,
    idempotency_key, supersede_key, status, status_reason
  ) values (
    p_user_id, p_agent_id, p_priority, p_message_data, p_final_message, p_can_delay,
    p_requires_fresh_context, p_scheduled_for, p_scheduled_for, p_expires_at, p_sequence_id,
    p_sequence_position, p_sequence_total, p_idempotency_key, p_supersede_key,
    case when v_opted_out is null then 'queued' else 'cancelled' end,
    case when v_opted_out is null then null else 'user opted out of SMS' end
  )
  on conflict (user_id, idempotency_key) where idempotency_key is not null do nothing
  returning id into v_id;

  if v_id is null then
    -- The same idempotency key again: the message it already made.
    select id into v_existing from public.message_queue
     where user_id = p_user_id and idempotency_key = p_idempotency_key;
    return v_existing;
  end if;

  if p_supersede_key is not null then
    -- Older messages with the key, queued or claimed but not yet sending: a
    -- claimed one is stopped by start_sending, which finds it superseded.
    select coalesce(array_agg(id), '{}') into v_superseded
      from public.message_queue
     where user_id = p_user_id
       and supersede_key = p_supersede_key
       and id <> v_id
       and (status = 'queued' or (status = 'sending' and send_started_at is null));
    perform public.end_messages(v_superseded,
                                array_fill('superseded'::text, array[cardinality(v_superseded)]),
                                array_fill('supersede_key'::text, array[cardinality(v_superseded)]),
                                array_fill('superseded by ' || v_id, array[cardinality(v_superseded)]));
    perform public.refund_units(v_superseded);
  end if;
  if p_sequence_id is not null then
    -- Members waiting for the rest of their sequence look again now.
    update public.message_queue
       set updated_at = now(), next_attempt_at = now(), wait_reason = null
     where sequence_id = p_sequence_id and status = 'queued' and wait_reason = 'sequence_wait';
  end if;
  if v_opted_out is null and (p_priority = 'urgent' or not p_can_delay) and p_scheduled_for <= now() then
    perform public.request_fast_lane();
  end if;
  return v_id;
end
$$;

do $$
declare
  f text;
begin
  foreach f in array array[
    'public.queued_count(uuid, integer)',
    'public.request_fast_lane()',
    'public.finish_fast_lane()',
    'public.agent_messages_today(uuid, text, text)',
    'public.agent_daily_limit(text)',
    'public.record_enqueue_refusal(uuid, text, text, text)'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
