-- enqueue_message, second round (issue 7): a per-user cap on queued messages
-- (SQLSTATE 54000), supersession that holds under any interleaving (and reaches
-- a message claimed but not yet sending), and sequence members that wake their
-- waiting siblings. The contract is unchanged.

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
begin
  if p_user_id is null then
    raise exception 'p_user_id is required' using errcode = '22023';
  end if;
  select sms_opted_out_at into v_opted_out from public.users where id = p_user_id;
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
  if v_opted_out is null
     and not exists (select 1 from public.message_queue
                      where user_id = p_user_id and idempotency_key = p_idempotency_key)
     and public.queued_count(p_user_id, v_max_queued) >= v_max_queued then
    raise exception 'user % already has % queued messages, the most one user may hold', p_user_id, v_max_queued
      using errcode = '54000',
            hint = 'wait for the queue to drain, or raise max_queued_per_user in orchestrator_settings';
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
    with superseded as (
      update public.message_queue
         set updated_at = now(), status = 'superseded', status_reason = 'superseded by ' || v_id,
             wait_reason = null, claim_token = null, locked_until = null
       where user_id = p_user_id
         and supersede_key = p_supersede_key
         and id <> v_id
         and (status = 'queued' or (status = 'sending' and send_started_at is null))
      returning id
    )
    select array_agg(id) into v_superseded from superseded;
    perform public.refund_units(v_superseded);
  end if;
  if p_sequence_id is not null then
    -- Members waiting for the rest of their sequence look again now.
    update public.message_queue
       set updated_at = now(), next_attempt_at = now(), wait_reason = null
     where sequence_id = p_sequence_id and status = 'queued' and wait_reason = 'sequence_incomplete';
  end if;
  return v_id;
end
$$;

revoke execute on function public.queued_count(uuid, integer) from public, anon, authenticated;
grant execute on function public.queued_count(uuid, integer) to service_role;
