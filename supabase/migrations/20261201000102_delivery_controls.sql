-- What a user, an agent or an operator can set about delivery (issue 11):
-- snooze, preferred hours, per-agent caps in view, and bounded history.

-- Snooze: until p_until nothing but urgent goes out; what is due waits for the
-- snooze end (then the ordinary rules apply), never dropped.
create or replace function public.snooze_user(p_user_id uuid, p_until timestamptz, p_reason text)
returns void
language plpgsql security definer set search_path = '' as $$
begin
  if p_until is null or p_until <= now() or p_until > now() + interval '30 days' then
    raise exception 'p_until must be in the future and at most 30 days ahead' using errcode = '22023';
  end if;
  if p_reason is not null and length(p_reason) > 500 then
    raise exception 'p_reason must be at most 500 characters' using errcode = '22023';
  end if;
  update public.users set snoozed_until = p_until, snooze_reason = p_reason where id = p_user_id;
  if not found then
    raise exception 'unknown user %', p_user_id using errcode = 'P0002';
  end if;
end
$$;

create or replace function public.unsnooze_user(p_user_id uuid) returns void
language plpgsql security definer set search_path = '' as $$
begin
  update public.users set snoozed_until = null, snooze_reason = null where id = p_user_id;
  if not found then
    raise exception 'unknown user %', p_user_id using errcode = 'P0002';
  end if;
  -- What waited only for the snooze may go now.
  update public.message_queue set updated_at = now(), next_attempt_at = now()
   where user_id = p_user_id and status = 'queued' and wait_reason = 'snoozed';
end
$$;

-- Preferred hours [p_start, p_end) in local time, at least an hour; both null
-- clears them. Messages that may wait (can_delay) go inside them.
create or replace function public.set_preferred_hours(p_user_id uuid, p_start time, p_end time)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_minutes integer;
begin
  if (p_start is null) <> (p_end is null) then
    raise exception 'p_start and p_end go together (both null clears the preference)' using errcode = '22023';
  end if;
  if p_start is not null then
    if date_trunc('minute', p_start) <> p_start or date_trunc('minute', p_end) <> p_end then
      raise exception 'preferred hours are whole minutes' using errcode = '22023';
    end if;
    v_minutes := (extract(epoch from (p_end - p_start))::integer / 60 + 1440) % 1440;
    if v_minutes < 60 then
      raise exception 'preferred hours must last at least an hour (% to % is % minutes)',
        to_char(p_start, 'HH24:MI'), to_char(p_end, 'HH24:MI'), v_minutes using errcode = '22023';
    end if;
  end if;
  update public.users set preferred_hours_start = p_start, preferred_hours_end = p_end
   where id = p_user_id;
  if not found then
    raise exception 'unknown user %', p_user_id using errcode = 'P0002';
  end if;
  -- What waited for the old window is decided again.
  update public.message_queue set updated_at = now(), next_attempt_at = now()
   where user_id = p_user_id and status = 'queued' and wait_reason = 'preferred_hours';
  return jsonb_build_object('preferred_hours_start', to_char(p_start, 'HH24:MI'),
                            'preferred_hours_end', to_char(p_end, 'HH24:MI'));
end
$$;

-- Enqueues per agent per hour and per day, over the last week: a runaway agent
-- shows here before it shows on a phone bill.
create or replace view public.agent_activity with (security_invoker = true) as
select agent_id, 'hour'::text as period, date_trunc('hour', created_at) as period_start,
       count(*) as enqueued, count(distinct user_id) as users
  from public.message_queue
 where created_at > now() - interval '7 days'
 group by agent_id, date_trunc('hour', created_at)
union all
select agent_id, 'day', date_trunc('day', created_at), count(*), count(distinct user_id)
  from public.message_queue
 where created_at > now() - interval '7 days'
 group by agent_id, date_trunc('day', created_at);
revoke all on public.agent_activity from anon, authenticated;
grant select on public.agent_activity to service_role;

-- Bounded history: delivery events and processor runs past the retention, and
-- pg_cron's own run log past a week (it grows without bound otherwise).
create or replace function public.prune_history() returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_keep interval := make_interval(days => public.setting('delivery_event_retention_days'));
  v_events integer;
  v_runs integer;
  v_cron integer;
begin
  delete from public.delivery_events where created_at < now() - v_keep;
  get diagnostics v_events = row_count;
  delete from public.processor_runs where started_at < now() - v_keep;
  get diagnostics v_runs = row_count;
  delete from cron.job_run_details where end_time < now() - interval '7 days';
  get diagnostics v_cron = row_count;
  return jsonb_build_object('delivery_events', v_events, 'processor_runs', v_runs,
                            'cron_job_run_details', v_cron);
end
$$;

select cron.schedule('prune-history', '17 3 * * *', $$select public.prune_history()$$);

do $$
declare
  f text;
begin
  foreach f in array array[
    'public.snooze_user(uuid, timestamptz, text)',
    'public.unsnooze_user(uuid)',
    'public.set_preferred_hours(uuid, time, time)',
    'public.prune_history()'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
