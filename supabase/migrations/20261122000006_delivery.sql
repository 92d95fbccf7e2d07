-- Delivery (SPEC section 5): claiming due messages under budgets and quiet
-- hours, recording outcomes, Twilio callbacks and inbound SMS. Every decision
-- is made here, in the user's time zone, inside the transaction that claims.

-- Budget units --------------------------------------------------------------
-- Gives back the unit a message spent (it did not reach the user).
create or replace function public.refund_units(p_ids uuid[]) returns void
language sql security definer set search_path = '' as $$
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
     set units_used = greatest(b.units_used - x.capped, 0),
         urgent_used = greatest(b.urgent_used - x.urgent, 0),
         updated_at = now()
    from (
      select user_id, unit_local_date,
             count(*) filter (where unit_kind = 'capped')::int as capped,
             count(*) filter (where unit_kind = 'urgent')::int as urgent
        from spent group by user_id, unit_local_date
    ) x
   where b.user_id = x.user_id and b.local_date = x.unit_local_date
$$;

-- Opting out ----------------------------------------------------------------
create or replace function public.opt_out_user(p_user_id uuid, p_reason text) returns integer
language plpgsql security definer set search_path = '' as $$
declare
  v_cancelled integer;
begin
  update public.users set sms_opted_out_at = coalesce(sms_opted_out_at, now()) where id = p_user_id;
  update public.message_queue
     set updated_at = now(), status = 'cancelled', status_reason = p_reason, claim_token = null, locked_until = null
   where user_id = p_user_id and status = 'queued';
  get diagnostics v_cancelled = row_count;
  return v_cancelled;
end
$$;

-- Claiming --------------------------------------------------------------------
-- One call, one transaction: rescue lapsed leases, lock users with due work
-- (SKIP LOCKED, so overlapping processors share the users), decide every due
-- message of those users, spend budget units for what is claimed, and store the
-- next eligible instant of what is deferred. Returns the claimed messages.
create or replace function public.claim_messages(
  p_limit integer default 100,
  p_lease_seconds integer default 120
) returns jsonb
language plpgsql security definer set search_path = ''
-- Its statements depend on arrays, not on values a custom plan could exploit,
-- so planning them again on every call is pure cost.
set plan_cache_mode = force_generic_plan as $$
declare
  v_now timestamptz := now();
  v_token uuid := gen_random_uuid();
  v_requeued uuid[];
  v_unknown integer;
  v_users uuid[] := '{}';
  v_candidate record;
  v_due integer := 0;
  v_ids uuid[];
  v_user_ids uuid[];
  v_actions text[];
  v_kinds text[];
  v_days date[];
  v_defer_to timestamptz[];
  v_reasons text[];
  v_messages jsonb;
  v_result jsonb;
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = '22023';
  end if;
  if p_lease_seconds is null or p_lease_seconds not between 10 and 3600 then
    raise exception 'p_lease_seconds must be between 10 and 3600' using errcode = '22023';
  end if;

  -- 1. Lapsed leases. Before the send started nothing left: requeue and give
  -- the unit back. After it, the outcome is unknown: never re-send.
  with lapsed as (
    select id, send_started_at from public.message_queue
     where status = 'sending' and locked_until < v_now
     for update skip locked
  ), requeued as (
    update public.message_queue m
       set updated_at = now(), status = 'queued', locked_until = null, claim_token = null, next_attempt_at = v_now,
           status_reason = 'lease expired before sending; requeued'
      from lapsed l
     where m.id = l.id and l.send_started_at is null
    returning m.id
  ), unknown as (
    update public.message_queue m
       set updated_at = now(), status = 'unknown', locked_until = null,
           status_reason = 'the processor stopped after the send started; awaiting the Twilio status callback'
      from lapsed l
     where m.id = l.id and l.send_started_at is not null
    returning m.id
  )
  select coalesce((select array_agg(id) from requeued), '{}'), (select count(*)::int from unknown)
    into v_requeued, v_unknown;
  if cardinality(v_requeued) > 0 then
    perform public.refund_units(v_requeued);
  end if;

  -- 2. Users with due work that no other processor holds, oldest due first,
  -- until their due messages fill the batch. Users another processor holds are
  -- skipped, so overlapping runs share the work instead of waiting.
  for v_candidate in
    select g.user_id
      from (
        select d.user_id, min(d.next_attempt_at) as first_due
          from (
            select user_id, next_attempt_at from public.message_queue
             where status = 'queued' and next_attempt_at <= v_now
             order by next_attempt_at
             limit p_limit * 4
          ) d
         group by d.user_id
      ) g
     order by g.first_due, g.user_id
  loop
    perform 1 from public.users where id = v_candidate.user_id for no key update skip locked;
    if found then
      v_users := v_users || v_candidate.user_id;
      v_due := v_due + (select count(*)::int from public.message_queue
                         where user_id = v_candidate.user_id and status = 'queued'
                           and next_attempt_at <= v_now);
      exit when v_due >= p_limit;
    end if;
  end loop;

  -- 4. Decide: one statement, every rule, in each user's time zone.
  with ctx as materialized (
    select u.id as user_id, u.timezone as tz, u.quiet_hours_start as qs, u.quiet_hours_end as qe,
           u.daily_message_limit as daily_limit, u.hourly_message_limit as hourly_limit,
           u.sms_opted_out_at is not null as opted_out,
           (v_now at time zone u.timezone)::date as local_day,
           case when coalesce(u.last_inbound_at > v_now - interval '10 minutes', false) then null
                else public.quiet_hours_end(v_now, u.timezone, u.quiet_hours_start, u.quiet_hours_end)
           end as quiet_until,
           coalesce(b.units_used, 0) as daily_used,
           coalesce(b.urgent_used, 0) as urgent_used,
           h.hour_used, h.oldest_spend
      from public.users u
      left join public.user_message_budget b
        on b.user_id = u.id and b.local_date = (v_now at time zone u.timezone)::date
     cross join lateral (
        select count(*)::int as hour_used, min(q.unit_spent_at) as oldest_spend
          from public.message_queue q
         where q.user_id = u.id and q.unit_kind = 'capped'
           and q.unit_spent_at > v_now - interval '1 hour'
     ) h
     where u.id = any(v_users)
  ), due as materialized (
    -- Through the partial index on queued rows: history never gets read. Locked,
    -- so they stay as they are until this transaction decides.
    select m.id, m.user_id, coalesce(m.sequence_id, m.id) as unit_id, m.sequence_id,
           m.sequence_position, m.sequence_total, m.status, m.priority_rank, m.scheduled_for,
           m.created_at, m.expires_at, m.next_attempt_at, m.unit_kind
      from public.message_queue m
     where m.user_id = any(v_users) and m.status = 'queued' and m.next_attempt_at <= v_now
       for update of m
  ), siblings as materialized (
    -- The other members of their sequences, whatever their state.
    select m.id, m.user_id, m.sequence_id as unit_id, m.sequence_id, m.sequence_position,
           m.sequence_total, m.status, m.priority_rank, m.scheduled_for, m.created_at,
           m.expires_at, m.next_attempt_at, m.unit_kind
      from public.message_queue m
     where m.sequence_id in (select sequence_id from due where sequence_id is not null)
       and m.id not in (select id from due)
       for update of m
  ), members as (
    select * from due
    union all
    select * from siblings
  ), units as (
    select user_id, unit_id,
           min(priority_rank) as prank,
           min(scheduled_for) as sched,
           -- Equal schedules go in the order they were queued.
           min(created_at) as queued_at,
           bool_or(status = 'queued' and coalesce(expires_at <= v_now, false)) as expired,
           bool_or(status in ('cancelled', 'superseded', 'expired', 'failed')) as broken,
           bool_or(status in ('sending', 'unknown')) as in_flight,
           count(*) filter (where status = 'queued' and next_attempt_at <= v_now) as due_n,
           count(*) filter (where status = 'queued') as queued_n,
           count(*) filter (where status in ('sent', 'delivered')) as sent_n,
           max(coalesce(sequence_total, 1)) as total,
           bool_or(unit_kind is not null) as paid
      from members
     group by user_id, unit_id
  ), ready as (
    select n.*, c.tz, c.qs, c.qe, c.local_day, c.quiet_until, c.daily_used, c.urgent_used,
           c.daily_limit, c.hourly_limit, c.hour_used, c.oldest_spend,
           -- Urgent takes its own allowance of 5 a local day; past it, it waits like high.
           (n.prank = 0 and not n.paid and c.urgent_used + row_number() over (
              partition by n.user_id, (n.prank = 0 and not n.paid)
              order by n.sched, n.queued_at, n.unit_id
            ) <= 5) as urgent_ok
      from units n join ctx c using (user_id)
     where not c.opted_out and not n.expired and not n.broken and not n.in_flight
       and n.queued_n + n.sent_n = n.total and n.due_n = n.queued_n
  ), ranked as (
    select r.*,
           row_number() over (
             partition by r.user_id, (r.urgent_ok or r.paid)
             order by case when r.prank = 0 then 1 else r.prank end, r.sched, r.queued_at,
                      r.unit_id
           ) as capped_rank
      from ready r
  ), kinds as (
    select r.*,
           case
             when r.urgent_ok then 'urgent'
             when r.quiet_until is not null then null
             when r.paid then 'paid'
             when r.daily_used + r.capped_rank <= r.daily_limit
              and r.hour_used + r.capped_rank <= r.hourly_limit then 'capped'
           end as kind
      from ranked r
  ), decided as materialized (
    select k.user_id, k.unit_id, k.local_day, k.sched, k.kind,
           -- Quiet hours first: nothing capped goes before they end, and the caps
           -- are judged again then. Only computed for what waits.
           case when k.kind is null then coalesce(k.quiet_until, public.outside_quiet_hours(greatest(
             case when k.daily_used + k.capped_rank > k.daily_limit
                  then public.next_local_midnight(v_now, k.tz) end,
             case when k.hour_used + k.capped_rank > k.hourly_limit
                  then coalesce(k.oldest_spend, v_now) + interval '1 hour' end
           ), k.tz, k.qs, k.qe)) end as defer_to,
           case
             when k.quiet_until is not null then 'quiet hours'
             when k.daily_used + k.capped_rank > k.daily_limit then 'daily limit reached'
             else 'hourly limit reached'
           end as defer_reason
      from kinds k
  ), chosen as materialized (
    -- Whole users, in order, until the batch is full.
    select d.*, d.kind is not null and coalesce(t.before < p_limit, false) as claim
      from decided d
      left join (
        select user_id, sum(count(*)) over (order by min(sched), user_id) - count(*) as before
          from decided where kind is not null group by user_id
      ) t using (user_id)
  ), actions as (
    -- One decision per queued member.
    select mb.id, mb.user_id,
           case
             when d.claim then 'claim'
             when c.opted_out then 'cancel'
             when n.in_flight then null
             when n.expired then 'expire'
             when n.broken then 'cancel'
             when n.queued_n + n.sent_n <> n.total or n.due_n <> n.queued_n then
               case when mb.next_attempt_at <= v_now then 'wait' end
             when d.kind is null then 'defer'
           end as action,
           case when d.claim then d.kind end as kind, d.local_day, d.defer_to,
           -- A sequence spends its unit on its first member only.
           mb.unit_kind is null and coalesce(mb.sequence_position, 1) = 1 as spends,
           case
             when c.opted_out then 'user opted out of SMS'
             when n.expired then 'expired before it could be sent'
             when n.broken then 'sequence can no longer go out whole: a member was cancelled, superseded, expired or failed'
             else 'deferred: ' || d.defer_reason
           end as reason
      from members mb
      join units n on n.unit_id = mb.unit_id and n.user_id = mb.user_id
      join ctx c on c.user_id = mb.user_id
      left join chosen d on d.unit_id = mb.unit_id and d.user_id = mb.user_id
     where mb.status = 'queued'
  )
  select coalesce(array_agg(id), '{}'), coalesce(array_agg(user_id), '{}'),
         coalesce(array_agg(action), '{}'),
         coalesce(array_agg(case when spends then kind end), '{}'),
         coalesce(array_agg(local_day), '{}'), coalesce(array_agg(defer_to), '{}'),
         coalesce(array_agg(reason), '{}')
    into v_ids, v_user_ids, v_actions, v_kinds, v_days, v_defer_to, v_reasons
    from actions where action is not null;

  -- 5. Apply, row by primary key. The rows were locked when decided, so they are
  -- still queued; no status filter, which would tempt the planner onto a partial
  -- index.
  with claimed as (
    update public.message_queue m
       set updated_at = now(), status = 'sending', claim_token = v_token,
           locked_until = v_now + make_interval(secs => p_lease_seconds),
           status_reason = null,
           unit_kind = case when a.kind in ('urgent', 'capped') then a.kind else m.unit_kind end,
           unit_spent_at = case when a.kind in ('urgent', 'capped') then v_now else m.unit_spent_at end,
           unit_local_date = case when a.kind in ('urgent', 'capped') then a.local_day
                                  else m.unit_local_date end
      from unnest(v_ids, v_actions, v_kinds, v_days) as a(id, action, kind, local_day)
     where a.action = 'claim' and m.id = a.id
    returning m.*
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', c.id, 'user_id', c.user_id, 'to', u.phone_number, 'agent_id', c.agent_id,
           'priority', c.priority, 'message_data', c.message_data, 'final_message', c.final_message,
           'requires_fresh_context', c.requires_fresh_context, 'created_at', c.created_at,
           'sequence_id', c.sequence_id, 'sequence_position', c.sequence_position,
           'render_attempts', c.render_attempts, 'attempts', c.attempts
         ) order by c.user_id, coalesce(c.sequence_id, c.id), c.sequence_position), '[]'::jsonb)
    into v_messages
    from claimed c
    join public.users u on u.id = c.user_id;

  insert into public.user_message_budget as b (user_id, local_date, units_used, urgent_used)
  select a.user_id, a.local_day,
         count(*) filter (where a.kind = 'capped'), count(*) filter (where a.kind = 'urgent')
    from unnest(v_user_ids, v_actions, v_kinds, v_days) as a(user_id, action, kind, local_day)
   where a.action = 'claim' and a.kind in ('capped', 'urgent')
   group by a.user_id, a.local_day
  on conflict (user_id, local_date) do update
     set units_used = b.units_used + excluded.units_used,
         urgent_used = b.urgent_used + excluded.urgent_used,
         updated_at = now();

  update public.message_queue m
     set updated_at = now(), next_attempt_at = case a.action when 'wait' then v_now + interval '1 minute' else a.defer_to end,
         status_reason = case a.action when 'wait' then 'waiting for the rest of the sequence'
                                       else a.reason end
    from unnest(v_ids, v_actions, v_defer_to, v_reasons) as a(id, action, defer_to, reason)
   where a.action in ('defer', 'wait') and m.id = a.id;

  update public.message_queue m
     set updated_at = now(), status = case a.action when 'expire' then 'expired' else 'cancelled' end,
         status_reason = a.reason
    from unnest(v_ids, v_actions, v_reasons) as a(id, action, reason)
   where a.action in ('expire', 'cancel') and m.id = a.id;

  select jsonb_build_object(
    'claim_token', v_token,
    'messages', v_messages,
    'deferred', (select count(*) from unnest(v_actions) a where a in ('defer', 'wait')),
    'expired', (select count(*) from unnest(v_actions) a where a = 'expire'),
    'cancelled', (select count(*) from unnest(v_actions) a where a = 'cancel'),
    'requeued', coalesce(array_length(v_requeued, 1), 0),
    'unknown', v_unknown
  ) into v_result;
  return v_result;
end
$$;

-- Just before the Twilio request leaves: only messages this claim still holds.
-- From here on a lapsed lease means "unknown", never "send again".
create or replace function public.start_sending(p_claim_token uuid, p_items jsonb)
returns uuid[]
language sql security definer set search_path = '' as $$
  with items as (
    select (i ->> 'id')::uuid as id, i ->> 'body' as body
      from jsonb_array_elements(p_items) i
  ), started as (
    update public.message_queue m
       set updated_at = now(), send_started_at = now(), attempts = m.attempts + 1, rendered_body = items.body
      from items
     where m.id = items.id and m.claim_token = p_claim_token and m.status = 'sending'
       and m.locked_until > now() and m.send_started_at is null
    returning m.id
  )
  select coalesce(array_agg(id), '{}') from started
$$;

-- Outcomes of a claim, recorded in one call. Each result:
-- {id, outcome, twilio_sid?, from?, error_code?, error?, retry_at?}
-- outcome: sent | retry | render_retry | release | failed | opted_out | unknown | superseded
create or replace function public.complete_messages(p_claim_token uuid, p_results jsonb)
returns jsonb
language plpgsql security definer set search_path = '' as $$
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
    select r.id, r.outcome, r.sid, r.from_number, r.error_code, r.error, r.retry_at
      from public.message_queue m
      join r on r.id = m.id
     where m.claim_token = p_claim_token
       for update of m
  ), updated as (
    update public.message_queue m
       set updated_at = now(), status = case
             when mine.outcome = 'sent' then case when m.status in ('sending', 'unknown') then 'sent' else m.status end
             when m.status <> 'sending' then m.status
             when mine.outcome in ('retry') and m.attempts >= v_max_attempts then 'failed'
             when mine.outcome = 'render_retry' and m.render_attempts + 1 >= v_max_attempts then 'failed'
             when mine.outcome in ('retry', 'render_retry', 'release') then 'queued'
             when mine.outcome in ('failed', 'opted_out') then 'failed'
             when mine.outcome = 'unknown' then 'unknown'
             when mine.outcome = 'superseded' then 'superseded'
             else m.status
           end,
           status_reason = case
             when mine.outcome = 'sent' then m.status_reason
             when mine.outcome = 'render_retry' and m.render_attempts + 1 >= v_max_attempts
               then 'rendering failed ' || v_max_attempts || ' times: ' || coalesce(mine.error, '')
             when mine.outcome = 'retry' and m.attempts >= v_max_attempts
               then 'Twilio refused ' || v_max_attempts || ' times: ' || coalesce(mine.error, '')
             else mine.error
           end,
           render_attempts = m.render_attempts + (mine.outcome = 'render_retry')::int,
           next_attempt_at = case when mine.outcome in ('retry', 'render_retry', 'release')
                                  then mine.retry_at else m.next_attempt_at end,
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
       and (mine.outcome = 'sent' or m.status = 'sending')
    returning m.id, m.status, mine.outcome, m.user_id
  ), logged as (
    insert into public.messages (user_id, message_queue_id, direction, body, from_number, to_number,
                                 twilio_sid, status)
    select m.user_id, m.id, 'outbound', m.rendered_body, coalesce(mine.from_number, ''),
           u.phone_number, mine.sid,
           case m.status when 'delivered' then 'delivered' when 'failed' then 'failed' else 'queued' end
      from mine
      join public.message_queue m on m.id = mine.id
      join public.users u on u.id = m.user_id
     where mine.outcome = 'sent' and mine.sid is not null
    on conflict (twilio_sid) do nothing
    returning 1
  )
  select
    coalesce((select array_agg(id) from updated
               where outcome in ('retry', 'render_retry', 'release', 'failed', 'opted_out', 'superseded')), '{}'),
    coalesce((select array_agg(distinct user_id) from updated where outcome = 'opted_out'), '{}'),
    (select jsonb_object_agg(outcome, n) from (
       select outcome, count(*) as n from updated group by outcome) s)
      || jsonb_build_object('logged', (select count(*) from logged))
    into v_refund, v_opted_out, v_counts;

  perform public.refund_units(v_refund);
  perform public.opt_out_user(u, 'Twilio reported the number unsubscribed (21610)')
     from unnest(v_opted_out) u;
  return coalesce(v_counts, '{}'::jsonb);
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
  v_mapped text := case
    when p_status in ('accepted', 'scheduled', 'queued', 'sending', 'sent') then 'sent'
    when p_status in ('delivered', 'read') then 'delivered'
    when p_status in ('undelivered', 'failed', 'canceled') then 'failed'
  end;
  v_row public.message_queue;
begin
  if v_mapped is null then
    raise exception 'unknown Twilio message status %', p_status using errcode = '22023';
  end if;
  update public.message_queue m
     set updated_at = now(), status = case
           -- A final state is never taken back by a late or reordered callback.
           when m.status in ('delivered', 'failed') then m.status
           when m.status in ('sending', 'unknown', 'sent') then v_mapped
           else m.status
         end,
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

  if p_error_code = '21610' then
    perform public.opt_out_user(v_row.user_id, 'Twilio reported the number unsubscribed (21610)');
  end if;
  return jsonb_build_object('found', true, 'status', v_row.status);
end
$$;

-- Inbound SMS -------------------------------------------------------------------------
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
     where user_id = v_user.id and status = 'queued' and status_reason = 'deferred: quiet hours';
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

-- Observability -----------------------------------------------------------------------
create table public.processor_runs (
  id bigint generated always as identity primary key,
  source text not null,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  summary jsonb not null default '{}',
  error text
);
create index processor_runs_started_idx on public.processor_runs (started_at desc);
alter table public.processor_runs enable row level security;
revoke all on table public.processor_runs from anon, authenticated;
grant all on table public.processor_runs to service_role;
create policy processor_runs_no_client_access on public.processor_runs
  as restrictive for all to anon, authenticated using (false) with check (false);

-- Queue depth, the oldest due message and failure counts, one query away.
create view public.queue_health with (security_invoker = true) as
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
    'public.refund_units(uuid[])',
    'public.opt_out_user(uuid, text)',
    'public.claim_messages(integer, integer)',
    'public.start_sending(uuid, jsonb)',
    'public.complete_messages(uuid, jsonb)',
    'public.apply_twilio_status(uuid, text, text, text)',
    'public.record_inbound_sms(text, text, text, text)'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
