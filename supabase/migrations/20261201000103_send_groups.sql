-- Sends marked in groups (issue 7: drain throughput). A processor marks the
-- messages whose Twilio requests leave together in one statement, instead of a
-- round trip each. Each message is still marked just before its own request
-- (its request leaves as soon as this returns, and a message whose request
-- does not leave now is not in the group), and every rule is still checked
-- again for each one here. Replaces start_sending(uuid, uuid, text, text, integer).

drop function if exists public.start_sending(uuid, uuid, text, text, integer);

-- What the rules say of a message at the instant its request would leave:
-- 'cancelled' (opted out), 'expired', 'deferred' until wait_until for
-- wait_reason (snoozed, or quiet hours unless urgent or the user wrote in the
-- last 10 minutes), or 'go'. Reads nothing.
create or replace function public.send_time_verdict(
  p_priority text,
  p_expires_at timestamptz,
  p_opted_out_at timestamptz,
  p_snoozed_until timestamptz,
  p_last_inbound_at timestamptz,
  p_timezone text,
  p_quiet_start time,
  p_quiet_end time,
  p_now timestamptz,
  out verdict text,
  out wait_until timestamptz,
  out wait_reason text
)
language plpgsql stable set search_path = '' as $$
begin
  if p_opted_out_at is not null then
    verdict := 'cancelled';
  elsif p_expires_at <= p_now then
    verdict := 'expired';
  else
    if p_priority <> 'urgent' then
      if p_snoozed_until > p_now then
        wait_until := p_snoozed_until;
        wait_reason := 'snoozed';
      elsif coalesce(p_last_inbound_at <= p_now - interval '10 minutes', true) then
        wait_until := public.quiet_hours_end(p_now, p_timezone, p_quiet_start, p_quiet_end);
        wait_reason := case when wait_until is not null then 'quiet_hours' end;
      end if;
    end if;
    verdict := case when wait_until is null then 'go' else 'deferred' end;
  end if;
end
$$;

-- p_items: [{claim_token, id, body, encoding?, segments?}], the messages whose
-- requests are about to leave. Marks each that its claim still holds and the
-- rules allow; from then on a lapsed lease means "unknown". Returns
-- {id: verdict}: 'go', or what became of it instead: 'cancelled', 'expired',
-- 'deferred' (back to queued until the wait is over), or 'lost' (no longer
-- this claim's: superseded, its lease lapsed, or its send already began).
create or replace function public.start_sending(p_items jsonb) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_now timestamptz := now();
  v_verdicts jsonb;
  v_go jsonb;
  v_go_ids uuid[];
  v_defer jsonb;
  v_defer_ids uuid[];
  v_defer_until timestamptz[];
  v_defer_reasons text[];
  v_end uuid[];
  v_end_statuses text[];
begin
  if jsonb_typeof(p_items) is distinct from 'array' then
    raise exception 'p_items must be an array of {claim_token, id, body}' using errcode = '22023';
  end if;
  -- One statement locks each row (in key order), reads it as it is once locked,
  -- and judges it. Each row is found by its key: LIMIT keeps the lookups lateral,
  -- so no statistics turn them into scans of a whole table.
  with item as (
    select * from jsonb_to_recordset(p_items)
      as i(claim_token uuid, id uuid, body text, encoding text, segments integer)
     order by i.id
  ), judged as (
    select i.id, i.body, i.encoding, i.segments, v.wait_until, v.wait_reason,
           case when m.id is null or m.claim_token is distinct from i.claim_token
                     or m.status <> 'sending' or m.locked_until <= v_now
                     or m.send_started_at is not null then 'lost'
                else v.verdict end as verdict
      from item i
      left join lateral (
        select * from public.message_queue q where q.id = i.id limit 1 for update) m on true
      left join lateral (
        select * from public.users s where s.id = m.user_id limit 1) u on true
      left join lateral public.send_time_verdict(
        m.priority, m.expires_at, u.sms_opted_out_at, u.snoozed_until, u.last_inbound_at,
        u.timezone, u.quiet_hours_start, u.quiet_hours_end, v_now) v on true
  )
  select coalesce(jsonb_object_agg(id, verdict), '{}'::jsonb),
         jsonb_agg(jsonb_build_object('id', id, 'body', body, 'encoding', encoding,
                                      'segments', segments)) filter (where verdict = 'go'),
         array_agg(id) filter (where verdict = 'go'),
         jsonb_agg(jsonb_build_object('id', id, 'body', body)) filter (where verdict = 'deferred'),
         array_agg(id) filter (where verdict = 'deferred'),
         array_agg(wait_until) filter (where verdict = 'deferred'),
         array_agg(wait_reason) filter (where verdict = 'deferred'),
         array_agg(id) filter (where verdict in ('cancelled', 'expired')),
         array_agg(verdict) filter (where verdict in ('cancelled', 'expired'))
    into v_verdicts, v_go, v_go_ids, v_defer, v_defer_ids, v_defer_until, v_defer_reasons, v_end,
         v_end_statuses
    from judged;

  if v_go is not null then
    -- updated_at is left alone: no indexed column changes, so the update can stay
    -- on its page (HOT) and touches none of the table's indexes.
    update public.message_queue m
       set send_started_at = v_now, attempts = m.attempts + 1, rendered_body = g.body,
           encoding = g.encoding, segments = g.segments
      from jsonb_to_recordset(v_go) as g(id uuid, body text, encoding text, segments integer)
     where m.id = g.id and m.id = any(v_go_ids);
  end if;
  if v_defer is not null then
    update public.message_queue m
       set updated_at = now(), status = 'queued', claim_token = null, locked_until = null,
           rendered_body = g.body
      from jsonb_to_recordset(v_defer) as g(id uuid, body text)
     where m.id = g.id and m.id = any(v_defer_ids);
    perform public.defer_messages(v_defer_ids, v_defer_until, v_defer_reasons,
      array(select replace(r, '_', ' ') || ' began before it was sent' from unnest(v_defer_reasons) r));
  end if;
  if v_end is not null then
    perform public.end_messages(v_end, v_end_statuses,
      array(select case s when 'cancelled' then 'opt_out' else 'expired' end from unnest(v_end_statuses) s),
      array(select case s when 'cancelled' then 'user opted out of SMS'
                          else 'expired before it could be sent' end from unnest(v_end_statuses) s));
  end if;
  if v_defer_ids is not null or v_end is not null then
    perform public.refund_units(coalesce(v_defer_ids, '{}') || coalesce(v_end, '{}'));
  end if;
  return v_verdicts;
end
$$;

-- One claim, as before, with each row found by its key (the keys are in the
-- statement, so a table the statistics call small is not scanned whole) ------------
-- Rescue lapsed leases, lock users, decide their first due units, apply. At most
-- p_limit messages are claimed and 4 x p_limit units decided, whatever the
-- backlog; every unit read gets a decision that moves it out of the due set, so
-- no row is looked at again before something can change.
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
     where m.id = a.id and m.id = any(v_claim_ids)
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
    cross join lateral (select * from public.users s where s.id = c.user_id limit 1) u;

  insert into public.user_message_budget as b (user_id, local_date, units_used, urgent_used)
  select m.user_id, a.local_day, count(*), count(*) filter (where a.kind = 'urgent')
    from unnest(v_claim_ids, v_claim_kinds, v_claim_days) as a(id, kind, local_day)
    join public.message_queue m on m.id = a.id and m.id = any(v_claim_ids)
   where a.kind is not null
   group by m.user_id, a.local_day
  on conflict (user_id, local_date) do update
     set units_used = b.units_used + excluded.units_used,
         urgent_used = b.urgent_used + excluded.urgent_used,
         updated_at = now();

  -- Most claims defer and end nothing: no statement for them.
  if cardinality(v_defer_ids) > 0 then
    perform public.defer_messages(v_defer_ids, v_defer_until, v_defer_reasons, v_defer_details);
  end if;
  if cardinality(v_end_ids) > 0 then
    perform public.end_messages(v_end_ids, v_end_statuses, v_end_reasons, v_end_details);
  end if;

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

-- Outcomes, as before, with each message found by its key ----------------------------
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
  v_ids uuid[];
begin
  if p_claim_token is null or jsonb_typeof(p_results) <> 'array' then
    raise exception 'p_claim_token and a p_results array are required' using errcode = '22023';
  end if;

  -- Keys the planner can see, so the update finds each row by its key however
  -- few rows the table's statistics claim.
  v_ids := array(select (x ->> 'id')::uuid from jsonb_array_elements(p_results) x);
  with r as (
    select (x ->> 'id')::uuid as id, x ->> 'outcome' as outcome, x ->> 'twilio_sid' as sid,
           x ->> 'from' as from_number, x ->> 'error_code' as error_code, left(x ->> 'error', 500) as error,
           coalesce((x ->> 'retry_at')::timestamptz, now()) as retry_at
      from jsonb_array_elements(p_results) x
  ), mine as (
    -- Each row by its key: LIMIT keeps the lookup lateral, so the plan never scans every
    -- leased row to find these few.
    select r.*, m.status as was
      from r
      cross join lateral (
        select q.status from public.message_queue q
         where q.id = r.id and q.claim_token = p_claim_token
           and (q.status = 'sending'
                or (q.status = 'unknown' and r.outcome in ('sent', 'failed', 'opted_out', 'retry')))
         limit 1
           for update) m
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
     where m.id = mine.id and m.id = any(v_ids)
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

do $$
declare
  f text;
begin
  foreach f in array array[
    'public.send_time_verdict(text, timestamptz, timestamptz, timestamptz, timestamptz, text, time, time, timestamptz)',
    'public.start_sending(jsonb)'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
