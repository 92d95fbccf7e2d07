-- The operator's view of the orchestrator (issue 12): what the CLI reads, so
-- that `status`, `user` and `why` are each one SQL query away in Supabase
-- Studio too:
--   select * from operator_status;
--   select * from operator_users where phone_number = '+1...';
--   select * from operator_message_history where message_id = '...' order by seq;
-- Every view is security_invoker and readable by service_role only; what needs
-- the cron, net or vault schemas goes through a small security definer function.
-- The operator's actions (cancel_message, retry_message, redrive_analysis,
-- export_user, forget_user) are RPCs with the same state rules as the product.

-- Indexes the operator's reads need, so status stays fast however long the history.
create index if not exists messages_created_idx on public.messages (created_at);
create index if not exists sdk_actions_created_idx on public.sdk_actions (created_at);
create index if not exists interactions_analysis_open_idx on public.interactions (analysis_status, created_at)
  where analysis_status in ('pending', 'running', 'failed');
create index if not exists scheduled_calls_updated_idx on public.scheduled_calls (updated_at);

-- Helpers ---------------------------------------------------------------------------
-- An instant as wall-clock time in a zone, for people.
create or replace function public.operator_local(p_at timestamptz, p_tz text) returns text
language sql stable set search_path = '' as $$
  select to_char(p_at at time zone p_tz, 'YYYY-MM-DD HH24:MI:SS')
$$;

-- A user named by id or E.164 phone number.
create or replace function public.operator_user_id(p_ref text) returns uuid
language plpgsql stable set search_path = '' as $$
declare
  v_id uuid;
begin
  if p_ref ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    select id into v_id from public.users where id = p_ref::uuid;
  elsif p_ref ~ '^\+[1-9][0-9]{6,14}$' then
    select id into v_id from public.users where phone_number = p_ref;
  else
    raise exception 'a user is a uuid or an E.164 phone number, not %', p_ref using errcode = '22023';
  end if;
  if v_id is null then
    raise exception 'unknown user %', p_ref using errcode = 'P0002';
  end if;
  return v_id;
end
$$;

-- Why a queued message has not gone yet, in words (wait_reason is the machine's).
create or replace function public.operator_wait_reason(
  p_status text,
  p_wait_reason text,
  p_scheduled_for timestamptz,
  p_next_attempt_at timestamptz,
  p_opted_out boolean,
  p_tz text
) returns text
language sql stable set search_path = '' as $$
  select case
    when p_status = 'sending' then 'being sent now'
    when p_status = 'unknown' then 'sent, outcome unknown: reconciling with Twilio from '
      || public.operator_local(p_next_attempt_at, p_tz)
    when p_status <> 'queued' then null
    when p_opted_out then 'the user opted out: it will be cancelled'
    when p_scheduled_for > now() and p_next_attempt_at <= p_scheduled_for then
      'scheduled for ' || public.operator_local(p_scheduled_for, p_tz)
    when p_next_attempt_at > now() then
      case p_wait_reason
        when 'quiet_hours' then 'quiet hours'
        when 'daily_cap' then 'daily budget used up'
        when 'hourly_cap' then 'hourly budget used up'
        when 'preferred_hours' then 'waiting for the preferred hours'
        when 'snoozed' then 'the user is snoozed'
        when 'urgent_ceiling' then 'over the daily urgent ceiling'
        when 'sequence_wait' then 'waiting for the rest of its sequence'
        when 'send_retry' then 'Twilio refused it for now; retrying'
        when 'render_retry' then 'rendering failed; retrying'
        when 'reconcile' then 'waiting for reconciliation'
        else coalesce('deferred: ' || p_wait_reason, 'deferred')
      end || ' until ' || public.operator_local(p_next_attempt_at, p_tz)
    else 'due now: the next process-queue run takes it'
  end
$$;

-- pg_cron, pg_net and Vault, read for the operator ------------------------------------
create or replace function public.operator_cron_health() returns jsonb
language sql stable security definer set search_path = '' as $$
  select jsonb_build_object(
    'job_present', exists (select from cron.job where jobname = 'process-queue'),
    'job_active', coalesce((select bool_and(active) from cron.job where jobname = 'process-queue'), false),
    'schedule', (select schedule from cron.job where jobname = 'process-queue' limit 1),
    'runs_24h', (select count(*) from cron.job_run_details d join cron.job j on j.jobid = d.jobid
                  where j.jobname = 'process-queue' and d.start_time > now() - interval '24 hours'),
    'failed_24h', (select count(*) from cron.job_run_details d join cron.job j on j.jobid = d.jobid
                    where j.jobname = 'process-queue' and d.status = 'failed'
                      and d.start_time > now() - interval '24 hours'),
    'last_runs', coalesce((
      select jsonb_agg(r order by r.start_time desc) from (
        select d.runid, d.status, d.start_time, d.end_time, left(d.return_message, 200) as message
          from cron.job_run_details d join cron.job j on j.jobid = d.jobid
         where j.jobname = 'process-queue'
         order by d.runid desc limit 5
      ) r), '[]'::jsonb)
  )
$$;

create or replace function public.operator_net_statuses() returns jsonb
language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_object_agg(k, n), '{}'::jsonb) from (
    select coalesce(status_code::text, case when timed_out then 'timeout' else 'error' end) as k,
           count(*) as n
      from net._http_response
     where created > now() - interval '1 hour'
     group by 1
  ) s
$$;

-- pg_net's answers in the last hour (pg_net keeps them for six hours).
create or replace function public.operator_net_health() returns jsonb
language sql stable security definer set search_path = '' as $$
  select jsonb_build_object(
    'responses_1h', count(*),
    'errors_1h', count(*) filter (where error_msg is not null or timed_out or status_code >= 500),
    'statuses_1h', public.operator_net_statuses(),
    'last_error', (select left(coalesce(error_msg, status_code::text), 200) from net._http_response
                    where created > now() - interval '1 hour'
                      and (error_msg is not null or timed_out or status_code >= 500)
                    order by created desc limit 1)
  )
  from net._http_response
  where created > now() - interval '1 hour'
$$;

create or replace function public.operator_vault_names() returns jsonb
language sql stable security definer set search_path = '' as $$
  select jsonb_build_object(
    'project_url', exists (select from vault.decrypted_secrets where name = 'project_url'),
    'orchestrator_secret', exists (select from vault.decrypted_secrets where name = 'orchestrator_secret')
  )
$$;

-- The project's URL (not a secret: it is the public address of the functions).
create or replace function public.operator_project_url() returns text
language sql stable security definer set search_path = '' as $$
  select decrypted_secret from vault.decrypted_secrets where name = 'project_url' limit 1
$$;

create or replace function public.operator_applied_migrations() returns text[]
language plpgsql stable security definer set search_path = '' as $$
begin
  if to_regclass('supabase_migrations.schema_migrations') is null then
    return null;
  end if;
  return (select array_agg(version::text order by version) from supabase_migrations.schema_migrations);
end
$$;

-- What SQL can tell about the functions' secrets, which it cannot read: the
-- last run's own word on Twilio, Claude calls that happened, and answers of
-- analyze-interaction saying Claude is not configured.
create or replace function public.operator_doctor_signals() returns jsonb
language sql stable security definer set search_path = '' as $$
  select jsonb_build_object(
    'last_run_at', (select max(started_at) from public.processor_runs),
    'twilio', (select summary ->> 'twilio' from public.processor_runs
                where finished_at is not null and error is null
                order by started_at desc limit 1),
    'voice', (select summary ->> 'voice' from public.processor_runs
               where finished_at is not null and error is null
               order by started_at desc limit 1),
    'claude_calls_7d', (select count(*) from public.agent_actions_log
                         where created_at > now() - interval '7 days' and model is not null),
    'claude_not_configured_6h', (select count(*) from net._http_response
                                  where created > now() - interval '6 hours' and status_code = 503
                                    and content like '%not_configured%')
  )
$$;

-- Routines come from their own migration; until it is applied they read as absent.
create or replace function public.operator_routines_installed() returns boolean
language sql stable set search_path = '' as $$
  select to_regclass('public.routines') is not null
$$;

create or replace function public.operator_routines_due() returns bigint
language plpgsql stable set search_path = '' as $$
declare
  v_due bigint;
begin
  if not public.operator_routines_installed() then
    return null;
  end if;
  execute 'select count(*) from public.routines where status = ''active'' and next_run_at <= now()'
     into v_due;
  return v_due;
end
$$;

-- status ---------------------------------------------------------------------------------
create or replace view public.operator_status with (security_invoker = true) as
select
  now() as checked_at,
  coalesce((
    select jsonb_agg(jsonb_build_object('status', status, 'priority', priority, 'count', n)
                     order by status, rank)
      from (
        select status, priority, min(priority_rank) as rank, count(*) as n
          from public.message_queue where status = 'queued' group by status, priority
        union all
        select status, priority, min(priority_rank), count(*)
          from public.message_queue where status = 'sending' group by status, priority
        union all
        select status, priority, min(priority_rank), count(*)
          from public.message_queue where status = 'unknown' group by status, priority
      ) q
  ), '[]'::jsonb) as queue,
  h.queued,
  h.due,
  h.oldest_due_at,
  h.unknown,
  h.failed_24h,
  (select count(*) from public.messages
    where created_at > now() - interval '1 hour' and direction = 'outbound') as sent_1h,
  (select count(*) from public.messages
    where created_at > now() - interval '24 hours' and direction = 'outbound') as sent_24h,
  coalesce((
    select jsonb_object_agg(reason, n) from (
      select reason, count(*) as n from public.delivery_events
       where created_at > now() - interval '24 hours' and kind = 'deferred'
       group by reason
    ) d
  ), '{}'::jsonb) as deferrals_24h,
  (select count(*) from public.interactions where analysis_status = 'pending') as analyses_pending,
  (select count(*) from public.interactions where analysis_status = 'running') as analyses_running,
  (select count(*) from public.interactions
    where analysis_status = 'failed' and created_at > now() - interval '7 days') as analyses_failed_7d,
  (select count(*) from public.scheduled_calls
    where status = 'pending' and next_attempt_at <= now()) as calls_due,
  public.operator_routines_due() as routines_due,
  coalesce((
    select jsonb_agg(r order by r.started_at desc) from (
      select id, source, started_at, finished_at, error,
             (summary ->> 'sent')::int as sent, (summary ->> 'deferred')::int as deferred,
             (summary ->> 'failed')::int as failed, summary ->> 'twilio' as twilio
        from public.processor_runs order by started_at desc limit 5
    ) r
  ), '[]'::jsonb) as processor_runs,
  (select count(*) from public.processor_runs
    where started_at > now() - interval '24 hours' and error is not null) as processor_failures_24h,
  public.operator_cron_health() as cron,
  public.operator_net_health() as net,
  (select coalesce(sum(cost_usd), 0) from public.agent_actions_log
    where created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC') as claude_cost_today_usd,
  (select coalesce(sum(cost_usd), 0) from public.agent_actions_log
    where created_at >= date_trunc('month', now() at time zone 'UTC') at time zone 'UTC') as claude_cost_month_usd
from public.queue_health h;

-- queue, calls, analyses ---------------------------------------------------------------------
create or replace view public.operator_queue with (security_invoker = true) as
select m.id, m.user_id, u.phone_number, u.timezone, m.agent_id, m.priority, m.status,
       m.wait_reason, m.status_reason,
       public.operator_wait_reason(m.status, m.wait_reason, m.scheduled_for, m.next_attempt_at,
                                   u.sms_opted_out_at is not null, u.timezone) as waiting_because,
       m.scheduled_for, m.next_attempt_at, m.expires_at, m.sequence_id, m.sequence_position,
       m.sequence_total, m.attempts, m.twilio_sid, m.error_code, m.sent_at, m.delivered_at,
       m.created_at, m.updated_at,
       left(coalesce(m.final_message, m.rendered_body, m.message_data::text), 120) as body_preview
  from public.message_queue m
  join public.users u on u.id = m.user_id;

create or replace view public.operator_calls with (security_invoker = true) as
select c.id, c.user_id, u.phone_number, u.timezone, c.call_type, c.status, c.scheduled_for,
       public.operator_local(c.scheduled_for, u.timezone) as scheduled_local, c.rrule,
       c.recurrence_of, c.attempts, c.next_attempt_at, c.last_error, c.cancel_reason,
       c.dispatched_at, c.completed_at, c.created_at, c.updated_at
  from public.scheduled_calls c
  join public.users u on u.id = c.user_id;

create or replace view public.operator_analyses with (security_invoker = true) as
select i.id as interaction_id, i.user_id, u.phone_number, i.channel, i.call_type, i.created_at,
       i.analysis_status as status, i.analysis_error as error, i.analyzed_at, i.sentiment,
       j.attempts, j.max_attempts, j.dispatches, j.next_attempt_at, j.finished_at,
       j.last_error as job_error, runs.runs, runs.cost_usd, runs.last_model
  from public.interactions i
  join public.users u on u.id = i.user_id
  left join public.analysis_jobs j on j.interaction_id = i.id
  left join lateral (
    select count(*) as runs, coalesce(sum(s.cost_usd), 0) as cost_usd,
           (array_agg(s.model order by s.created_at desc))[1] as last_model
      from public.sdk_actions s where s.interaction_id = i.id
  ) runs on true;

-- user -------------------------------------------------------------------------------------------
create or replace view public.operator_users with (security_invoker = true) as
select u.id, u.phone_number, u.timezone,
       public.operator_local(now(), u.timezone) as local_time,
       u.quiet_hours_start, u.quiet_hours_end, u.preferred_hours_start, u.preferred_hours_end,
       u.daily_message_limit, u.hourly_message_limit,
       coalesce(b.units_used, 0) as budget_used_today,
       coalesce(b.urgent_used, 0) as urgent_used_today,
       u.sms_opted_out_at, u.snoozed_until, u.snooze_reason, u.last_inbound_at,
       coalesce(u.last_inbound_at > now() - interval '10 minutes', false) as active_now,
       coalesce(u.insights -> 'items', '[]'::jsonb) as memory,
       (select context_summary from public.user_sessions s where s.user_id = u.id) as session_summary,
       coalesce((
         select jsonb_agg(jsonb_build_object('id', c.id, 'description', c.description,
                                             'due_at', c.due_at, 'interaction_id', c.interaction_id)
                          order by c.due_at nulls last)
           from public.commitments c where c.user_id = u.id and c.status = 'open'
       ), '[]'::jsonb) as open_commitments,
       coalesce((
         select jsonb_agg(jsonb_build_object('id', c.id, 'call_type', c.call_type,
                                             'scheduled_for', c.scheduled_for,
                                             'scheduled_local', public.operator_local(c.scheduled_for, u.timezone),
                                             'rrule', c.rrule)
                          order by c.scheduled_for)
           from public.scheduled_calls c where c.user_id = u.id and c.status = 'pending'
       ), '[]'::jsonb) as pending_calls,
       coalesce((
         select jsonb_agg(jsonb_build_object('id', q.id, 'priority', q.priority, 'status', q.status,
                                             'waiting_because', q.waiting_because,
                                             'next_attempt_at', q.next_attempt_at,
                                             'body_preview', q.body_preview)
                          order by q.next_attempt_at)
           from (
             select * from public.operator_queue oq
              where oq.user_id = u.id and oq.status in ('queued', 'sending', 'unknown')
              order by oq.next_attempt_at limit 50
           ) q
       ), '[]'::jsonb) as queue,
       coalesce((
         select jsonb_agg(jsonb_build_object('id', m.id, 'direction', m.direction, 'status', m.status,
                                             'created_at', m.created_at,
                                             'created_local', public.operator_local(m.created_at, u.timezone),
                                             'body', left(m.body, 160))
                          order by m.created_at desc)
           from (
             select * from public.messages x where x.user_id = u.id order by x.created_at desc limit 10
           ) m
       ), '[]'::jsonb) as last_messages
  from public.users u
  left join public.user_message_budget b
    on b.user_id = u.id and b.local_date = (now() at time zone u.timezone)::date;

-- why ---------------------------------------------------------------------------------------------
-- Every state one message went through, in order (seq breaks ties at one instant).
create or replace view public.operator_message_history with (security_invoker = true) as
select e.message_id, e.user_id, e.at, public.operator_local(e.at, u.timezone) as local_at,
       u.timezone, e.seq, e.state, e.reason, e.detail, e.next_eligible_at,
       public.operator_local(e.next_eligible_at, u.timezone) as next_eligible_local, e.twilio_sid
  from (
    select m.id as message_id, m.user_id, m.created_at as at, 0 as seq, 'queued' as state,
           m.priority as reason,
           format('by %s, scheduled for %s', m.agent_id, public.operator_local(m.scheduled_for, w.timezone))
             as detail,
           null::timestamptz as next_eligible_at, null::text as twilio_sid
      from public.message_queue m join public.users w on w.id = m.user_id
    union all
    select d.message_id, d.user_id, d.created_at, 1, d.kind, d.reason, d.detail, d.next_eligible_at, null
      from public.delivery_events d where d.message_id is not null
    union all
    select m.id, m.user_id, m.sent_at, 2, 'sent', null, 'accepted by Twilio', null, m.twilio_sid
      from public.message_queue m where m.sent_at is not null
    union all
    select m.id, m.user_id, m.delivered_at, 3, 'delivered', 'status callback', null, null, m.twilio_sid
      from public.message_queue m where m.delivered_at is not null
    union all
    -- A callback that did not end in delivered (failed, undelivered) is seen on messages.
    select s.message_queue_id, s.user_id, s.updated_at, 3, 'callback', s.status,
           coalesce('error ' || s.error_code, null), null, s.twilio_sid
      from public.messages s
     where s.message_queue_id is not null and s.direction = 'outbound'
       and s.status not in ('queued', 'accepted', 'sending', 'sent', 'delivered')
    union all
    -- A final state with no event of its own (older writers).
    select m.id, m.user_id, m.updated_at, 4, m.status, null, m.status_reason, null, null
      from public.message_queue m
     where m.status in ('failed', 'superseded', 'expired', 'cancelled')
       and not exists (select from public.delivery_events d
                        where d.message_id = m.id and d.kind = m.status)
  ) e
  join public.users u on u.id = e.user_id;

-- tail ----------------------------------------------------------------------------------------------
-- One stream of what happens: texts in and out, delivery events, analyses,
-- call changes and processor runs. Each event has a key, so a reader that
-- overlaps its windows can drop what it has seen.
create or replace view public.operator_events with (security_invoker = true) as
select 'message:' || m.id || ':' || m.status as key, m.created_at as at, 'message' as kind,
       m.user_id, m.direction || ' ' || m.status as what, left(m.body, 80) as detail
  from public.messages m
union all
select 'event:' || d.id, d.created_at, 'delivery', d.user_id, d.kind || ' ' || d.reason,
       coalesce(d.detail, '') || coalesce(' until ' || d.next_eligible_at, '')
  from public.delivery_events d
union all
select 'analysis:' || s.id, s.created_at, 'analysis', s.user_id,
       case when s.success then 'analysis done' else 'analysis failed' end,
       coalesce(s.error, jsonb_array_length(s.actions) || ' actions, $' || s.cost_usd)
  from public.sdk_actions s
union all
select 'call:' || c.id || ':' || c.status || ':' || c.updated_at, c.updated_at, 'call', c.user_id,
       'call ' || c.status, c.call_type || ' at ' || c.scheduled_for
  from public.scheduled_calls c
union all
select 'run:' || r.id || ':' || (r.finished_at is not null), coalesce(r.finished_at, r.started_at),
       'run', null::uuid, 'process-queue ' || case when r.error is not null then 'failed'
                                               when r.finished_at is null then 'started'
                                               else 'finished' end,
       coalesce(r.error, format('sent %s, deferred %s', r.summary ->> 'sent', r.summary ->> 'deferred'))
  from public.processor_runs r;

-- Operator actions ---------------------------------------------------------------------------
-- cancel: only a queued message; a sequence goes whole or not at all, so its
-- other queued members are cancelled with it. The user is locked first, as a
-- claim does, so a claim in flight finishes before the cancel looks.
create or replace function public.cancel_message(p_message_id uuid, p_reason text default null)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_msg public.message_queue;
  v_reason text := left(coalesce(nullif(btrim(p_reason), ''), 'cancelled by an operator'), 500);
  v_ids uuid[];
begin
  select * into v_msg from public.message_queue where id = p_message_id;
  if not found then
    raise exception 'unknown message %', p_message_id using errcode = 'P0002';
  end if;
  perform 1 from public.users where id = v_msg.user_id for no key update;
  select * into v_msg from public.message_queue where id = p_message_id for update;
  if v_msg.status <> 'queued' then
    raise exception 'message % is %: only a queued message can be cancelled', p_message_id, v_msg.status
      using errcode = '22023';
  end if;
  with gone as (
    update public.message_queue
       set updated_at = now(), status = 'cancelled', status_reason = v_reason, wait_reason = null,
           claim_token = null, locked_until = null
     where status = 'queued'
       and (id = p_message_id or (v_msg.sequence_id is not null and sequence_id = v_msg.sequence_id))
    returning id
  )
  select array_agg(id) into v_ids from gone;
  perform public.refund_units(v_ids);
  insert into public.delivery_events (message_id, user_id, kind, reason, detail)
  select id, v_msg.user_id, 'cancelled', 'operator', v_reason from unnest(v_ids) as id;
  return jsonb_build_object('message_id', p_message_id, 'status', 'cancelled', 'cancelled', v_ids);
end
$$;

-- retry: only a failed message goes back to queued, due now. A sequence goes
-- again whole, so every member must have failed and none gone out.
create or replace function public.retry_message(p_message_id uuid) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_msg public.message_queue;
  v_ids uuid[];
begin
  select * into v_msg from public.message_queue where id = p_message_id;
  if not found then
    raise exception 'unknown message %', p_message_id using errcode = 'P0002';
  end if;
  perform 1 from public.users where id = v_msg.user_id for no key update;
  select * into v_msg from public.message_queue where id = p_message_id for update;
  if v_msg.status <> 'failed' then
    raise exception 'message % is %: only a failed message can be retried', p_message_id, v_msg.status
      using errcode = '22023';
  end if;
  if exists (select from public.users where id = v_msg.user_id and sms_opted_out_at is not null) then
    raise exception 'the user of message % opted out of SMS', p_message_id using errcode = '22023';
  end if;
  if v_msg.sequence_id is not null and exists (
       select from public.message_queue
        where sequence_id = v_msg.sequence_id and (status <> 'failed' or sent_at is not null)) then
    raise exception 'message % is part of a sequence that did not fail whole', p_message_id
      using errcode = '22023';
  end if;
  with again as (
    update public.message_queue
       set updated_at = now(), status = 'queued', wait_reason = null,
           status_reason = 'retried by an operator', next_attempt_at = now(), attempts = 0,
           render_attempts = 0, error_code = null, claim_token = null, locked_until = null,
           send_started_at = null, twilio_sid = null, sent_at = null, delivered_at = null,
           expires_at = case when expires_at <= now() then null else expires_at end
     where status = 'failed'
       and (id = p_message_id or (v_msg.sequence_id is not null and sequence_id = v_msg.sequence_id))
    returning id
  )
  select array_agg(id) into v_ids from again;
  return jsonb_build_object('message_id', p_message_id, 'status', 'queued', 'retried', v_ids,
                            'previous_twilio_sid', v_msg.twilio_sid);
end
$$;

-- redrive: a failed analysis gets a fresh set of attempts and is sent to
-- analyze-interaction now. Tool effects are keyed by their place in the run, so
-- the new run repeats none of what an earlier attempt did.
create or replace function public.redrive_analysis(p_interaction_id uuid) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_status text;
  v_user uuid;
  v_request_id bigint;
begin
  select analysis_status, user_id into v_status, v_user
    from public.interactions where id = p_interaction_id for update;
  if not found then
    raise exception 'unknown interaction %', p_interaction_id using errcode = 'P0002';
  end if;
  if v_status <> 'failed' then
    raise exception 'the analysis of interaction % is %: only a failed analysis can be redriven',
      p_interaction_id, v_status using errcode = '22023';
  end if;
  insert into public.analysis_jobs (interaction_id, user_id) values (p_interaction_id, v_user)
  on conflict (interaction_id) do update
     set attempts = 0, failed_dispatches = 0, attempts_at_dispatch = 0, finished_at = null,
         claim_token = null, locked_until = null, next_attempt_at = now();
  update public.interactions set analysis_status = 'pending', analysis_error = null
   where id = p_interaction_id;
  v_request_id := public.invoke_edge_function(
    'analyze-interaction', jsonb_build_object('interaction_id', p_interaction_id), 120000);
  -- Sent: the per-minute run looks again only if this request gets no answer.
  update public.analysis_jobs
     set last_request_id = coalesce(v_request_id, last_request_id),
         dispatches = dispatches + case when v_request_id is null then 0 else 1 end,
         next_attempt_at = now() + case when v_request_id is null then interval '0' else interval '3 minutes' end
   where interaction_id = p_interaction_id;
  return jsonb_build_object('interaction_id', p_interaction_id, 'status', 'pending',
                            'dispatched', v_request_id is not null);
end
$$;

-- A user's data -------------------------------------------------------------------------------
-- Every table of schema public that holds rows of a user: by a user_id column
-- or a foreign key to users (direct), or by a foreign key to such a table
-- (through). Read from the catalogue, so a table added later is covered.
create or replace function public.user_data_tables()
returns table (table_name text, column_name text, via_table text, via_column text)
language sql stable set search_path = '' as $$
  with direct as (
    select c.table_name::text, c.column_name::text
      from information_schema.columns c
      join information_schema.tables t
        on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_type = 'BASE TABLE'
     where c.table_schema = 'public' and c.column_name = 'user_id'
    union
    select cl.relname::text, a.attname::text
      from pg_catalog.pg_constraint k
      join pg_catalog.pg_class cl on cl.oid = k.conrelid
      join pg_catalog.pg_namespace n on n.oid = cl.relnamespace
      join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = k.conkey[1]
     where k.contype = 'f' and k.confrelid = 'public.users'::regclass and n.nspname = 'public'
       and cl.relname <> 'users'
  ), through as (
    select distinct on (cl.relname) cl.relname::text as table_name, a.attname::text as column_name,
           p.relname::text as via_table, pa.attname::text as via_column
      from pg_catalog.pg_constraint k
      join pg_catalog.pg_class cl on cl.oid = k.conrelid
      join pg_catalog.pg_namespace n on n.oid = cl.relnamespace
      join pg_catalog.pg_class p on p.oid = k.confrelid
      join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = k.conkey[1]
      join pg_catalog.pg_attribute pa on pa.attrelid = k.confrelid and pa.attnum = k.confkey[1]
     where k.contype = 'f' and n.nspname = 'public' and array_length(k.conkey, 1) = 1
       and p.relname::text in (select d.table_name from direct d)
       and cl.relname::text not in (select d.table_name from direct d)
       and p.relname <> 'users'
     order by cl.relname, p.relname
  )
  select d.table_name, d.column_name, null::text, null::text from direct d
  union all
  select t.table_name, t.column_name, t.via_table, t.via_column from through t
$$;

-- Which rows of a table are the user's ($1), as a WHERE clause over alias t.
create or replace function public.user_rows_predicate(
  p_column text, p_via_table text, p_via_column text
) returns text
language sql stable set search_path = '' as $$
  select case
    when p_via_table is null then format('t.%I = $1', p_column)
    else format('t.%I in (select v.%I from public.%I v where v.%I = $1)', p_column, p_via_column,
                p_via_table, (select d.column_name from public.user_data_tables() d
                               where d.table_name = p_via_table and d.via_table is null limit 1))
  end
$$;

-- The rows one table holds of a user, as a JSON array.
create or replace function public.user_rows(
  p_user_id uuid, p_table text, p_column text, p_via_table text, p_via_column text
) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  v_rows jsonb;
begin
  execute format('select coalesce(jsonb_agg(to_jsonb(t)), ''[]'') from public.%I t where %s',
                 p_table, public.user_rows_predicate(p_column, p_via_table, p_via_column))
     into v_rows using p_user_id;
  return v_rows;
end
$$;

-- Everything the product holds about one user, for a data-access request.
create or replace function public.export_user(p_user_id uuid) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  v_user public.users;
  v_tables jsonb := '{}'::jsonb;
  v_t record;
begin
  select * into v_user from public.users where id = p_user_id;
  if not found then
    raise exception 'unknown user %', p_user_id using errcode = 'P0002';
  end if;
  for v_t in select * from public.user_data_tables() order by table_name loop
    v_tables := v_tables || jsonb_build_object(v_t.table_name, public.user_rows(
      p_user_id, v_t.table_name, v_t.column_name, v_t.via_table, v_t.via_column));
  end loop;
  -- Texts from or to their number before the user row existed carry no user_id.
  v_tables := jsonb_set(v_tables, '{messages}', (
    select coalesce(jsonb_agg(to_jsonb(m) order by m.created_at), '[]') from public.messages m
     where m.user_id = p_user_id or m.from_number = v_user.phone_number
        or m.to_number = v_user.phone_number));
  v_tables := v_tables || jsonb_build_object('agent_keys_scoped', (
    select coalesce(jsonb_agg(jsonb_build_object('agent_id', k.agent_id, 'created_at', k.created_at)), '[]')
      from public.agent_keys k where p_user_id = any(k.user_ids)));
  return jsonb_build_object('exported_at', now(), 'user', to_jsonb(v_user), 'tables', v_tables);
end
$$;

-- Deletes everything of one user: rows that would only lose their user_id
-- (on delete set null) are deleted outright, texts by phone number too, and the
-- user leaves every agent key's scope; the rest goes with the user row.
create or replace function public.forget_user(p_user_id uuid) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_phone text;
  v_t record;
  v_n integer;
  v_deleted jsonb := '{}'::jsonb;
begin
  select phone_number into v_phone from public.users where id = p_user_id for update;
  if not found then
    raise exception 'unknown user %', p_user_id using errcode = 'P0002';
  end if;
  -- Tables reached through another first, while the rows they hang on still exist.
  for v_t in select * from public.user_data_tables() order by via_table is null, table_name loop
    execute format('delete from public.%I t where %s', v_t.table_name,
                   public.user_rows_predicate(v_t.column_name, v_t.via_table, v_t.via_column))
      using p_user_id;
    get diagnostics v_n = row_count;
    if v_n > 0 then
      v_deleted := v_deleted || jsonb_build_object(v_t.table_name, v_n);
    end if;
  end loop;
  delete from public.messages where from_number = v_phone or to_number = v_phone;
  get diagnostics v_n = row_count;
  v_deleted := v_deleted || jsonb_build_object('messages',
    coalesce((v_deleted ->> 'messages')::int, 0) + v_n);
  update public.agent_keys set user_ids = array_remove(user_ids, p_user_id)
   where p_user_id = any(user_ids);
  delete from public.users where id = p_user_id;
  return jsonb_build_object('user_id', p_user_id, 'deleted', v_deleted);
end
$$;

-- Access: service_role only ---------------------------------------------------------------------
do $$
declare
  v text;
  f text;
begin
  foreach v in array array[
    'operator_status', 'operator_queue', 'operator_calls', 'operator_analyses', 'operator_users',
    'operator_message_history', 'operator_events'
  ] loop
    execute format('revoke all on public.%I from public, anon, authenticated', v);
    execute format('grant select on public.%I to service_role', v);
  end loop;
  foreach f in array array[
    'public.operator_local(timestamptz, text)',
    'public.operator_user_id(text)',
    'public.operator_wait_reason(text, text, timestamptz, timestamptz, boolean, text)',
    'public.operator_cron_health()',
    'public.operator_net_health()',
    'public.operator_net_statuses()',
    'public.operator_vault_names()',
    'public.operator_project_url()',
    'public.operator_applied_migrations()',
    'public.operator_doctor_signals()',
    'public.operator_routines_installed()',
    'public.operator_routines_due()',
    'public.cancel_message(uuid, text)',
    'public.retry_message(uuid)',
    'public.redrive_analysis(uuid)',
    'public.user_data_tables()',
    'public.user_rows_predicate(text, text, text)',
    'public.user_rows(uuid, text, text, text, text)',
    'public.export_user(uuid)',
    'public.forget_user(uuid)'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
