-- Scheduled calls (SPEC section 7): scheduling and cancelling (the agents'
-- RPCs), claiming due calls for the voice system, recording dispatch outcomes
-- with the next occurrence of a recurring call, and completion by the call's
-- interaction. Validation errors raise SQLSTATE 22023 (invalid value) or P0002
-- (unknown user or call) and change nothing.

-- Agents' RPCs ------------------------------------------------------------------
create or replace function public.schedule_call(
  p_user_id uuid,
  p_call_type text,
  p_scheduled_for timestamptz,
  p_custom_instructions text default null,
  p_rrule text default null,
  p_idempotency_key text default null
) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  -- Calls per local day of the user, counting those that will ring or rang
  -- (not cancelled or failed ones). The caller is usually the model acting on
  -- an untrusted transcript: this bounds how often it can make the phone ring.
  v_daily_cap constant integer := 10;
  v_tz text;
  v_day date;
  v_same_day integer;
  v_id uuid;
begin
  if p_user_id is null then
    raise exception 'p_user_id is required' using errcode = '22023';
  end if;
  select timezone into v_tz from public.users where id = p_user_id;
  if not found then
    raise exception 'unknown user %', p_user_id using errcode = 'P0002';
  end if;
  if p_idempotency_key is not null and length(p_idempotency_key) not between 1 and 200 then
    raise exception 'p_idempotency_key must be 1 to 200 characters' using errcode = '22023';
  end if;

  -- One user's schedulings go one at a time, so the daily cap and the
  -- idempotency key hold under concurrent calls.
  perform pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended('public.schedule_call:' || p_user_id::text, 0)
  );
  if p_idempotency_key is not null then
    -- The same key again: the call it already made, even if time has moved on
    -- since and the arguments would no longer pass.
    select id into v_id from public.scheduled_calls
     where user_id = p_user_id and idempotency_key = p_idempotency_key;
    if found then
      return v_id;
    end if;
  end if;

  if p_call_type is null or p_call_type !~ '^[a-z0-9_-]{1,64}$' then
    raise exception 'p_call_type must be 1 to 64 characters of a-z, 0-9, _ or - (got %)',
      coalesce(p_call_type, 'null') using errcode = '22023';
  end if;
  if p_scheduled_for is null then
    raise exception 'p_scheduled_for must not be null' using errcode = '22023';
  end if;
  if p_scheduled_for < now() + interval '1 minute' then
    raise exception 'p_scheduled_for must be at least 1 minute ahead' using errcode = '22023';
  end if;
  if p_scheduled_for > now() + interval '90 days' then
    raise exception 'p_scheduled_for must be at most 90 days ahead' using errcode = '22023';
  end if;
  if length(p_custom_instructions) > 4000 then
    raise exception 'p_custom_instructions must be at most 4000 characters' using errcode = '22023';
  end if;
  -- A conservative shape check of the subset shared/time/rrule.ts evaluates;
  -- that module validates fully before an agent gets here.
  if p_rrule is not null and (
    length(p_rrule) > 500
    or p_rrule !~* '^(RRULE:)?FREQ=(DAILY|WEEKLY|MONTHLY)(;(INTERVAL|COUNT|UNTIL|BYDAY|BYMONTHDAY|BYHOUR|BYMINUTE|WKST)=[A-Z0-9+-]+(,[A-Z0-9+-]+)*)*$'
  ) then
    raise exception 'p_rrule must be an RRULE starting with FREQ=DAILY, WEEKLY or MONTHLY, with only INTERVAL, COUNT, UNTIL, BYDAY, BYMONTHDAY, BYHOUR, BYMINUTE or WKST parts (at most 500 characters)'
      using errcode = '22023';
  end if;

  v_day := (p_scheduled_for at time zone v_tz)::date;
  select count(*) into v_same_day from public.scheduled_calls
   where user_id = p_user_id
     and status in ('pending', 'dispatched', 'completed')
     and scheduled_for >= public.local_to_instant(v_day::timestamp, v_tz)
     and scheduled_for < public.local_to_instant((v_day + 1)::timestamp, v_tz);
  if v_same_day >= v_daily_cap then
    raise exception 'the user already has % calls on %, the most allowed in one local day',
      v_daily_cap, v_day using errcode = '22023';
  end if;

  insert into public.scheduled_calls (
    user_id, call_type, scheduled_for, custom_instructions, rrule, idempotency_key, status,
    next_attempt_at
  ) values (
    p_user_id, p_call_type, p_scheduled_for, p_custom_instructions, p_rrule, p_idempotency_key,
    'pending', p_scheduled_for
  )
  returning id into v_id;
  return v_id;
end
$$;

-- True when a pending call was cancelled; false when it had already left
-- 'pending', so a repeated cancel is harmless. Cancelling the pending
-- occurrence of a recurring call ends the series: the next occurrence is only
-- made when one is dispatched. A call claimed at this moment may still reach
-- the voice system; its outcome then no longer changes the row.
create or replace function public.cancel_scheduled_call(p_call_id uuid, p_reason text)
returns boolean
language plpgsql security definer set search_path = '' as $$
begin
  if p_call_id is null then
    raise exception 'p_call_id is required' using errcode = '22023';
  end if;
  if not exists (select 1 from public.scheduled_calls where id = p_call_id) then
    raise exception 'unknown call %', p_call_id using errcode = 'P0002';
  end if;
  if p_reason is null or length(btrim(p_reason)) = 0 or length(p_reason) > 500 then
    raise exception 'p_reason must be 1 to 500 characters, not blank' using errcode = '22023';
  end if;
  update public.scheduled_calls
     set status = 'cancelled', cancel_reason = p_reason, locked_until = null
   where id = p_call_id and status = 'pending';
  return found;
end
$$;

-- Claiming ------------------------------------------------------------------------
-- One call, one transaction: due pending calls (including those whose lease
-- lapsed) are claimed with FOR UPDATE SKIP LOCKED, so overlapping runs share
-- them, and handed out with what the voice system needs to talk to the user.
-- SMS opt-out does not apply: these are voice calls the user asked for, and
-- sms_opted_out_at only governs texts.
create or replace function public.claim_due_calls(
  p_limit integer default 20,
  p_lease_seconds integer default 120
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_now timestamptz := now();
  v_token uuid := gen_random_uuid();
  v_result jsonb;
begin
  if p_limit is null or p_limit not between 1 and 500 then
    raise exception 'p_limit must be between 1 and 500' using errcode = '22023';
  end if;
  if p_lease_seconds is null or p_lease_seconds not between 10 and 3600 then
    raise exception 'p_lease_seconds must be between 10 and 3600' using errcode = '22023';
  end if;

  with due as (
    select c.id, c.next_attempt_at as due_at, c.locked_until is not null as lapsed
      from public.scheduled_calls c
     where c.status = 'pending' and c.next_attempt_at <= v_now
     order by c.next_attempt_at
     limit p_limit
       for update skip locked
  ), claimed as (
    update public.scheduled_calls c
       set claim_token = v_token,
           locked_until = v_now + make_interval(secs => p_lease_seconds),
           next_attempt_at = v_now + make_interval(secs => p_lease_seconds)
      from due
     where c.id = due.id
    returning c.*, due.due_at, due.lapsed
  )
  select jsonb_build_object(
    'claim_token', v_token,
    'rescued', (select count(*) from claimed where lapsed),
    'calls', coalesce((
      select jsonb_agg(jsonb_build_object(
        'id', c.id,
        'user_id', c.user_id,
        'call_type', c.call_type,
        'scheduled_for', c.scheduled_for,
        'custom_instructions', c.custom_instructions,
        'rrule', c.rrule,
        'attempts', c.attempts,
        'recurrence_of', c.recurrence_of,
        -- The series' first occurrence: the RRULE's DTSTART.
        'series_start', coalesce(f.scheduled_for, c.scheduled_for),
        'user', jsonb_build_object('phone_number', u.phone_number, 'timezone', u.timezone),
        'brief', jsonb_build_object(
          'insights', u.insights,
          'open_commitments', coalesce((
            select jsonb_agg(jsonb_build_object(
              'id', k.id, 'description', k.description, 'due_at', k.due_at,
              'created_at', k.created_at
            ) order by k.due_at nulls last, k.created_at)
              from (
                select id, description, due_at, created_at from public.commitments
                 where user_id = c.user_id and status = 'open'
                 order by due_at nulls last, created_at
                 limit 10
              ) k
          ), '[]'::jsonb),
          'session_summary', (
            select s.context_summary from public.user_sessions s where s.user_id = c.user_id
          ),
          'recent_interactions', coalesce((
            select jsonb_agg(jsonb_build_object(
              'created_at', i.created_at, 'channel', i.channel, 'sentiment', i.sentiment,
              'transcript', i.transcript
            ) order by i.created_at desc)
              from (
                -- The first 300 characters: enough to recall the conversation.
                select created_at, channel, sentiment, left(transcript, 300) as transcript
                  from public.interactions
                 where user_id = c.user_id
                 order by created_at desc
                 limit 3
              ) i
          ), '[]'::jsonb)
        )
      ) order by c.due_at, c.id)
        from claimed c
        join public.users u on u.id = c.user_id
        left join public.scheduled_calls f on f.id = c.recurrence_of
    ), '[]'::jsonb)
  ) into v_result;
  return v_result;
end
$$;

-- Outcomes of a claim, recorded in one call. Each result:
-- {id, outcome: dispatched | retry | failed, error?, retry_at?, next_occurrence?}
-- Only rows still holding p_claim_token and still pending change, so a replay,
-- or a run whose lease lapsed and was claimed again, changes nothing twice.
-- next_occurrence (computed by the caller from the RRULE in the user's zone)
-- becomes the series' next pending call once this one is done with: dispatched,
-- or failed for good (a failed occurrence does not end the series). A call its
-- interaction completed before the dispatch was recorded counts as dispatched.
create or replace function public.complete_call_dispatch(p_claim_token uuid, p_results jsonb)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_max_attempts constant integer := 5;
  v_counts jsonb;
begin
  if p_claim_token is null or p_results is null or jsonb_typeof(p_results) <> 'array' then
    raise exception 'p_claim_token and a p_results array are required' using errcode = '22023';
  end if;
  if exists (
    select 1 from jsonb_array_elements(p_results) x
     where jsonb_typeof(x) <> 'object'
        or coalesce(x ->> 'id', '') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        or coalesce(x ->> 'outcome', '') not in ('dispatched', 'retry', 'failed')
  ) then
    raise exception 'each result needs an id (uuid) and an outcome of dispatched, retry or failed'
      using errcode = '22023';
  end if;

  with r as (
    select distinct on ((x ->> 'id')::uuid)
           (x ->> 'id')::uuid as id, x ->> 'outcome' as outcome, left(x ->> 'error', 1000) as error,
           coalesce((x ->> 'retry_at')::timestamptz, now()) as retry_at,
           (x ->> 'next_occurrence')::timestamptz as next_occurrence
      from jsonb_array_elements(p_results) x
     order by (x ->> 'id')::uuid
  ), mine as (
    select c.id, r.outcome, r.error, r.retry_at, r.next_occurrence,
           case
             when c.status = 'completed' then 'completed'
             when r.outcome = 'dispatched' then 'dispatched'
             when r.outcome = 'failed' or c.attempts + 1 >= v_max_attempts then 'failed'
             else 'pending'
           end as new_status
      from public.scheduled_calls c
      join r on r.id = c.id
     where c.claim_token = p_claim_token
       and (c.status = 'pending' or (c.status = 'completed' and c.dispatched_at is null))
       for update of c
  ), updated as (
    update public.scheduled_calls c
       set status = mine.new_status,
           attempts = c.attempts + 1,
           dispatched_at = case when mine.new_status in ('dispatched', 'completed')
                                then coalesce(c.dispatched_at, now()) else c.dispatched_at end,
           next_attempt_at = case when mine.new_status = 'pending' then mine.retry_at
                                  else c.next_attempt_at end,
           last_error = case
             when mine.outcome = 'retry' and mine.new_status = 'failed'
               then 'gave up after ' || v_max_attempts || ' attempts: ' || coalesce(mine.error, '')
             else coalesce(mine.error, c.last_error)
           end,
           locked_until = null,
           -- A call going back to the queue is claimed afresh; one that is done
           -- keeps its token, so a replay finds it and changes nothing.
           claim_token = case when mine.new_status = 'pending' then null else c.claim_token end
      from mine
     where c.id = mine.id
    returning c.id, c.user_id, c.call_type, c.custom_instructions, c.rrule, c.scheduled_for,
              coalesce(c.recurrence_of, c.id) as series, mine.outcome, mine.new_status,
              mine.next_occurrence
  ), next_calls as (
    insert into public.scheduled_calls (
      user_id, call_type, scheduled_for, custom_instructions, rrule, recurrence_of,
      idempotency_key, status, next_attempt_at
    )
    select u.user_id, u.call_type, u.next_occurrence, u.custom_instructions, u.rrule, u.series,
           -- Per series and occurrence: a replay can never make a second one.
           'recurrence:' || u.series || ':'
             || to_char(u.next_occurrence at time zone 'UTC', 'YYYYMMDD"T"HH24MISS"Z"'),
           'pending', u.next_occurrence
      from updated u
     where u.new_status <> 'pending'
       and u.rrule is not null
       and u.next_occurrence > u.scheduled_for
    on conflict (user_id, idempotency_key) do nothing
    returning 1
  )
  select jsonb_build_object(
    'dispatched', (select count(*) from updated where new_status in ('dispatched', 'completed')),
    'retried', (select count(*) from updated where new_status = 'pending'),
    'failed', (select count(*) from updated where new_status = 'failed'),
    'ignored', jsonb_array_length(p_results) - (select count(*) from updated),
    'next_occurrences', (select count(*) from next_calls)
  ) into v_counts;
  return v_counts;
end
$$;

-- Completion ------------------------------------------------------------------------
-- The voice system records the conversation as an interaction carrying the
-- call's id: that completes the call (a still-pending one too, when the
-- interaction arrives before the dispatch outcome is recorded).
create or replace function public.on_call_interaction_inserted() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  update public.scheduled_calls
     set status = 'completed', completed_at = now(), locked_until = null
   where id = new.scheduled_call_id
     and user_id = new.user_id
     and status in ('dispatched', 'pending');
  return null;
end
$$;

create trigger interactions_complete_call after insert on public.interactions
  for each row when (new.scheduled_call_id is not null)
  execute function public.on_call_interaction_inserted();

-- Access ------------------------------------------------------------------------------
revoke execute on function public.on_call_interaction_inserted() from public, anon, authenticated;
do $$
declare
  f text;
begin
  foreach f in array array[
    'public.schedule_call(uuid, text, timestamptz, text, text, text)',
    'public.cancel_scheduled_call(uuid, text)',
    'public.claim_due_calls(integer, integer)',
    'public.complete_call_dispatch(uuid, jsonb)'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
