-- Outcomes written in groups across claims (issue 7: drain throughput). A
-- processor claims its next batch while the last sends of this one are still
-- going, so the outcomes it has to write at one time belong to two claims; one
-- call now takes them all, each result naming its own claim. A call has a large
-- fixed cost (4,000 outcomes: 798 ms in calls of 20, 425 ms in calls of 100).
-- Replaces complete_messages(uuid, jsonb).

drop function if exists public.complete_messages(uuid, jsonb);

-- Each result: {claim_token, id, outcome, twilio_sid?, from?, error_code?, error?, retry_at?}
-- outcome: sent | retry | render_retry | release | failed | opted_out | unknown | superseded |
--          render_too_long
-- A result counts only for a row its claim still holds. A definite outcome is
-- accepted after a lapsed lease too: the row is then 'unknown', and what Twilio
-- answered is better than a guess.
create or replace function public.complete_messages(p_results jsonb)
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
  if jsonb_typeof(p_results) is distinct from 'array' then
    raise exception 'p_results must be an array of {claim_token, id, outcome}' using errcode = '22023';
  end if;

  -- Keys the planner can see, so the update finds each row by its key however
  -- few rows the table's statistics claim.
  v_ids := array(select (x ->> 'id')::uuid from jsonb_array_elements(p_results) x);
  with r as (
    select (x ->> 'claim_token')::uuid as claim_token, (x ->> 'id')::uuid as id,
           x ->> 'outcome' as outcome, x ->> 'twilio_sid' as sid,
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
         where q.id = r.id and q.claim_token = r.claim_token
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
    (select array_agg(id) from updated
      where outcome in ('retry', 'render_retry', 'release', 'failed', 'opted_out', 'superseded',
                        'render_too_long')),
    (select array_agg(distinct user_id) from updated where outcome = 'opted_out'),
    (select jsonb_object_agg(outcome, n) from (
       select outcome, count(*) as n from updated group by outcome) s)
      || jsonb_build_object('logged', (select count(*) from logged))
    into v_refund, v_opted_out, v_counts;

  -- Most outcomes are sends: nothing to give back, nobody opted out, no statement for them.
  if v_refund is not null then
    perform public.refund_units(v_refund);
  end if;
  if v_opted_out is not null then
    perform public.opt_out_user(u, 'Twilio reported the number unsubscribed (21610)')
       from unnest(v_opted_out) u;
  end if;
  return coalesce(v_counts, '{}'::jsonb);
end
$$;

revoke execute on function public.complete_messages(jsonb) from public, anon, authenticated;
grant execute on function public.complete_messages(jsonb) to service_role;
