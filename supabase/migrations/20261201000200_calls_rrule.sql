-- Scheduled calls, issue 8: one RRULE validator with the call guardrails, the daily cap on every
-- generated occurrence, skipping one occurrence, and cancelling a whole series.
--
-- The states of a call (one row per occurrence; a series is its first call and every row whose
-- recurrence_of points at it):
--
--   schedule_call ──▶ pending ──claim_due_calls──▶ (pending, leased) ──2xx──▶ dispatched
--                       │  ▲                           │      │                  │
--                       │  └── retry (backoff) ◀───────┘      │ 4xx, or 5        │ its interaction
--                       │                                     │ attempts         ▼
--                       │                                     └──▶ failed    completed
--                       ├─ skip_scheduled_call ───▶ cancelled (cancel_scope 'occurrence')
--                       └─ cancel_scheduled_call ─▶ cancelled (cancel_scope 'series')
--
--   - A claimed call stays 'pending' under a lease; an interaction carrying its id completes it
--     even then. 'dispatched', 'completed', 'failed' and 'cancelled' only move on as drawn.
--   - Recurrence: when an occurrence leaves 'pending' for dispatched, completed or failed
--     (complete_call_dispatch), or is skipped (skip_scheduled_call), the series' next occurrence
--     is inserted as a new 'pending' row, unless the series ends. It ends, with the reason in
--     series_end_reason on its last occurrence, when the RRULE has no further occurrence (COUNT,
--     UNTIL), when the next occurrence would exceed the daily call cap on its local day, or when
--     the series is cancelled (cancel_scope 'series' on the occurrence it was cancelled through).
--   - The RRULE is expanded in TypeScript (shared/time/rrule.ts). The time of the occurrence
--     after a pending one is stored on it (next_occurrence_at, with next_occurrence_known), so
--     that skip_scheduled_call can insert it in SQL: process-queue fills it in every minute for
--     the occurrences schedule_call made, and complete_call_dispatch for those it makes.
--   - schedule_call, cancel_scheduled_call, skip_scheduled_call and complete_call_dispatch take
--     the same per-user lock (lock_user_calls), so the daily cap holds and a series being
--     cancelled never gains an occurrence meanwhile. Always row locks first, then that lock
--     (callers such as the analysis and agent tools lock the call's row before skipping or
--     cancelling), so no two of them wait on each other.

-- Limits ----------------------------------------------------------------------------------
-- How often a user's phone may ring because of scheduled calls: the most calls in one local day
-- (for every call, and for the most a recurrence may yield), and the least time between two
-- calls of one recurrence. Configured here: change them with a migration that replaces this
-- function, and CALL_LIMITS in shared/time/rrule.ts with it (tests/deno/calls.test.ts compares).
create or replace function public.call_limits(
  out daily_cap integer,
  out min_gap_minutes integer
)
language sql immutable security invoker set search_path = '' as $$
  select 10, 60
$$;

-- One user's scheduling, cancelling, skipping and next occurrences go one at a time. The key is
-- the one schedule_call has always used.
create or replace function public.lock_user_calls(p_user_id uuid) returns void
language sql security invoker set search_path = '' as $$
  select pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended('public.schedule_call:' || p_user_id::text, 0)
  )
$$;

-- The RRULE validator -------------------------------------------------------------------------
-- A rule part's comma-separated items, each trimmed, in order.
create or replace function public.rrule_items(p_value text) returns text[]
language sql immutable strict security invoker set search_path = '' as $$
  select array_agg(pg_catalog.btrim(item, E' \t\r\n') order by n)
    from unnest(pg_catalog.string_to_array(p_value, ',')) with ordinality as t(item, n)
$$;

-- The reason an RRULE is not accepted for a call, or null when it is. The same checks, in the
-- same order and with the same messages, as parseRRule and checkGuardrails in
-- shared/time/rrule.ts (whose header lists what is accepted); tests/corpus/rrules.json holds the
-- cases both are tested against.
create or replace function public.rrule_problem(p_rrule text) returns text
language plpgsql stable strict security invoker set search_path = '' as $$
declare
  c_trim constant text := E' \t\r\n';
  c_weekdays constant text[] := array['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'];
  c_parts constant text[] := array['FREQ', 'INTERVAL', 'COUNT', 'UNTIL', 'BYMONTH', 'BYMONTHDAY',
                                   'BYDAY', 'BYHOUR', 'BYMINUTE', 'BYSECOND', 'BYSETPOS', 'WKST'];
  v_limits record;
  v_body text;
  v_part text;
  v_eq integer;
  v_name text;
  v_value text;
  v_names text[] := '{}'::text[];
  v_parts jsonb := '{}'::jsonb;
  v_freq text;
  v_item text;
  v_items text[];
  v_m text[];
  v_n integer;
  v_max integer;
  v_hours integer[];
  v_minutes integer[];
  v_setpos integer[];
  v_slots integer[];
  v_gap integer;
  v_per_day integer;
begin
  if p_rrule !~ E'^[A-Za-z0-9+,;=: \t\r\n-]*$' then
    return 'the RRULE may only contain letters, digits, spaces and + - , ; = :';
  end if;
  if length(p_rrule) > 500 then
    return 'the RRULE must be at most 500 characters';
  end if;
  v_body := upper(btrim(p_rrule, c_trim));
  v_body := regexp_replace(regexp_replace(v_body, '^RRULE:', ''), ';$', '');
  if btrim(v_body, c_trim) = '' then
    return 'the RRULE is empty';
  end if;

  foreach v_part in array string_to_array(v_body, ';') loop
    v_eq := position('=' in v_part);
    v_name := case when v_eq = 0 then '' else btrim(substr(v_part, 1, v_eq - 1), c_trim) end;
    if v_name = '' then
      return format('"%s" is not a NAME=VALUE rule part', v_part);
    end if;
    v_value := btrim(substr(v_part, v_eq + 1), c_trim);
    if v_parts ? v_name then
      return format('%s appears more than once', v_name);
    end if;
    if v_value = '' then
      return format('%s has no value', v_name);
    end if;
    v_parts := v_parts || jsonb_build_object(v_name, v_value);
    v_names := v_names || v_name;
  end loop;

  v_freq := v_parts ->> 'FREQ';
  if v_freq is null then
    return 'FREQ is required';
  end if;
  if v_freq in ('SECONDLY', 'MINUTELY', 'HOURLY') then
    return format('FREQ=%s is not supported: calls recur at most daily (BYHOUR and BYMINUTE give several times a day)', v_freq);
  end if;
  if v_freq not in ('DAILY', 'WEEKLY', 'MONTHLY', 'YEARLY') then
    return format('FREQ=%s is not a frequency', v_freq);
  end if;
  foreach v_name in array v_names loop
    if v_name in ('BYWEEKNO', 'BYYEARDAY') then
      return format('%s is not supported', v_name);
    end if;
    if not v_name = any (c_parts) then
      return format('%s is not a recognised RRULE part', v_name);
    end if;
  end loop;

  foreach v_name in array array['INTERVAL', 'COUNT'] loop
    v_value := v_parts ->> v_name;
    if v_value is not null and (v_value !~ '^[0-9]{1,4}$' or v_value::integer < 1) then
      return format('%s=%s must be a whole number from 1 to 9999', v_name, v_value);
    end if;
  end loop;

  v_value := v_parts ->> 'UNTIL';
  if v_value is not null then
    v_m := regexp_match(v_value, '^([0-9]{4})([0-9]{2})([0-9]{2})(?:T([0-9]{2})([0-9]{2})([0-9]{2})(Z?))?$');
    if v_m is null then
      return format('UNTIL=%s must be YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ', v_value);
    end if;
    if v_m[1]::integer < 1 or v_m[2]::integer not between 1 and 12 or v_m[3]::integer < 1 then
      return format('UNTIL=%s is not a valid date', v_value);
    end if;
    if v_m[3]::integer > extract(day from
         make_date(v_m[1]::integer, v_m[2]::integer, 1) + interval '1 month' - interval '1 day')
       or (v_m[4] is not null and (v_m[4]::integer > 23 or v_m[5]::integer > 59 or v_m[6]::integer > 59)) then
      return format('UNTIL=%s is not a valid date', v_value);
    end if;
  end if;

  v_value := v_parts ->> 'BYMONTH';
  if v_value is not null then
    v_items := public.rrule_items(v_value);
    if '' = any (v_items) then
      return format('BYMONTH=%s has an empty item', v_value);
    end if;
    foreach v_item in array v_items loop
      if v_item !~ '^[0-9]{1,2}$' or v_item::integer not between 1 and 12 then
        return format('BYMONTH=%s is not a month (1..12)', v_item);
      end if;
    end loop;
  end if;

  v_value := v_parts ->> 'BYMONTHDAY';
  if v_value is not null then
    if v_freq = 'WEEKLY' then
      return 'BYMONTHDAY cannot be used with FREQ=WEEKLY (RFC 5545)';
    end if;
    v_items := public.rrule_items(v_value);
    if '' = any (v_items) then
      return format('BYMONTHDAY=%s has an empty item', v_value);
    end if;
    foreach v_item in array v_items loop
      if v_item !~ '^[+-]?[0-9]{1,2}$' or v_item::integer = 0 or abs(v_item::integer) > 31 then
        return format('BYMONTHDAY=%s is not a day of the month (1..31, -31..-1)', v_item);
      end if;
    end loop;
  end if;

  v_value := v_parts ->> 'BYDAY';
  if v_value is not null then
    v_items := public.rrule_items(v_value);
    if '' = any (v_items) then
      return format('BYDAY=%s has an empty item', v_value);
    end if;
    foreach v_item in array v_items loop
      v_m := regexp_match(v_item, '^([+-]?[0-9]{1,2})?([A-Z]{2})$');
      if v_m is null or not v_m[2] = any (c_weekdays) then
        return format('BYDAY=%s is not a weekday', v_item);
      end if;
      if v_m[1] is not null then
        if v_freq not in ('MONTHLY', 'YEARLY') then
          return format('BYDAY=%s: an ordinal weekday needs FREQ=MONTHLY or YEARLY', v_item);
        end if;
        -- Every year has 52 of each weekday; rrule-temporal mishandles a 53rd that a year
        -- lacks.
        v_max := case v_freq when 'MONTHLY' then 5 else 52 end;
        if v_m[1]::integer = 0 or abs(v_m[1]::integer) > v_max then
          return format('BYDAY=%s: the ordinal must be 1..%s or -%s..-1', v_item, v_max, v_max);
        end if;
      end if;
    end loop;
    -- What the two mean together is murky in RFC 5545, and rrule-temporal ignores BYMONTHDAY.
    if v_parts ? 'BYMONTHDAY' and exists (select 1 from unnest(v_items) i where i ~ '^[+-]?[0-9]') then
      return format('BYDAY=%s: an ordinal weekday cannot be combined with BYMONTHDAY', v_value);
    end if;
    -- rrule-temporal drops the plain weekdays of such a rule.
    if v_freq = 'YEARLY' and not v_parts ? 'BYMONTH'
       and exists (select 1 from unnest(v_items) i where i ~ '^[+-]?[0-9]')
       and exists (select 1 from unnest(v_items) i where i !~ '^[+-]?[0-9]') then
      return format('BYDAY=%s: with FREQ=YEARLY and no BYMONTH, give every weekday an ordinal or none', v_value);
    end if;
  end if;

  foreach v_name in array array['BYHOUR', 'BYMINUTE'] loop
    v_value := v_parts ->> v_name;
    continue when v_value is null;
    v_items := public.rrule_items(v_value);
    if '' = any (v_items) then
      return format('%s=%s has an empty item', v_name, v_value);
    end if;
    v_max := case v_name when 'BYHOUR' then 23 else 59 end;
    foreach v_item in array v_items loop
      if v_item !~ '^[0-9]{1,2}$' or v_item::integer > v_max then
        return format('%s=%s is not %s (0..%s)', v_name, v_item,
                      case v_name when 'BYHOUR' then 'an hour' else 'a minute' end, v_max);
      end if;
    end loop;
    if v_name = 'BYHOUR' then
      v_hours := v_items::integer[];
    else
      v_minutes := v_items::integer[];
    end if;
  end loop;

  v_value := v_parts ->> 'BYSECOND';
  if v_value is not null then
    v_items := public.rrule_items(v_value);
    if '' = any (v_items) then
      return format('BYSECOND=%s has an empty item', v_value);
    end if;
    foreach v_item in array v_items loop
      if v_item !~ '^[0-9]{1,2}$' or v_item::integer <> 0 then
        return format('BYSECOND=%s: calls are placed on whole minutes, so only BYSECOND=0 is accepted', v_value);
      end if;
    end loop;
  end if;

  v_value := v_parts ->> 'BYSETPOS';
  if v_value is not null then
    v_items := public.rrule_items(v_value);
    if '' = any (v_items) then
      return format('BYSETPOS=%s has an empty item', v_value);
    end if;
    foreach v_item in array v_items loop
      if v_item !~ '^[+-]?[0-9]{1,3}$' or v_item::integer = 0 or abs(v_item::integer) > 366 then
        return format('BYSETPOS=%s is not a position (1..366, -366..-1)', v_item);
      end if;
    end loop;
    v_setpos := v_items::integer[];
  end if;

  v_value := v_parts ->> 'WKST';
  if v_value is not null and not v_value = any (c_weekdays) then
    return format('WKST=%s is not a weekday', v_value);
  end if;
  if v_parts ? 'COUNT' and v_parts ? 'UNTIL' then
    return 'COUNT and UNTIL cannot both be given';
  end if;
  if v_setpos is not null and not v_parts ?| array['BYMONTH', 'BYMONTHDAY', 'BYDAY', 'BYHOUR',
                                                   'BYMINUTE', 'BYSECOND'] then
    return 'BYSETPOS needs another BYxxx rule part to select from';
  end if;

  -- Guardrails, on the minutes of the day the rule's calls can fall on (see checkGuardrails):
  -- the hour or minute left to DTSTART is one value, which changes neither count nor gaps.
  select array_agg(s order by s) into v_slots from (
    select distinct h * 60 + m as s
      from unnest(coalesce(v_hours, '{0}')) h, unnest(coalesce(v_minutes, '{0}')) m
  ) x;
  if v_setpos is not null and v_freq = 'DAILY' then
    -- A DAILY period is one day, so BYSETPOS picks among exactly these times.
    select array_agg(s order by s) into v_slots from (
      select distinct v_slots[case when p > 0 then p else cardinality(v_slots) + p + 1 end] as s
        from unnest(v_setpos) p
    ) x where s is not null;
  end if;
  v_n := cardinality(v_slots);
  v_gap := 1440;
  if v_n >= 2 then
    v_gap := 1440 - v_slots[v_n] + v_slots[1];
    for i in 2 .. v_n loop
      v_gap := least(v_gap, v_slots[i] - v_slots[i - 1]);
    end loop;
  end if;
  v_limits := public.call_limits();
  if v_gap < v_limits.min_gap_minutes then
    return format('the RRULE recurs as often as every %s minutes; the minimum gap between calls is %s minutes',
                  v_gap, v_limits.min_gap_minutes);
  end if;
  v_per_day := case when v_setpos is not null and v_freq <> 'DAILY'
                    then least(v_n, (select count(distinct p)::integer from unnest(v_setpos) p))
                    else v_n end;
  if v_per_day > v_limits.daily_cap then
    return format('the RRULE gives up to %s calls in a local day; the daily call cap is %s',
                  v_per_day, v_limits.daily_cap);
  end if;
  return null;
end
$$;

-- Columns ---------------------------------------------------------------------------------------
alter table public.scheduled_calls
  -- On a cancelled call: whether only this occurrence was skipped or the series ended with it;
  -- on a call the series was cancelled through when none of its occurrences was pending.
  add column cancel_scope text
    constraint scheduled_calls_cancel_scope check (cancel_scope in ('occurrence', 'series')),
  -- On a series' last occurrence: why no occurrence follows it.
  add column series_end_reason text,
  -- The time of the series' occurrence after this one (null with next_occurrence_known: there is
  -- none), computed by process-queue from the RRULE in the user's zone.
  add column next_occurrence_at timestamptz,
  add column next_occurrence_known boolean not null default false;
create index scheduled_calls_unplanned_idx on public.scheduled_calls (created_at)
  where status = 'pending' and rrule is not null and not next_occurrence_known;

-- Agents' RPCs ------------------------------------------------------------------------------------
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
  v_tz text;
  v_problem text;
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

  perform public.lock_user_calls(p_user_id);
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
  v_problem := public.rrule_problem(p_rrule);
  if v_problem is not null then
    raise exception 'p_rrule is not accepted: %', v_problem using errcode = '22023';
  end if;
  v_problem := public.daily_cap_problem(p_user_id, v_tz, p_scheduled_for);
  if v_problem is not null then
    raise exception '%', v_problem using errcode = '22023';
  end if;

  insert into public.scheduled_calls (
    user_id, call_type, scheduled_for, custom_instructions, rrule, idempotency_key, status,
    next_attempt_at, next_occurrence_known
  ) values (
    p_user_id, p_call_type, p_scheduled_for, p_custom_instructions, p_rrule, p_idempotency_key,
    'pending', p_scheduled_for, p_rrule is null
  )
  returning id into v_id;
  return v_id;
end
$$;

-- Why one more call at p_at would break the daily cap, or null. Calls per local day of the
-- user, counting those that will ring or rang (not cancelled or failed ones). The caller is
-- usually the model acting on an untrusted transcript: this bounds how often it can make the
-- phone ring. The caller holds lock_user_calls.
create or replace function public.daily_cap_problem(p_user_id uuid, p_tz text, p_at timestamptz)
returns text
language plpgsql stable security invoker set search_path = '' as $$
declare
  v_cap integer := (public.call_limits()).daily_cap;
  v_day date := (p_at at time zone p_tz)::date;
  v_same_day integer;
begin
  select count(*) into v_same_day from public.scheduled_calls
   where user_id = p_user_id
     and status in ('pending', 'dispatched', 'completed')
     and scheduled_for >= public.local_to_instant(v_day::timestamp, p_tz)
     and scheduled_for < public.local_to_instant((v_day + 1)::timestamp, p_tz);
  if v_same_day < v_cap then
    return null;
  end if;
  return format('the user already has %s calls on %s, the most allowed in one local day',
                v_cap, v_day);
end
$$;

-- Ends the series of p_call_id (any occurrence of it): its pending occurrence is cancelled and
-- none follows. True when a pending call was cancelled; false when none was pending, so a
-- repeated cancel is harmless and keeps the first reason. A call claimed at this moment may
-- still reach the voice system; its outcome then no longer changes the row, nor continues the
-- series.
create or replace function public.cancel_scheduled_call(p_call_id uuid, p_reason text)
returns boolean
language plpgsql security definer set search_path = '' as $$
declare
  v_call public.scheduled_calls;
  v_series uuid;
begin
  v_call := public.checked_call(p_call_id, p_reason);
  v_series := coalesce(v_call.recurrence_of, v_call.id);
  -- Waits for a dispatch being recorded; what it adds is seen by the statements after this one.
  perform 1 from public.scheduled_calls
   where (id = v_series or recurrence_of = v_series)
     and (status = 'pending' or (status = 'completed' and dispatched_at is null))
     for update;
  perform public.lock_user_calls(v_call.user_id);
  update public.scheduled_calls
     set status = 'cancelled', cancel_reason = p_reason, cancel_scope = 'series',
         series_end_reason = 'cancelled: ' || p_reason, locked_until = null
   where (id = v_series or recurrence_of = v_series) and status = 'pending';
  if found then
    return true;
  end if;
  -- Nothing pending: the latest occurrence may still be having its dispatch recorded (its
  -- interaction completed it first); marked, it makes no next occurrence.
  update public.scheduled_calls
     set cancel_scope = 'series', cancel_reason = p_reason,
         series_end_reason = coalesce(series_end_reason, 'cancelled: ' || p_reason)
   where id = (select id from public.scheduled_calls
                where (id = v_series or recurrence_of = v_series)
                order by scheduled_for desc limit 1)
     and rrule is not null and cancel_scope is null;
  return false;
end
$$;

-- Skips one occurrence: the pending call p_call_id is cancelled with p_reason and its series
-- goes on. Returns the next occurrence's id, or null when the series has ended (its RRULE has
-- no further occurrence, or the next one would exceed the daily cap: series_end_reason says).
-- Skipping a skipped occurrence again returns the same answer and changes nothing. 55000 while
-- the next occurrence's time is not known yet (process-queue computes it within a minute of
-- schedule_call); 22023 for a call that is no longer pending.
create or replace function public.skip_scheduled_call(p_call_id uuid, p_reason text)
returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  v_call public.scheduled_calls;
begin
  v_call := public.checked_call(p_call_id, p_reason);
  select * into v_call from public.scheduled_calls where id = p_call_id for update;
  perform public.lock_user_calls(v_call.user_id);
  if v_call.status = 'cancelled' and v_call.cancel_scope = 'occurrence' then
    return (select id from public.scheduled_calls
             where user_id = v_call.user_id
               and idempotency_key = public.occurrence_key(v_call, v_call.next_occurrence_at));
  end if;
  if v_call.status <> 'pending' then
    raise exception 'call % is %, not pending: only a pending occurrence can be skipped',
      p_call_id, v_call.status using errcode = '22023';
  end if;
  if v_call.rrule is not null and not v_call.next_occurrence_known then
    raise exception 'the occurrence after call % is not computed yet (process-queue does so every minute); try again shortly',
      p_call_id using errcode = '55000';
  end if;
  update public.scheduled_calls
     set status = 'cancelled', cancel_reason = p_reason, cancel_scope = 'occurrence',
         locked_until = null
   where id = p_call_id;
  if v_call.rrule is null then
    return null;
  end if;
  return public.add_next_occurrence(p_call_id, v_call.next_occurrence_at,
                                    null, false);
end
$$;

-- The call a cancel or skip names, its arguments checked (22023, P0002).
create or replace function public.checked_call(p_call_id uuid, p_reason text)
returns public.scheduled_calls
language plpgsql stable security invoker set search_path = '' as $$
declare
  v_call public.scheduled_calls;
begin
  if p_call_id is null then
    raise exception 'p_call_id is required' using errcode = '22023';
  end if;
  select * into v_call from public.scheduled_calls where id = p_call_id;
  if not found then
    raise exception 'unknown call %', p_call_id using errcode = 'P0002';
  end if;
  if p_reason is null or length(btrim(p_reason)) = 0 or length(p_reason) > 500 then
    raise exception 'p_reason must be 1 to 500 characters, not blank' using errcode = '22023';
  end if;
  return v_call;
end
$$;

-- Per series and occurrence time: a replay can never make a second one.
create or replace function public.occurrence_key(p_call public.scheduled_calls, p_at timestamptz)
returns text
language sql immutable security invoker set search_path = '' as $$
  select 'recurrence:' || coalesce(p_call.recurrence_of, p_call.id) || ':'
         || to_char(p_at at time zone 'UTC', 'YYYYMMDD"T"HH24MISS"Z"')
$$;

-- Inserts the occurrence of p_call_id's series at p_at (p_following: the time of the one after
-- it, known or not), and returns its id; or ends the series and returns null: when the series
-- was cancelled, when p_at is null (the RRULE has no further occurrence), or when p_at would
-- exceed the daily cap on its local day, as for any new call. The caller holds lock_user_calls.
create or replace function public.add_next_occurrence(
  p_call_id uuid,
  p_at timestamptz,
  p_following timestamptz,
  p_following_known boolean
) returns uuid
language plpgsql security invoker set search_path = '' as $$
declare
  v_call public.scheduled_calls;
  v_series uuid;
  v_problem text;
  v_id uuid;
begin
  select * into v_call from public.scheduled_calls where id = p_call_id;
  v_series := coalesce(v_call.recurrence_of, v_call.id);
  if exists (select 1 from public.scheduled_calls
              where (id = v_series or recurrence_of = v_series) and cancel_scope = 'series') then
    return null;
  end if;
  if p_at is null then
    update public.scheduled_calls
       set series_end_reason = coalesce(series_end_reason, 'the RRULE has no occurrence after this one')
     where id = p_call_id;
    return null;
  end if;
  select id into v_id from public.scheduled_calls
   where user_id = v_call.user_id and idempotency_key = public.occurrence_key(v_call, p_at);
  if found then
    return v_id;
  end if;
  v_problem := public.daily_cap_problem(
    v_call.user_id, (select timezone from public.users where id = v_call.user_id), p_at);
  if v_problem is not null then
    update public.scheduled_calls
       set series_end_reason = 'the next occurrence, at ' || p_at || ', is over the daily cap: '
                               || v_problem
     where id = p_call_id;
    return null;
  end if;
  insert into public.scheduled_calls (
    user_id, call_type, scheduled_for, custom_instructions, rrule, recurrence_of,
    idempotency_key, status, next_attempt_at, next_occurrence_at, next_occurrence_known
  ) values (
    v_call.user_id, v_call.call_type, p_at, v_call.custom_instructions, v_call.rrule, v_series,
    public.occurrence_key(v_call, p_at), 'pending', p_at, p_following, p_following_known
  )
  returning id into v_id;
  return v_id;
end
$$;

-- Outcomes ------------------------------------------------------------------------------------------
-- Outcomes of a claim, recorded in one call. Each result:
-- {id, outcome: dispatched | retry | failed, error?, retry_at?,
--  next_occurrence?, following_occurrence?, series_end_reason?}
-- Only rows still holding p_claim_token and still pending change, so a replay,
-- or a run whose lease lapsed and was claimed again, changes nothing twice.
-- next_occurrence (computed by the caller from the RRULE in the user's zone; absent when the
-- series ends, with series_end_reason) becomes the series' next pending call once this one is
-- done with: dispatched, or failed for good (a failed occurrence does not end the series).
-- following_occurrence, the time of the one after that (null: none), is stored on it for
-- skip_scheduled_call; absent, process-queue computes it later. A call its interaction
-- completed before the dispatch was recorded counts as dispatched.
create or replace function public.complete_call_dispatch(p_claim_token uuid, p_results jsonb)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_max_attempts constant integer := 5;
  v_updated jsonb;
  v_done record;
  v_next integer := 0;
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
           coalesce((x ->> 'retry_at')::timestamptz, now()) as retry_at, x
      from jsonb_array_elements(p_results) x
     order by (x ->> 'id')::uuid
  ), mine as (
    select c.id, r.outcome, r.error, r.retry_at, r.x,
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
    returning c.id, c.user_id, c.rrule, c.scheduled_for, mine.new_status, mine.x
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', id, 'user_id', user_id, 'recurring', rrule is not null,
           'scheduled_for', scheduled_for, 'new_status', new_status, 'x', x) order by id), '[]')
    into v_updated from updated;

  -- The rows are locked; now their users, in a fixed order, for the next occurrences.
  perform public.lock_user_calls(u.user_id) from (
    select distinct (u ->> 'user_id')::uuid as user_id from jsonb_array_elements(v_updated) u
     where (u ->> 'recurring')::boolean and u ->> 'new_status' <> 'pending'
     order by 1
  ) u;

  for v_done in
    select (u ->> 'id')::uuid as id, (u -> 'x' ->> 'next_occurrence')::timestamptz as next_at,
           (u -> 'x' ->> 'following_occurrence')::timestamptz as following_at,
           (u -> 'x') ? 'following_occurrence' as following_known,
           left(u -> 'x' ->> 'series_end_reason', 1000) as end_reason,
           (u ->> 'scheduled_for')::timestamptz as scheduled_for
      from jsonb_array_elements(v_updated) u
     where (u ->> 'recurring')::boolean and u ->> 'new_status' <> 'pending'
  loop
    if v_done.next_at is null or v_done.next_at <= v_done.scheduled_for then
      update public.scheduled_calls
         set series_end_reason = coalesce(v_done.end_reason, 'the RRULE has no occurrence after this one')
       where id = v_done.id and series_end_reason is null;
    elsif public.add_next_occurrence(v_done.id, v_done.next_at, v_done.following_at,
                                     v_done.following_known) is not null then
      v_next := v_next + 1;
    end if;
  end loop;

  return jsonb_build_object(
    'dispatched', (select count(*) from jsonb_array_elements(v_updated) u
                    where u ->> 'new_status' in ('dispatched', 'completed')),
    'retried', (select count(*) from jsonb_array_elements(v_updated) u
                 where u ->> 'new_status' = 'pending'),
    'failed', (select count(*) from jsonb_array_elements(v_updated) u
                where u ->> 'new_status' = 'failed'),
    'ignored', jsonb_array_length(p_results) - jsonb_array_length(v_updated),
    'next_occurrences', v_next
  );
end
$$;

-- Planning ------------------------------------------------------------------------------------------
-- Pending occurrences whose next occurrence's time is not known yet, with what the RRULE
-- needs, for process-queue to compute (oldest first).
create or replace function public.unplanned_recurrences(p_limit integer default 100)
returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  if p_limit is null or p_limit not between 1 and 500 then
    raise exception 'p_limit must be between 1 and 500' using errcode = '22023';
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object(
             'id', c.id, 'rrule', c.rrule, 'scheduled_for', c.scheduled_for,
             'series_start', coalesce(f.scheduled_for, c.scheduled_for), 'timezone', u.timezone
           ) order by c.created_at)
      from (select * from public.scheduled_calls
             where status = 'pending' and rrule is not null and not next_occurrence_known
             order by created_at limit p_limit) c
      join public.users u on u.id = c.user_id
      left join public.scheduled_calls f on f.id = c.recurrence_of
  ), '[]');
end
$$;

-- Records computed next occurrences: [{id, next_occurrence: timestamptz | null}] (null: the
-- series has none after this one). Only still-pending, still-unplanned rows change.
create or replace function public.record_next_occurrences(p_results jsonb) returns integer
language plpgsql security definer set search_path = '' as $$
declare
  v_count integer;
begin
  if p_results is null or jsonb_typeof(p_results) <> 'array' or exists (
    select 1 from jsonb_array_elements(p_results) x
     where jsonb_typeof(x) <> 'object' or not x ? 'next_occurrence'
        or coalesce(x ->> 'id', '') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
  ) then
    raise exception 'p_results must be an array of {id (uuid), next_occurrence}' using errcode = '22023';
  end if;
  update public.scheduled_calls c
     set next_occurrence_at = (x ->> 'next_occurrence')::timestamptz, next_occurrence_known = true
    from jsonb_array_elements(p_results) x
   where c.id = (x ->> 'id')::uuid and c.status = 'pending' and not c.next_occurrence_known;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- Existing occurrences: non-recurring ones need no plan.
update public.scheduled_calls set next_occurrence_known = true where rrule is null;

-- Access ------------------------------------------------------------------------------------------
do $$
declare
  f text;
begin
  foreach f in array array[
    'public.call_limits()',
    'public.lock_user_calls(uuid)',
    'public.rrule_items(text)',
    'public.rrule_problem(text)',
    'public.daily_cap_problem(uuid, text, timestamptz)',
    'public.schedule_call(uuid, text, timestamptz, text, text, text)',
    'public.cancel_scheduled_call(uuid, text)',
    'public.skip_scheduled_call(uuid, text)',
    'public.checked_call(uuid, text)',
    'public.occurrence_key(public.scheduled_calls, timestamptz)',
    'public.add_next_occurrence(uuid, timestamptz, timestamptz, boolean)',
    'public.complete_call_dispatch(uuid, jsonb)',
    'public.unplanned_recurrences(integer)',
    'public.record_next_occurrences(jsonb)'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
