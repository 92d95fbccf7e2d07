-- Delivery, second round (issue 7): claims that nothing can stall, strand or
-- double. claim_messages is rebuilt from small functions, each with one job:
--   rescue_lapsed_leases   leases that ran out: requeue, or unknown if sending began
--   delivery_candidates    users with due work, urgent ones first
--   lock_delivery_user     one of them, SKIP LOCKED, only as many as fill the batch
--   delivery_user_state    budgets, quiet hours, snooze and opt-out of the locked user
--   due_units              a user's first due units in priority order, bounded
--   decide_delivery        the rule: claim, defer, expire, cancel or fail one unit
-- and sends are marked one message at a time (start_sending), just before each
-- message's own Twilio request, with every rule checked again there.
--
-- The life of a message_queue row (status). Written once, here; the README has
-- the same as a diagram.
--
--   queued ──claim──▶ sending ──start_sending + Twilio accepted──▶ sent ──callback──▶ delivered
--     │  ▲              │  │                                         └──callback──▶ failed
--     │  │              │  ├─ Twilio refused for good (4xx) ───────────────────────▶ failed
--     │  │              │  ├─ 21610 ─────────────────────────────▶ failed (user opted out)
--     │  │              │  ├─ send outcome not known (timeout, dropped, 500/502/504) ─▶ unknown
--     │  │              │  ├─ freshness check says no longer relevant ─────────────▶ superseded
--     │  │              │  ├─ at send time: opted out ▶ cancelled, expired ▶ expired,
--     │  │              │  │   superseded by a newer message ▶ superseded
--     │  └──────────────┘  └─ at send time in quiet hours, 429/503, render failed,
--     │   (lease lapsed before its send began, or released: back to queued)
--     ├─ newer message with the same supersede key ─▶ superseded
--     ├─ past expires_at ─▶ expired      ├─ user opted out ─▶ cancelled
--     ├─ a sequence member was dropped ─▶ cancelled
--     └─ sequence could not complete in time, or retries exhausted ─▶ failed
--
--   unknown ──status callback, or found in Twilio's message list──▶ sent / delivered / failed
--   unknown ──certainly absent from Twilio's list, first time──▶ queued (sent again, once)
--   unknown ──absent again after that resend──▶ failed
--
-- Final: delivered, failed, superseded, expired, cancelled. While a row waits in
-- queued, wait_reason says why (never read back from status_reason, which is
-- prose for people) and next_attempt_at says when it is looked at again.

-- Budget units ------------------------------------------------------------------------
-- Gives back the unit a message spent (it did not reach the user). An urgent unit
-- also counted toward the day's total.
create or replace function public.refund_units(p_ids uuid[]) returns void
language plpgsql security definer set search_path = '' as $$
begin
  -- Most outcomes give nothing back: no statement for them.
  if coalesce(cardinality(p_ids), 0) = 0 then
    return;
  end if;
  with spent as (
    select id, user_id, unit_kind, unit_local_date
      from public.message_queue
     where id = any(p_ids) and unit_kind is not null
  ), cleared as (
    update public.message_queue m
       set updated_at = now(), unit_kind = null, unit_spent_at = null, unit_local_date = null
      from spent s
     where m.id = s.id
  )
  update public.user_message_budget b
     set units_used = greatest(b.units_used - x.units, 0),
         urgent_used = greatest(b.urgent_used - x.urgent, 0),
         updated_at = now()
    from (
      select user_id, unit_local_date, count(*)::int as units,
             count(*) filter (where unit_kind = 'urgent')::int as urgent
        from spent group by user_id, unit_local_date
    ) x
   where b.user_id = x.user_id and b.local_date = x.unit_local_date;
end
$$;

-- 1. Lapsed leases ------------------------------------------------------------------
-- Before its send began nothing left: requeue and give the unit back. After
-- it, the outcome is unknown: never sent again blindly; reconciliation decides.
create or replace function public.rescue_lapsed_leases(p_now timestamptz)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_requeued uuid[];
  v_unknown integer;
begin
  with lapsed as (
    select id, send_started_at from public.message_queue
     where status = 'sending' and locked_until < p_now
     for update skip locked
  ), requeued as (
    update public.message_queue m
       set updated_at = now(), status = 'queued', locked_until = null, claim_token = null,
           next_attempt_at = p_now, wait_reason = null,
           status_reason = 'the processor stopped before sending; requeued'
      from lapsed l
     where m.id = l.id and l.send_started_at is null
    returning m.id
  ), unknown as (
    update public.message_queue m
       set updated_at = now(), status = 'unknown', locked_until = null, next_attempt_at = p_now,
           wait_reason = 'reconcile',
           status_reason = 'the processor stopped after the send began; reconciled from Twilio'
      from lapsed l
     where m.id = l.id and l.send_started_at is not null
    returning m.id
  )
  select coalesce((select array_agg(id) from requeued), '{}'), (select count(*)::int from unknown)
    into v_requeued, v_unknown;
  perform public.refund_units(v_requeued);
  return jsonb_build_object('requeued', cardinality(v_requeued), 'unknown', v_unknown);
end
$$;

-- 2. Users with due work ------------------------------------------------------------
-- The users of any due urgent row, then of the oldest due rows, in the order
-- they are served. Reads at most 5 x p_limit index entries, whatever the
-- backlog. The claim locks them one at a time, only as many as fill its batch,
-- so overlapping processors find the rest free. This and the per-user helpers
-- below are PL/pgSQL so that their plans are cached per session: as SQL
-- functions (never inlined, being SECURITY DEFINER) they were planned on every
-- call, which cost a claim of 100 users tens of milliseconds.
create or replace function public.delivery_candidates(p_limit integer, p_now timestamptz)
returns setof uuid
language plpgsql stable security definer set search_path = '' as $$
begin
  return query
  select d.user_id from (
    (select user_id, next_attempt_at, true as urgent from public.message_queue
      where status = 'queued' and priority_rank = 0 and next_attempt_at <= p_now
      order by next_attempt_at limit p_limit)
    union all
    (select user_id, next_attempt_at, false from public.message_queue
      where status = 'queued' and next_attempt_at <= p_now
      order by next_attempt_at limit p_limit * 4)
  ) d
  group by d.user_id
  order by bool_or(d.urgent) desc, min(d.next_attempt_at), d.user_id;
end
$$;

-- Locks one user for delivery unless another processor holds them.
create or replace function public.lock_delivery_user(p_user_id uuid) returns boolean
language plpgsql security definer set search_path = '' as $$
begin
  perform 1 from public.users where id = p_user_id for no key update skip locked;
  return found;
end
$$;

-- 3. What each locked user may receive now ---------------------------------------------
create type public.delivery_user_state as (
  user_id uuid,
  tz text,
  quiet_start time,
  quiet_end time,
  -- When the quiet hours that hold now end; null outside them or while the
  -- user is active (an inbound SMS in the last 10 minutes).
  quiet_until timestamptz,
  -- The next start of the preferred window (outside quiet hours); null inside
  -- the window, with no preference, or when the window lies within quiet hours.
  preferred_from timestamptz,
  snoozed_until timestamptz,
  opted_out boolean,
  local_day date,
  daily_limit integer,
  hourly_limit integer,
  daily_used integer,
  hour_used integer,
  oldest_spend timestamptz,
  urgent_used integer
);

-- The first instant at or after p_at inside the window [p_start, p_end) and
-- outside quiet hours; null when p_at already is inside the window, or when no
-- instant is both (the window lies within quiet hours).
create or replace function public.preferred_window_start(
  p_at timestamptz,
  p_tz text,
  p_start time,
  p_end time,
  p_quiet_start time,
  p_quiet_end time
) returns timestamptz
language plpgsql stable set search_path = '' as $$
declare
  -- Outside the window is inside [end, start): its end is the next window start.
  v_start timestamptz := public.quiet_hours_end(p_at, p_tz, p_end, p_start);
begin
  if v_start is null then
    return null;
  end if;
  v_start := public.outside_quiet_hours(v_start, p_tz, p_quiet_start, p_quiet_end);
  if public.quiet_hours_end(v_start, p_tz, p_end, p_start) is not null then
    return null;
  end if;
  return v_start;
end
$$;

create or replace function public.delivery_user_state(p_user_id uuid, p_now timestamptz)
returns public.delivery_user_state
language plpgsql stable security definer set search_path = '' as $$
declare
  v_state public.delivery_user_state;
begin
  select u.id, u.timezone, u.quiet_hours_start, u.quiet_hours_end,
         case when coalesce(u.last_inbound_at > p_now - interval '10 minutes', false) then null
              else public.quiet_hours_end(p_now, u.timezone, u.quiet_hours_start, u.quiet_hours_end)
         end,
         case when u.preferred_hours_start is not null then
           public.preferred_window_start(p_now, u.timezone, u.preferred_hours_start,
                                         u.preferred_hours_end, u.quiet_hours_start, u.quiet_hours_end)
         end,
         case when u.snoozed_until > p_now then u.snoozed_until end,
         u.sms_opted_out_at is not null,
         (p_now at time zone u.timezone)::date,
         u.daily_message_limit, u.hourly_message_limit,
         coalesce(b.units_used, 0), h.hour_used, h.oldest_spend, coalesce(b.urgent_used, 0)
    into v_state
    from public.users u
    left join public.user_message_budget b
      on b.user_id = u.id and b.local_date = (p_now at time zone u.timezone)::date
   cross join lateral (
      select count(*)::int as hour_used, min(q.unit_spent_at) as oldest_spend
        from public.message_queue q
       where q.user_id = u.id and q.unit_kind is not null
         and q.unit_spent_at > p_now - interval '1 hour'
   ) h
   where u.id = p_user_id;
  return v_state;
end
$$;

-- 4. A user's first due units --------------------------------------------------------
-- A unit is a standalone message or a whole sequence. At most p_lookahead due
-- rows are read, in the order they would go out; their sequences' other members
-- are read to judge the unit. Every row read is locked until the claim commits.
create type public.delivery_unit as (
  unit_id uuid,
  -- The queued members, in sequence order.
  member_ids uuid[],
  is_sequence boolean,
  priority_rank smallint,
  scheduled_for timestamptz,
  -- Every queued member may wait for the user's preferred hours.
  can_delay boolean,
  -- The earliest expiry of a queued member.
  expires_at timestamptz,
  expired boolean,
  -- A member was cancelled, superseded, expired or failed: it cannot go whole.
  broken boolean,
  -- A member is being sent or its outcome is unknown; until when to wait.
  in_flight boolean,
  in_flight_until timestamptz,
  -- Every member has been queued (or already went out).
  complete boolean,
  -- When the last queued member becomes due; null when all are due now.
  due_at timestamptz,
  -- The unit already spent its budget unit (a sequence partly sent).
  paid boolean,
  first_queued_at timestamptz
);

create or replace function public.due_units(p_user_id uuid, p_now timestamptz, p_lookahead integer)
returns setof public.delivery_unit
language plpgsql security definer set search_path = '' as $$
begin
  return query
  with due as (
    select m.id, coalesce(m.sequence_id, m.id) as unit_id, m.sequence_id, m.sequence_position,
           m.sequence_total, m.status, m.priority_rank, m.scheduled_for, m.created_at,
           m.expires_at, m.next_attempt_at, m.locked_until, m.unit_kind, m.can_delay
      from public.message_queue m
     where m.user_id = p_user_id and m.status = 'queued' and m.next_attempt_at <= p_now
     order by m.priority_rank, m.scheduled_for, m.created_at, m.id
     limit p_lookahead
       for update
  ), sequence_members as (
    -- Through the sequence index: every member of the due rows' sequences.
    select m.id, m.sequence_id as unit_id, m.sequence_id, m.sequence_position,
           m.sequence_total, m.status, m.priority_rank, m.scheduled_for, m.created_at,
           m.expires_at, m.next_attempt_at, m.locked_until, m.unit_kind, m.can_delay
      from public.message_queue m
     where m.sequence_id in (select sequence_id from due where sequence_id is not null)
       for update
  ), members as (
    select * from due where sequence_id is null
    union all
    select * from sequence_members
  )
  select unit_id,
         array_agg(id order by sequence_position) filter (where status = 'queued'),
         bool_or(sequence_id is not null),
         min(priority_rank),
         min(scheduled_for),
         bool_and(can_delay) filter (where status = 'queued'),
         min(expires_at) filter (where status = 'queued'),
         bool_or(status = 'queued' and coalesce(expires_at <= p_now, false)),
         bool_or(status in ('cancelled', 'superseded', 'expired', 'failed')),
         bool_or(status in ('sending', 'unknown')),
         max(locked_until) filter (where status = 'sending'),
         count(*) = max(coalesce(sequence_total, 1)),
         max(next_attempt_at) filter (where status = 'queued' and next_attempt_at > p_now),
         bool_or(unit_kind is not null),
         min(created_at)
    from members
   group by unit_id
  having count(*) filter (where status = 'queued') > 0
   order by min(priority_rank), min(scheduled_for), min(created_at) filter (where status = 'queued'),
            unit_id;
end
$$;

-- 5. The rule -------------------------------------------------------------------------
-- What to do with one unit now, given what its user may still receive. Pure:
-- reads no table, so it is tested on its own.
create type public.delivery_decision as (
  -- claim | defer | expire | cancel | fail
  action text,
  -- On claim: the budget unit spent (urgent | capped), or null (already paid).
  unit_kind text,
  -- On defer: when to look again. Defer, cancel, fail: the typed reason.
  not_before timestamptz,
  reason text,
  detail text
);

create or replace function public.decide_delivery(
  p_user public.delivery_user_state,
  p_unit public.delivery_unit,
  p_now timestamptz,
  p_sequence_timeout interval
) returns public.delivery_decision
language plpgsql stable set search_path = '' as $$
declare
  v_deadline timestamptz := p_unit.first_queued_at + p_sequence_timeout;
  v_daily_full boolean := p_user.daily_used >= p_user.daily_limit;
  v_hour_full boolean := p_user.hour_used >= p_user.hourly_limit;
  -- Urgent past its five a day waits like high; its deferrals say so.
  v_ceiling boolean := p_unit.priority_rank = 0 and not p_unit.paid;
  v_at timestamptz;
begin
  if p_user.opted_out then
    return ('cancel', null, null, 'opt_out', 'user opted out of SMS')::public.delivery_decision;
  elsif p_unit.expired then
    return ('expire', null, null, 'expired', 'expired before it could be sent')::public.delivery_decision;
  elsif p_unit.broken then
    return ('cancel', null, null, 'sequence_broken',
            'sequence can no longer go out whole: a member was cancelled, superseded, expired or failed'
           )::public.delivery_decision;
  elsif p_unit.is_sequence and (p_unit.in_flight or not p_unit.complete or p_unit.due_at is not null)
        and p_now >= v_deadline then
    return ('fail', null, null, 'sequence_timeout',
            'sequence could not go out whole within ' || p_sequence_timeout || ' of its first member'
           )::public.delivery_decision;
  elsif p_unit.in_flight then
    return ('defer', null,
            least(greatest(coalesce(p_unit.in_flight_until, p_now), p_now) + interval '1 minute', v_deadline),
            'sequence_wait', 'waiting for the sequence''s member in flight')::public.delivery_decision;
  elsif not p_unit.complete then
    -- enqueue_message wakes the members when another one arrives.
    return ('defer', null, v_deadline, 'sequence_wait', 'waiting for the rest of the sequence'
           )::public.delivery_decision;
  elsif p_unit.due_at is not null then
    return ('defer', null, least(p_unit.due_at, v_deadline), 'sequence_wait',
            'waiting for the sequence''s last member to be due')::public.delivery_decision;
  elsif v_ceiling and p_user.urgent_used < 5 then
    -- Urgent ignores snooze, quiet hours and caps, five a local day.
    return ('claim', 'urgent', null, null, null)::public.delivery_decision;
  elsif p_user.snoozed_until is not null then
    return ('defer', null, p_user.snoozed_until, case when v_ceiling then 'urgent_ceiling' else 'snoozed' end,
            'the user is snoozed')::public.delivery_decision;
  elsif p_user.quiet_until is not null then
    return ('defer', null, p_user.quiet_until, case when v_ceiling then 'urgent_ceiling' else 'quiet_hours' end,
            'quiet hours')::public.delivery_decision;
  elsif p_unit.can_delay and not p_unit.paid and p_user.preferred_from is not null
        and coalesce(p_unit.expires_at > p_user.preferred_from, true)
        and (not p_unit.is_sequence or p_user.preferred_from < v_deadline) then
    return ('defer', null, p_user.preferred_from, 'preferred_hours',
            'waiting for the user''s preferred hours')::public.delivery_decision;
  elsif p_unit.paid then
    return ('claim', null, null, null, null)::public.delivery_decision;
  elsif not v_daily_full and not v_hour_full then
    return ('claim', 'capped', null, null, null)::public.delivery_decision;
  end if;
  v_at := greatest(
    case when v_daily_full then public.next_local_midnight(p_now, p_user.tz) end,
    case when v_hour_full then coalesce(p_user.oldest_spend, p_now) + interval '1 hour' end
  );
  return ('defer', null,
          public.outside_quiet_hours(v_at, p_user.tz, p_user.quiet_start, p_user.quiet_end),
          case when v_ceiling then 'urgent_ceiling' when v_daily_full then 'daily_cap' else 'hourly_cap' end,
          case when v_daily_full then 'daily limit reached' else 'hourly limit reached' end
         )::public.delivery_decision;
end
$$;

-- Deferrals on record: one event when a message starts to wait for a reason,
-- none while it keeps waiting for the same one.
create or replace function public.defer_messages(
  p_ids uuid[],
  p_not_before timestamptz[],
  p_reasons text[],
  p_details text[]
) returns void
language sql security definer set search_path = '' as $$
  with deferred as (
    update public.message_queue m
       set updated_at = now(), next_attempt_at = a.not_before, wait_reason = a.reason,
           status_reason = 'deferred: ' || a.detail
      from (
        select a.*, q.wait_reason as was
          from unnest(p_ids, p_not_before, p_reasons, p_details) as a(id, not_before, reason, detail)
          join public.message_queue q on q.id = a.id
      ) a
     where m.id = a.id
    returning m.id, m.user_id, m.agent_id, a.reason, a.detail, a.not_before, a.was
  )
  insert into public.delivery_events (message_id, user_id, agent_id, kind, reason, detail, next_eligible_at)
  select id, user_id, agent_id, 'deferred', reason, detail, not_before
    from deferred where was is distinct from reason
$$;

-- Messages that leave the queue for good without being sent, on record.
create or replace function public.end_messages(
  p_ids uuid[],
  p_statuses text[],
  p_reasons text[],
  p_details text[]
) returns void
language sql security definer set search_path = '' as $$
  with ended as (
    update public.message_queue m
       set updated_at = now(), status = a.status, wait_reason = null, status_reason = a.detail,
           claim_token = null, locked_until = null
      from unnest(p_ids, p_statuses, p_reasons, p_details) as a(id, status, reason, detail)
     where m.id = a.id
    returning m.id, m.user_id, m.agent_id, a.status, a.reason, a.detail
  )
  insert into public.delivery_events (message_id, user_id, agent_id, kind, reason, detail)
  select id, user_id, agent_id, status, reason, detail from ended
$$;

-- 6. One claim --------------------------------------------------------------------------
-- Rescue lapsed leases, lock users, decide their first due units, apply. At most
-- p_limit messages are claimed and 4 x p_limit units decided, whatever the
-- backlog; every unit read gets a decision that moves it out of the due set, so
-- no row is looked at again before something can change.
drop function if exists public.claim_messages(integer, integer);
create or replace function public.claim_messages(
  p_limit integer default 100,
  p_lease_seconds integer default 120
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_now timestamptz := now();
  v_token uuid := gen_random_uuid();
  v_timeout interval := make_interval(mins => public.setting('sequence_timeout_minutes'));
  v_rescued jsonb;
  v_candidate uuid;
  v_user public.delivery_user_state;
  v_unit public.delivery_unit;
  v_decision public.delivery_decision;
  v_room integer := p_limit;
  v_budget integer := p_limit * 4;
  v_n integer;
  -- Claimed members: the unit spent on each (on a unit's first member only) and its local day.
  v_claim_ids uuid[] := '{}';
  v_claim_kinds text[] := '{}';
  v_claim_days date[] := '{}';
  -- Deferred members: until when, and why.
  v_defer_ids uuid[] := '{}';
  v_defer_until timestamptz[] := '{}';
  v_defer_reasons text[] := '{}';
  v_defer_details text[] := '{}';
  -- Members that leave the queue unsent: expired, cancelled or failed.
  v_end_ids uuid[] := '{}';
  v_end_statuses text[] := '{}';
  v_end_reasons text[] := '{}';
  v_end_details text[] := '{}';
  v_messages jsonb;
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = '22023';
  end if;
  if p_lease_seconds is null or p_lease_seconds not between 10 and 3600 then
    raise exception 'p_lease_seconds must be between 10 and 3600' using errcode = '22023';
  end if;

  v_rescued := public.rescue_lapsed_leases(v_now);

  <<users>>
  for v_candidate in select * from public.delivery_candidates(p_limit, v_now) loop
    exit users when v_room <= 0 or v_budget <= 0;
    continue users when not public.lock_delivery_user(v_candidate);
    -- Read after the lock, in a later statement: its snapshot sees what the
    -- processor that held this user last committed.
    v_user := public.delivery_user_state(v_candidate, v_now);
    for v_unit in select * from public.due_units(v_user.user_id, v_now, least(p_limit, v_budget)) loop
      exit users when v_room <= 0 or v_budget <= 0;
      v_budget := v_budget - 1;
      v_decision := public.decide_delivery(v_user, v_unit, v_now, v_timeout);
      v_n := cardinality(v_unit.member_ids);
      case v_decision.action
        when 'claim' then
          if v_n > v_room and v_room < p_limit then
            -- A sequence goes whole or waits for the next claim.
            exit users;
          end if;
          v_room := v_room - v_n;
          if v_decision.unit_kind is not null then
            v_user.daily_used := v_user.daily_used + 1;
            v_user.hour_used := v_user.hour_used + 1;
            v_user.oldest_spend := coalesce(v_user.oldest_spend, v_now);
            v_user.urgent_used := v_user.urgent_used + (v_decision.unit_kind = 'urgent')::int;
          end if;
          v_claim_ids := v_claim_ids || v_unit.member_ids;
          v_claim_kinds := v_claim_kinds || array[v_decision.unit_kind]
                           || array_fill(null::text, array[v_n - 1]);
          v_claim_days := v_claim_days || array_fill(v_user.local_day, array[v_n]);
        when 'defer' then
          v_defer_ids := v_defer_ids || v_unit.member_ids;
          v_defer_until := v_defer_until || array_fill(v_decision.not_before, array[v_n]);
          v_defer_reasons := v_defer_reasons || array_fill(v_decision.reason, array[v_n]);
          v_defer_details := v_defer_details || array_fill(v_decision.detail, array[v_n]);
        else
          v_end_ids := v_end_ids || v_unit.member_ids;
          v_end_statuses := v_end_statuses || array_fill(
            case v_decision.action when 'expire' then 'expired' when 'fail' then 'failed'
                                   else 'cancelled' end, array[v_n]);
          v_end_reasons := v_end_reasons || array_fill(v_decision.reason, array[v_n]);
          v_end_details := v_end_details || array_fill(v_decision.detail, array[v_n]);
      end case;
    end loop;
  end loop;

  -- Apply, row by primary key (every row was locked when it was read).
  with claimed as (
    update public.message_queue m
       set updated_at = now(), status = 'sending', claim_token = v_token,
           locked_until = v_now + make_interval(secs => p_lease_seconds),
           status_reason = null, wait_reason = null,
           unit_kind = coalesce(a.kind, m.unit_kind),
           unit_spent_at = case when a.kind is not null then v_now else m.unit_spent_at end,
           unit_local_date = case when a.kind is not null then a.local_day else m.unit_local_date end
      from unnest(v_claim_ids, v_claim_kinds, v_claim_days) as a(id, kind, local_day)
     where m.id = a.id
    returning m.*
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', c.id, 'user_id', c.user_id, 'to', u.phone_number, 'agent_id', c.agent_id,
           'priority', c.priority, 'message_data', c.message_data, 'final_message', c.final_message,
           'rendered_body', c.rendered_body,
           'requires_fresh_context', c.requires_fresh_context, 'created_at', c.created_at,
           'sequence_id', c.sequence_id, 'sequence_position', c.sequence_position,
           'render_attempts', c.render_attempts, 'attempts', c.attempts,
           -- A message must not arrive after this: its expiry, or the next start of
           -- quiet hours (Twilio's ValidityPeriod holds it to that).
           'valid_until', least(c.expires_at, case when c.priority <> 'urgent' then
             public.quiet_hours_end(v_now, u.timezone, u.quiet_hours_end, u.quiet_hours_start) end)
         ) order by c.user_id, coalesce(c.sequence_id, c.id), c.sequence_position), '[]'::jsonb)
    into v_messages
    from claimed c
    join public.users u on u.id = c.user_id;

  insert into public.user_message_budget as b (user_id, local_date, units_used, urgent_used)
  select m.user_id, a.local_day, count(*), count(*) filter (where a.kind = 'urgent')
    from unnest(v_claim_ids, v_claim_kinds, v_claim_days) as a(id, kind, local_day)
    join public.message_queue m on m.id = a.id
   where a.kind is not null
   group by m.user_id, a.local_day
  on conflict (user_id, local_date) do update
     set units_used = b.units_used + excluded.units_used,
         urgent_used = b.urgent_used + excluded.urgent_used,
         updated_at = now();

  perform public.defer_messages(v_defer_ids, v_defer_until, v_defer_reasons, v_defer_details);
  perform public.end_messages(v_end_ids, v_end_statuses, v_end_reasons, v_end_details);

  return jsonb_build_object(
    'claim_token', v_token,
    'messages', v_messages,
    'deferred', cardinality(v_defer_ids),
    'expired', (select count(*) from unnest(v_end_statuses) s where s = 'expired'),
    'cancelled', (select count(*) from unnest(v_end_statuses) s where s = 'cancelled'),
    'failed', (select count(*) from unnest(v_end_statuses) s where s = 'failed'),
    'requeued', (v_rescued ->> 'requeued')::int,
    'unknown', (v_rescued ->> 'unknown')::int
  );
end
$$;

-- 7. Just before one message's own Twilio request --------------------------------------
-- Marks it, and only if this claim still holds it and every rule still allows
-- it: not opted out, not expired, not superseded, not snoozed or in quiet hours
-- (unless urgent or, for quiet hours, the user is active). From here on a
-- lapsed lease means "unknown". Returns 'go', or what became of it instead:
-- cancelled, expired, deferred, or lost (no longer this claim's: superseded,
-- or its lease lapsed). The encoding and segment count are recorded with it.
drop function if exists public.start_sending(uuid, jsonb);
create or replace function public.start_sending(
  p_claim_token uuid,
  p_message_id uuid,
  p_body text,
  p_encoding text default null,
  p_segments integer default null
) returns text
language plpgsql security definer set search_path = '' as $$
declare
  v_row public.message_queue;
  v_user public.users;
  v_wait_until timestamptz;
  v_wait_reason text;
begin
  -- By primary key alone, the rest checked here: with the claim's conditions in
  -- the statement the planner took the lease index and read every leased row.
  select * into v_row from public.message_queue where id = p_message_id for update;
  if not found or v_row.claim_token is distinct from p_claim_token or v_row.status <> 'sending'
     or v_row.locked_until <= now() or v_row.send_started_at is not null then
    return 'lost';
  end if;
  select * into v_user from public.users where id = v_row.user_id;
  if v_row.priority <> 'urgent' then
    if v_user.snoozed_until > now() then
      v_wait_until := v_user.snoozed_until;
      v_wait_reason := 'snoozed';
    elsif coalesce(v_user.last_inbound_at <= now() - interval '10 minutes', true) then
      v_wait_until := public.quiet_hours_end(now(), v_user.timezone, v_user.quiet_hours_start,
                                             v_user.quiet_hours_end);
      v_wait_reason := 'quiet_hours';
    end if;
  end if;

  if v_user.sms_opted_out_at is not null then
    perform public.end_messages(array[p_message_id], array['cancelled'], array['opt_out'],
                                array['user opted out of SMS']);
  elsif v_row.expires_at <= now() then
    perform public.end_messages(array[p_message_id], array['expired'], array['expired'],
                                array['expired before it could be sent']);
  elsif v_wait_until is not null then
    update public.message_queue
       set updated_at = now(), status = 'queued', claim_token = null, locked_until = null,
           rendered_body = p_body
     where id = p_message_id;
    perform public.defer_messages(array[p_message_id], array[v_wait_until], array[v_wait_reason],
                                  array[replace(v_wait_reason, '_', ' ') || ' began before it was sent']);
  else
    update public.message_queue
       set updated_at = now(), send_started_at = now(), attempts = attempts + 1, rendered_body = p_body,
           encoding = p_encoding, segments = p_segments
     where id = p_message_id;
    return 'go';
  end if;
  perform public.refund_units(array[p_message_id]);
  return case when v_user.sms_opted_out_at is not null then 'cancelled'
              when v_row.expires_at <= now() then 'expired'
              else 'deferred' end;
end
$$;

-- A rendered body is kept as soon as it exists, so no render is paid for twice.
create or replace function public.keep_rendered_body(p_claim_token uuid, p_message_id uuid, p_body text)
returns void
language sql security definer set search_path = '' as $$
  update public.message_queue
     set updated_at = now(),
         rendered_body = case when claim_token = p_claim_token and status = 'sending' then p_body
                              else rendered_body end
   where id = p_message_id
$$;

-- 8. Outcomes ---------------------------------------------------------------------------
-- Each result: {id, outcome, twilio_sid?, from?, error_code?, error?, retry_at?}
-- outcome: sent | retry | render_retry | release | failed | opted_out | unknown | superseded |
--          render_too_long
-- A definite outcome is accepted after a lapsed lease too: the row is then
-- 'unknown', and what Twilio answered is better than a guess.
create or replace function public.complete_messages(p_claim_token uuid, p_results jsonb)
returns jsonb
language plpgsql security definer set search_path = ''
-- Called for every few sends; a custom plan of its one large statement each time
-- cost more than the statement.
set plan_cache_mode = force_generic_plan as $$
declare
  v_max_attempts constant integer := 5;
  v_refund uuid[];
  v_opted_out uuid[];
  v_counts jsonb;
begin
  if p_claim_token is null or jsonb_typeof(p_results) <> 'array' then
    raise exception 'p_claim_token and a p_results array are required' using errcode = '22023';
  end if;

  with r as (
    select (x ->> 'id')::uuid as id, x ->> 'outcome' as outcome, x ->> 'twilio_sid' as sid,
           x ->> 'from' as from_number, x ->> 'error_code' as error_code, left(x ->> 'error', 500) as error,
           coalesce((x ->> 'retry_at')::timestamptz, now()) as retry_at
      from jsonb_array_elements(p_results) x
  ), mine as (
    select r.*, m.status as was
      from public.message_queue m
      join r on r.id = m.id
     where m.claim_token = p_claim_token
       and (m.status = 'sending'
            or (m.status = 'unknown' and r.outcome in ('sent', 'failed', 'opted_out', 'retry')))
       for update of m
  ), updated as (
    update public.message_queue m
       set updated_at = now(), status = case
             when mine.outcome = 'sent' then 'sent'
             when mine.outcome = 'retry' and m.attempts >= v_max_attempts then 'failed'
             when mine.outcome = 'render_retry' and m.render_attempts + 1 >= v_max_attempts then 'failed'
             when mine.outcome in ('retry', 'render_retry', 'release') then 'queued'
             when mine.outcome in ('failed', 'opted_out', 'render_too_long') then 'failed'
             when mine.outcome = 'unknown' then 'unknown'
             when mine.outcome = 'superseded' then 'superseded'
             else m.status
           end,
           wait_reason = case
             when mine.outcome = 'retry' and m.attempts < v_max_attempts then 'send_retry'
             when mine.outcome = 'render_retry' and m.render_attempts + 1 < v_max_attempts then 'render_retry'
             when mine.outcome = 'unknown' then 'reconcile'
           end,
           status_reason = case
             when mine.outcome = 'sent' then null
             when mine.outcome = 'render_retry' and m.render_attempts + 1 >= v_max_attempts
               then 'rendering failed ' || v_max_attempts || ' times: ' || coalesce(mine.error, '')
             when mine.outcome = 'retry' and m.attempts >= v_max_attempts
               then 'Twilio refused ' || v_max_attempts || ' times: ' || coalesce(mine.error, '')
             else mine.error
           end,
           render_attempts = m.render_attempts + (mine.outcome = 'render_retry')::int,
           next_attempt_at = case when mine.outcome in ('retry', 'render_retry', 'release') then mine.retry_at
                                  else now() end,
           twilio_sid = coalesce(m.twilio_sid, mine.sid),
           error_code = coalesce(mine.error_code, m.error_code),
           sent_at = case when mine.outcome = 'sent' then coalesce(m.sent_at, now()) else m.sent_at end,
           send_started_at = case when mine.outcome in ('retry', 'render_retry', 'release')
                                  then null else m.send_started_at end,
           locked_until = null,
           claim_token = case when mine.outcome in ('retry', 'render_retry', 'release')
                              then null else m.claim_token end
      from mine
     where m.id = mine.id
    returning m.id, m.status, mine.outcome, m.user_id, m.agent_id, m.status_reason
  ), logged as (
    insert into public.messages (user_id, message_queue_id, direction, body, from_number, to_number,
                                 twilio_sid, status, encoding, segments)
    select m.user_id, m.id, 'outbound', m.rendered_body, coalesce(mine.from_number, ''),
           u.phone_number, mine.sid, 'queued', m.encoding, m.segments
      from mine
      join public.message_queue m on m.id = mine.id
      join public.users u on u.id = m.user_id
     where mine.outcome = 'sent' and mine.sid is not null
    on conflict (twilio_sid) do nothing
    returning 1
  ), recorded as (
    insert into public.delivery_events (message_id, user_id, agent_id, kind, reason, detail)
    select id, user_id, agent_id, status,
           case
             when status = 'superseded' then 'not_relevant'
             when outcome = 'retry' then 'send_retries'
             when outcome = 'render_retry' then 'render_retries'
             when outcome = 'render_too_long' then 'render_too_long'
             else 'send_refused'
           end,
           left(status_reason, 1000)
      from updated where status in ('failed', 'superseded')
  )
  select
    coalesce((select array_agg(id) from updated
               where outcome in ('retry', 'render_retry', 'release', 'failed', 'opted_out', 'superseded',
                                 'render_too_long')), '{}'),
    coalesce((select array_agg(distinct user_id) from updated where outcome = 'opted_out'), '{}'),
    (select jsonb_object_agg(outcome, n) from (
       select outcome, count(*) as n from updated group by outcome) s)
      || jsonb_build_object('logged', (select count(*) from logged))
    into v_refund, v_opted_out, v_counts;

  perform public.refund_units(v_refund);
  if cardinality(v_opted_out) > 0 then
    perform public.opt_out_user(u, 'Twilio reported the number unsubscribed (21610)')
       from unnest(v_opted_out) u;
  end if;
  return coalesce(v_counts, '{}'::jsonb);
end
$$;

-- 9. Reconciling unknown outcomes ---------------------------------------------------------
-- Twilio's statuses, as message_queue statuses.
create or replace function public.twilio_queue_status(p_status text) returns text
language sql immutable set search_path = '' as $$
  select case
    when p_status in ('accepted', 'scheduled', 'queued', 'sending', 'sent') then 'sent'
    when p_status in ('delivered', 'read', 'partially_delivered') then 'delivered'
    when p_status in ('undelivered', 'failed', 'canceled') then 'failed'
  end
$$;

-- Unknown messages whose send began at least p_after_seconds ago, leased so
-- overlapping runs ask Twilio about each once.
create or replace function public.claim_unknown_messages(
  p_limit integer,
  p_after_seconds integer,
  p_lease_seconds integer default 60
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_token uuid := gen_random_uuid();
  v_messages jsonb;
begin
  if p_limit is null or p_limit not between 1 and 1000
     or p_after_seconds is null or p_after_seconds < 0
     or p_lease_seconds is null or p_lease_seconds not between 10 and 3600 then
    raise exception 'p_limit 1 to 1000, p_after_seconds >= 0 and p_lease_seconds 10 to 3600 are required'
      using errcode = '22023';
  end if;
  with picked as (
    select id from public.message_queue
     where status = 'unknown' and next_attempt_at <= now()
       and send_started_at <= now() - make_interval(secs => p_after_seconds)
     order by next_attempt_at
     limit p_limit
       for update skip locked
  ), leased as (
    update public.message_queue m
       set updated_at = now(), claim_token = v_token,
           next_attempt_at = now() + make_interval(secs => p_lease_seconds)
      from picked p
     where m.id = p.id
    returning m.id, m.user_id, m.rendered_body, m.send_started_at, m.resends
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', l.id, 'to', u.phone_number, 'body', l.rendered_body,
           'send_started_at', l.send_started_at, 'resends', l.resends)), '[]'::jsonb)
    into v_messages
    from leased l join public.users u on u.id = l.user_id;
  return jsonb_build_object('claim_token', v_token, 'messages', v_messages);
end
$$;

-- What Twilio's message list said. Each result: {id, outcome: found | absent |
-- unknown, twilio_sid?, twilio_status?, error_code?, retry_at?}. Found: take its
-- status. Certainly absent: send again, once; absent after that: failed.
-- Not certain: ask again at retry_at.
create or replace function public.record_reconciliation(p_claim_token uuid, p_results jsonb)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_counts jsonb;
begin
  if p_claim_token is null or jsonb_typeof(p_results) <> 'array' then
    raise exception 'p_claim_token and a p_results array are required' using errcode = '22023';
  end if;
  with r as (
    select (x ->> 'id')::uuid as id, x ->> 'outcome' as outcome, x ->> 'twilio_sid' as sid,
           public.twilio_queue_status(x ->> 'twilio_status') as found_status,
           x ->> 'error_code' as error_code,
           coalesce((x ->> 'retry_at')::timestamptz, now() + interval '5 minutes') as retry_at
      from jsonb_array_elements(p_results) x
  ), updated as (
    update public.message_queue m
       set updated_at = now(),
           status = case
             when r.outcome = 'found' then coalesce(r.found_status, 'sent')
             when r.outcome = 'absent' and m.resends = 0 then 'queued'
             when r.outcome = 'absent' then 'failed'
             else m.status
           end,
           wait_reason = case when r.outcome = 'unknown' then 'reconcile' end,
           status_reason = case
             when r.outcome = 'found' then 'reconciled: found in Twilio''s message list'
             when r.outcome = 'absent' and m.resends = 0
               then 'reconciled: Twilio has no such message; sending it again, once'
             when r.outcome = 'absent' then 'reconciled: Twilio has no such message after it was sent again'
             else 'send outcome unknown; Twilio''s message list could not say yet'
           end,
           resends = m.resends + (r.outcome = 'absent' and m.resends = 0)::int,
           twilio_sid = coalesce(m.twilio_sid, r.sid),
           error_code = coalesce(r.error_code, m.error_code),
           sent_at = case when r.outcome = 'found' then coalesce(m.sent_at, m.send_started_at) else m.sent_at end,
           delivered_at = case when r.outcome = 'found' and r.found_status = 'delivered'
                               then coalesce(m.delivered_at, now()) else m.delivered_at end,
           send_started_at = case when r.outcome = 'absent' and m.resends = 0 then null else m.send_started_at end,
           claim_token = case when r.outcome = 'unknown' then m.claim_token end,
           next_attempt_at = case when r.outcome = 'unknown' then r.retry_at else now() end
      from r
     where m.id = r.id and m.claim_token = p_claim_token and m.status = 'unknown'
    returning m.id, m.user_id, m.agent_id, m.status, m.rendered_body, m.status_reason, r.outcome, r.sid
  ), recorded as (
    insert into public.delivery_events (message_id, user_id, agent_id, kind, reason, detail)
    select id, user_id, agent_id,
           case when status = 'failed' then 'failed' else 'reconciled' end,
           case when outcome = 'found' then 'found' when status = 'queued' then 'resent'
                else 'resend_absent' end,
           status_reason
      from updated where outcome in ('found', 'absent')
  ), logged as (
    insert into public.messages (user_id, message_queue_id, direction, body, from_number, to_number,
                                 twilio_sid, status)
    select u2.user_id, u2.id, 'outbound', coalesce(u2.rendered_body, ''), '', u.phone_number, u2.sid,
           u2.status
      from updated u2 join public.users u on u.id = u2.user_id
     where u2.outcome = 'found' and u2.sid is not null
    on conflict (twilio_sid) do nothing
  )
  select coalesce(jsonb_object_agg(k, n), '{}'::jsonb) into v_counts from (
    select case when outcome = 'absent' and status = 'queued' then 'resent'
                when outcome = 'absent' then 'failed' else outcome end as k,
           count(*) as n
      from updated group by 1
  ) s;
  return v_counts;
end
$$;

-- Twilio status callbacks -------------------------------------------------------
create or replace function public.apply_twilio_status(
  p_message_id uuid,
  p_twilio_sid text,
  p_status text,
  p_error_code text default null
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_mapped text := public.twilio_queue_status(p_status);
  v_row public.message_queue;
  v_was text;
begin
  if v_mapped is null then
    raise exception 'unknown Twilio message status %', p_status using errcode = '22023';
  end if;
  select status into v_was from public.message_queue where id = p_message_id for update;
  update public.message_queue m
     set updated_at = now(), status = case
           -- A final state is never taken back by a late or reordered callback.
           when m.status in ('delivered', 'failed') then m.status
           when m.status in ('sending', 'unknown', 'sent') then v_mapped
           else m.status
         end,
         wait_reason = null,
         twilio_sid = coalesce(m.twilio_sid, p_twilio_sid),
         error_code = coalesce(p_error_code, m.error_code),
         delivered_at = case when v_mapped = 'delivered' then coalesce(m.delivered_at, now()) else m.delivered_at end,
         sent_at = coalesce(m.sent_at, now()),
         status_reason = case when m.status = 'unknown' then 'reconciled from the Twilio status callback'
                              else m.status_reason end
   where m.id = p_message_id and (m.twilio_sid is null or m.twilio_sid = p_twilio_sid)
  returning m.* into v_row;
  if not found then
    return jsonb_build_object('found', false);
  end if;

  insert into public.messages (user_id, message_queue_id, direction, body, from_number, to_number,
                               twilio_sid, status, error_code)
  select v_row.user_id, v_row.id, 'outbound', coalesce(v_row.rendered_body, ''), '', u.phone_number,
         p_twilio_sid, p_status, p_error_code
    from public.users u where u.id = v_row.user_id
  on conflict (twilio_sid) do update
     set status = case when public.messages.status in ('delivered', 'undelivered', 'failed', 'read')
                       then public.messages.status else excluded.status end,
         error_code = coalesce(excluded.error_code, public.messages.error_code);

  if v_was = 'unknown' then
    insert into public.delivery_events (message_id, user_id, agent_id, kind, reason, detail)
    values (v_row.id, v_row.user_id, v_row.agent_id, 'reconciled', 'callback',
            'Twilio''s status callback said ' || p_status);
  end if;
  if p_error_code = '21610' then
    perform public.opt_out_user(v_row.user_id, 'Twilio reported the number unsubscribed (21610)');
  end if;
  return jsonb_build_object('found', true, 'status', v_row.status);
end
$$;

-- Opting out: queued messages are cancelled; a message already claimed is
-- stopped by start_sending's own check.
create or replace function public.opt_out_user(p_user_id uuid, p_reason text) returns integer
language plpgsql security definer set search_path = '' as $$
declare
  v_ids uuid[];
begin
  update public.users set sms_opted_out_at = coalesce(sms_opted_out_at, now()) where id = p_user_id;
  select coalesce(array_agg(id), '{}') into v_ids
    from public.message_queue where user_id = p_user_id and status = 'queued';
  perform public.end_messages(v_ids, array_fill('cancelled'::text, array[cardinality(v_ids)]),
                              array_fill('opt_out'::text, array[cardinality(v_ids)]),
                              array_fill(p_reason, array[cardinality(v_ids)]));
  return coalesce(cardinality(v_ids), 0);
end
$$;

-- Inbound SMS: as before, but what waits only for quiet hours is found by its
-- wait_reason, never by its prose.
create or replace function public.record_inbound_sms(
  p_from text,
  p_to text,
  p_body text,
  p_twilio_sid text
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_user public.users;
  v_keyword text := upper(btrim(coalesce(p_body, '')));
  v_action text;
  v_interaction uuid;
  v_cancelled integer := 0;
begin
  if p_from is null or p_twilio_sid is null or p_body is null then
    raise exception 'p_from, p_body and p_twilio_sid are required' using errcode = '22023';
  end if;
  insert into public.messages (user_id, direction, body, from_number, to_number, twilio_sid, status)
  select (select id from public.users where phone_number = p_from), 'inbound', p_body, p_from,
         coalesce(p_to, ''), p_twilio_sid, 'received'
  on conflict (twilio_sid) do nothing;
  if not found then
    -- Twilio retried a webhook we already handled.
    return jsonb_build_object('action', 'duplicate');
  end if;

  select * into v_user from public.users where phone_number = p_from for update;
  if not found then
    return jsonb_build_object('action', 'unknown_sender');
  end if;

  if v_keyword in ('STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'REVOKE', 'OPTOUT') then
    v_cancelled := public.opt_out_user(v_user.id, 'user opted out of SMS');
    v_action := 'opted_out';
  else
    update public.users set last_inbound_at = now() where id = v_user.id;
    -- The user is active now: what waits only for quiet hours may go.
    update public.message_queue
       set updated_at = now(), next_attempt_at = now()
     where user_id = v_user.id and status = 'queued' and wait_reason = 'quiet_hours';
    if v_keyword in ('START', 'YES', 'UNSTOP') then
      update public.users set sms_opted_out_at = null where id = v_user.id;
      v_action := 'opted_in';
    elsif v_keyword in ('HELP', 'INFO') then
      v_action := 'help';
    else
      insert into public.interactions (user_id, call_type, channel, transcript)
      values (v_user.id, 'sms', 'sms', left(p_body, 200000))
      returning id into v_interaction;
      v_action := 'stored';
    end if;
  end if;
  return jsonb_build_object('action', v_action, 'user_id', v_user.id,
                            'interaction_id', v_interaction, 'cancelled', v_cancelled);
end
$$;

-- Observability: every count through a partial index, never the whole queue.
create or replace view public.queue_health with (security_invoker = true) as
select
  (select count(*) from public.message_queue where status = 'queued') as queued,
  (select count(*) from public.message_queue where status = 'queued' and next_attempt_at <= now()) as due,
  (select min(next_attempt_at) from public.message_queue
    where status = 'queued' and next_attempt_at <= now()) as oldest_due_at,
  (select count(*) from public.message_queue where status = 'sending') as sending,
  (select count(*) from public.message_queue where status = 'unknown') as unknown,
  (select count(*) from public.message_queue
    where status = 'failed' and updated_at > now() - interval '24 hours') as failed_24h,
  (select max(started_at) from public.processor_runs) as last_run_at;
revoke all on public.queue_health from anon, authenticated;
grant select on public.queue_health to service_role;

do $$
declare
  f text;
begin
  foreach f in array array[
    'public.setting(text)',
    'public.refund_units(uuid[])',
    'public.rescue_lapsed_leases(timestamptz)',
    'public.delivery_candidates(integer, timestamptz)',
    'public.lock_delivery_user(uuid)',
    'public.delivery_user_state(uuid, timestamptz)',
    'public.due_units(uuid, timestamptz, integer)',
    'public.decide_delivery(public.delivery_user_state, public.delivery_unit, timestamptz, interval)',
    'public.claim_messages(integer, integer)',
    'public.start_sending(uuid, uuid, text, text, integer)',
    'public.preferred_window_start(timestamptz, text, time, time, time, time)',
    'public.defer_messages(uuid[], timestamptz[], text[], text[])',
    'public.end_messages(uuid[], text[], text[], text[])',
    'public.keep_rendered_body(uuid, uuid, text)',
    'public.complete_messages(uuid, jsonb)',
    'public.twilio_queue_status(text)',
    'public.claim_unknown_messages(integer, integer, integer)',
    'public.record_reconciliation(uuid, jsonb)',
    'public.apply_twilio_status(uuid, text, text, text)',
    'public.opt_out_user(uuid, text)',
    'public.record_inbound_sms(text, text, text, text)'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
