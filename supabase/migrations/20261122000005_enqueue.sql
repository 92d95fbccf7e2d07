-- enqueue_message: how agents queue an SMS (SPEC section 4). Validation errors
-- raise SQLSTATE 22023 (invalid value) or P0002 (unknown user) and change
-- nothing.

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
    update public.message_queue
       set updated_at = now(), status = 'superseded', status_reason = 'superseded by ' || v_id
     where user_id = p_user_id
       and supersede_key = p_supersede_key
       and status = 'queued'
       and id <> v_id
       and created_at <= (select created_at from public.message_queue where id = v_id);
  end if;
  return v_id;
end
$$;

revoke execute on function public.enqueue_message(
  uuid, text, text, jsonb, text, boolean, boolean, timestamptz, timestamptz, uuid, integer, integer, text, text
) from public, anon, authenticated;
grant execute on function public.enqueue_message(
  uuid, text, text, jsonb, text, boolean, boolean, timestamptz, timestamptz, uuid, integer, integer, text, text
) to service_role;
