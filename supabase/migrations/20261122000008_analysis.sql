-- Analysis (SPEC section 6): the durable job behind every interaction, claimed
-- one run per user at a time, finished or failed with backoff, re-dispatched by
-- the per-minute run, and the tool RPCs the analysis agent acts through. The
-- agent never names a user: every tool RPC takes the claim (token and
-- interaction) and acts for the user of the claimed interaction only.

-- Every effect a tool had, by idempotency key, so a retried run that makes the
-- same call gets the first result back instead of a second effect.
create table public.analysis_tool_effects (
  user_id uuid not null references public.users (id) on delete cascade,
  idempotency_key text not null
    constraint analysis_tool_effects_key_length check (length(idempotency_key) between 1 and 200),
  interaction_id uuid references public.interactions (id) on delete set null,
  tool text not null,
  result jsonb not null,
  created_at timestamptz not null default now(),
  primary key (user_id, idempotency_key)
);
create index analysis_tool_effects_interaction_idx on public.analysis_tool_effects (interaction_id);
alter table public.analysis_tool_effects enable row level security;
revoke all on table public.analysis_tool_effects from anon, authenticated;
grant all on table public.analysis_tool_effects to service_role;
create policy analysis_tool_effects_no_client_access on public.analysis_tool_effects
  as restrictive for all to anon, authenticated using (false) with check (false);

-- Helpers -----------------------------------------------------------------------
-- p_text cut to at most p_max bytes (a few under at worst), never splitting a character.
create or replace function public.analysis_truncate_bytes(p_text text, p_max integer) returns text
language plpgsql immutable set search_path = '' as $$
declare
  v text := left(p_text, p_max);
begin
  while octet_length(v) > p_max loop
    -- A character is 1 to 4 bytes: dropping a quarter of the excess, in characters,
    -- is never more than needed, bar the last character or so.
    v := left(v, length(v) - greatest(1, (octet_length(v) - p_max) / 4));
  end loop;
  return v;
end
$$;

-- Claiming ----------------------------------------------------------------------
-- Claims the analysis of one interaction: {status: 'claimed', claim_token,
-- interaction, user, context}, or {status: 'busy'} while a run of the same user
-- holds a lease, or {status: 'done', analysis_status} when there is nothing left
-- to do (a replayed webhook changes nothing). The context is bounded; phone
-- numbers never leave the database for the model.
create or replace function public.claim_analysis(
  p_interaction_id uuid,
  p_lease_seconds integer default 300
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_now timestamptz := now();
  v_user_id uuid;
  v_inter public.interactions;
  v_job public.analysis_jobs;
  v_user public.users;
  v_token uuid := gen_random_uuid();
begin
  if p_interaction_id is null then
    raise exception 'p_interaction_id is required' using errcode = '22023';
  end if;
  if p_lease_seconds is null or p_lease_seconds not between 10 and 3600 then
    raise exception 'p_lease_seconds must be between 10 and 3600' using errcode = '22023';
  end if;
  select user_id into v_user_id from public.interactions where id = p_interaction_id;
  if not found then
    raise exception 'unknown interaction %', p_interaction_id using errcode = 'P0002';
  end if;

  -- Runs of one user are serialized. "No other job of this user holds a lease"
  -- is a fact about other rows, which locking our own job row cannot protect:
  -- two claims for two interactions of the same user would each see the other
  -- still unlocked. A transaction-scoped advisory lock per user makes the check
  -- and the lock one step. It blocks rather than tries: the claim is a few
  -- statements long, and a short wait beats a spurious 'busy' that delays the
  -- analysis by a re-dispatch. It touches no table row, so delivery, which
  -- locks users rows, is never held up by an analysis.
  perform pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended('analysis:' || v_user_id::text, 0)
  );

  select * into v_inter from public.interactions where id = p_interaction_id;
  if v_inter.analysis_status in ('done', 'skipped') then
    return jsonb_build_object('status', 'done', 'analysis_status', v_inter.analysis_status);
  end if;
  -- An interaction that predates its job (or lost it) gets one now.
  insert into public.analysis_jobs (interaction_id, user_id, next_attempt_at)
  values (v_inter.id, v_inter.user_id, v_now)
  on conflict (interaction_id) do nothing;
  select * into v_job from public.analysis_jobs where interaction_id = p_interaction_id for update;

  if v_job.finished_at is not null then
    return jsonb_build_object('status', 'done', 'analysis_status', v_inter.analysis_status);
  end if;
  if v_job.locked_until > v_now then
    return jsonb_build_object('status', 'busy', 'reason', 'this interaction is being analysed');
  end if;
  if v_job.attempts >= v_job.max_attempts then
    -- The last attempt ended without a word (its lease lapsed): give up now.
    perform public.analysis_give_up(array[v_job.interaction_id]);
    return jsonb_build_object('status', 'done', 'analysis_status', 'failed');
  end if;
  if exists (
    select 1 from public.analysis_jobs
     where user_id = v_inter.user_id and finished_at is null
       and interaction_id <> p_interaction_id and locked_until > v_now
  ) then
    -- Its turn comes once the other run is over; the per-minute run sends it.
    update public.analysis_jobs set next_attempt_at = v_now + interval '1 minute'
     where interaction_id = p_interaction_id;
    return jsonb_build_object('status', 'busy', 'reason', 'another analysis of this user is running');
  end if;

  update public.analysis_jobs
     set claim_token = v_token,
         locked_until = v_now + make_interval(secs => p_lease_seconds),
         attempts = attempts + 1,
         -- Not due for re-dispatch before the lease lapses.
         next_attempt_at = v_now + make_interval(secs => p_lease_seconds)
   where interaction_id = p_interaction_id
  returning * into v_job;
  update public.interactions set analysis_status = 'running' where id = p_interaction_id;
  select * into v_user from public.users where id = v_inter.user_id;

  return jsonb_build_object(
    'status', 'claimed',
    'claim_token', v_token,
    'attempt', v_job.attempts,
    'max_attempts', v_job.max_attempts,
    'interaction', jsonb_build_object(
      'id', v_inter.id,
      'channel', v_inter.channel,
      'call_type', v_inter.call_type,
      'created_at', v_inter.created_at,
      'scheduled_call_id', v_inter.scheduled_call_id,
      'transcript', v_inter.transcript
    ),
    'user', jsonb_build_object(
      'id', v_user.id,
      'timezone', v_user.timezone,
      'local_time', to_char(v_now at time zone v_user.timezone, 'Dy YYYY-MM-DD HH24:MI'),
      'quiet_hours_start', to_char(v_user.quiet_hours_start, 'HH24:MI'),
      'quiet_hours_end', to_char(v_user.quiet_hours_end, 'HH24:MI'),
      'sms_opted_out', v_user.sms_opted_out_at is not null,
      'insights', v_user.insights
    ),
    'context', jsonb_build_object(
      'session_summary', coalesce(
        (select context_summary from public.user_sessions where user_id = v_user.id), ''),
      'open_commitments', coalesce((
        select jsonb_agg(to_jsonb(c) order by c.due_at nulls last, c.created_at)
          from (
            select id, description, due_at, created_at from public.commitments
             where user_id = v_user.id and status = 'open'
             order by due_at nulls last, created_at limit 20
          ) c), '[]'::jsonb),
      'recent_interactions', coalesce((
        select jsonb_agg(to_jsonb(r) order by r.created_at desc)
          from (
            select id, channel, call_type, created_at, sentiment,
                   left(transcript, 500) as transcript, length(transcript) > 500 as truncated
              from public.interactions
             where user_id = v_user.id and id <> v_inter.id and created_at <= v_inter.created_at
               and analysis_status <> 'skipped'
             order by created_at desc limit 5
          ) r), '[]'::jsonb),
      'pending_calls', coalesce((
        select jsonb_agg(to_jsonb(s) order by s.scheduled_for)
          from (
            select id, call_type, scheduled_for, rrule,
                   left(custom_instructions, 300) as custom_instructions
              from public.scheduled_calls
             where user_id = v_user.id and status = 'pending'
             order by scheduled_for limit 20
          ) s), '[]'::jsonb),
      'queued_messages', coalesce((
        select jsonb_agg(to_jsonb(m) order by m.scheduled_for)
          from (
            select id, priority, scheduled_for,
                   left(coalesce(final_message, message_data::text), 300) as body
              from public.message_queue
             where user_id = v_user.id and status = 'queued'
             order by scheduled_for limit 20
          ) m), '[]'::jsonb)
    )
  );
end
$$;

-- Giving up on jobs that ran out of attempts: the interaction is failed with
-- the last error, the job finished. Returns how many.
create or replace function public.analysis_give_up(p_interaction_ids uuid[]) returns integer
language plpgsql security definer set search_path = '' as $$
declare
  v_count integer;
begin
  with gone as (
    update public.analysis_jobs
       set finished_at = now(), locked_until = null, claim_token = null,
           last_error = coalesce(last_error, format('analysis did not finish after %s attempts', attempts))
     where interaction_id = any(p_interaction_ids) and finished_at is null
    returning interaction_id, last_error
  )
  update public.interactions i
     set analysis_status = 'failed', analysis_error = g.last_error
    from gone g
   where i.id = g.interaction_id;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- The job held by this claim, locked; null when the claim is no longer current.
create or replace function public.analysis_held_job(p_claim_token uuid, p_interaction_id uuid)
returns public.analysis_jobs
language plpgsql security definer set search_path = '' as $$
declare
  v_job public.analysis_jobs;
begin
  if p_claim_token is null or p_interaction_id is null then
    raise exception 'p_claim_token and p_interaction_id are required' using errcode = '22023';
  end if;
  select * into v_job from public.analysis_jobs
   where interaction_id = p_interaction_id and claim_token = p_claim_token and finished_at is null
     for update;
  return v_job;
end
$$;

-- One sdk_actions row per run, from the run's record:
-- {model, duration_ms, input_tokens, output_tokens, cache_read_tokens,
--  cache_write_tokens, cost_usd, actions}.
create or replace function public.analysis_record_run(
  p_job public.analysis_jobs,
  p_run jsonb,
  p_success boolean,
  p_error text
) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  v_run jsonb := coalesce(p_run, '{}'::jsonb);
  v_id uuid;
begin
  if jsonb_typeof(v_run) <> 'object' then
    raise exception 'the run record must be a JSON object' using errcode = '22023';
  end if;
  insert into public.sdk_actions (
    interaction_id, user_id, model, duration_ms, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, cost_usd, actions, success, error
  ) values (
    p_job.interaction_id, p_job.user_id, v_run ->> 'model', (v_run ->> 'duration_ms')::integer,
    coalesce((v_run ->> 'input_tokens')::integer, 0),
    coalesce((v_run ->> 'output_tokens')::integer, 0),
    coalesce((v_run ->> 'cache_read_tokens')::integer, 0),
    coalesce((v_run ->> 'cache_write_tokens')::integer, 0),
    coalesce((v_run ->> 'cost_usd')::numeric, 0),
    case when jsonb_typeof(v_run -> 'actions') = 'array' then v_run -> 'actions' else '[]'::jsonb end,
    p_success, p_error
  ) returning id into v_id;
  return v_id;
end
$$;

-- Finishing -------------------------------------------------------------------
-- Records a successful run in one transaction, only for the current claim.
-- p_result: {sentiment, extracted_commitments, insights (the consolidated
-- profile, or null when unchanged), session_summary (null when unchanged), run}.
create or replace function public.finish_analysis(
  p_claim_token uuid,
  p_interaction_id uuid,
  p_result jsonb
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_job public.analysis_jobs := public.analysis_held_job(p_claim_token, p_interaction_id);
  v_sentiment text := p_result ->> 'sentiment';
  v_commitments jsonb := coalesce(p_result -> 'extracted_commitments', '[]'::jsonb);
  v_insights jsonb := p_result -> 'insights';
  v_summary text := p_result ->> 'session_summary';
  v_action uuid;
begin
  if v_job.interaction_id is null then
    return jsonb_build_object('status', 'stale');
  end if;
  if p_result is null or jsonb_typeof(p_result) <> 'object' then
    raise exception 'p_result must be a JSON object' using errcode = '22023';
  end if;
  if v_sentiment is not null and v_sentiment not in ('positive', 'neutral', 'negative', 'mixed') then
    raise exception 'sentiment must be positive, neutral, negative or mixed (got %)', v_sentiment
      using errcode = '22023';
  end if;
  if jsonb_typeof(v_commitments) <> 'array' then
    raise exception 'extracted_commitments must be an array' using errcode = '22023';
  end if;
  if jsonb_typeof(v_insights) = 'null' then
    v_insights := null;
  end if;
  if v_insights is not null
     and (jsonb_typeof(v_insights) <> 'object' or octet_length(v_insights::text) > 65536) then
    raise exception 'insights must be a JSON object of at most 64 KB' using errcode = '22023';
  end if;

  update public.interactions
     set sentiment = v_sentiment, extracted_commitments = v_commitments, analysis_status = 'done',
         analysis_error = null, analyzed_at = now()
   where id = v_job.interaction_id;
  if v_insights is not null then
    update public.users set insights = v_insights where id = v_job.user_id;
  end if;
  if v_summary is not null then
    insert into public.user_sessions as s (user_id, context_summary, last_interaction_id, updated_at)
    values (v_job.user_id, public.analysis_truncate_bytes(v_summary, 4000), v_job.interaction_id, now())
    on conflict (user_id) do update
       set context_summary = excluded.context_summary,
           last_interaction_id = excluded.last_interaction_id,
           updated_at = excluded.updated_at;
  end if;
  v_action := public.analysis_record_run(v_job, p_result -> 'run', true, null);
  update public.analysis_jobs
     set finished_at = now(), locked_until = null, claim_token = null, last_error = null
   where interaction_id = v_job.interaction_id;
  return jsonb_build_object('status', 'done', 'sdk_action_id', v_action);
end
$$;

-- Records a failed run: back in the queue with exponential backoff (1, 2, 4,
-- 8 ... minutes, at most an hour), or, out of attempts, failed for good.
create or replace function public.fail_analysis(
  p_claim_token uuid,
  p_interaction_id uuid,
  p_error text,
  p_run jsonb default null
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_job public.analysis_jobs := public.analysis_held_job(p_claim_token, p_interaction_id);
  v_error text := left(coalesce(nullif(btrim(p_error), ''), 'unknown error'), 1000);
  v_next timestamptz;
begin
  if v_job.interaction_id is null then
    return jsonb_build_object('status', 'stale');
  end if;
  perform public.analysis_record_run(v_job, p_run, false, v_error);
  if v_job.attempts >= v_job.max_attempts then
    update public.analysis_jobs set last_error = v_error where interaction_id = v_job.interaction_id;
    perform public.analysis_give_up(array[v_job.interaction_id]);
    return jsonb_build_object('status', 'failed', 'attempts', v_job.attempts, 'will_retry', false);
  end if;
  v_next := now() + least(interval '1 hour', interval '1 minute' * power(2, v_job.attempts - 1));
  update public.analysis_jobs
     set locked_until = null, claim_token = null, last_error = v_error, next_attempt_at = v_next
   where interaction_id = v_job.interaction_id;
  update public.interactions set analysis_status = 'pending', analysis_error = v_error
   where id = v_job.interaction_id;
  return jsonb_build_object('status', 'retry', 'attempts', v_job.attempts, 'will_retry', true,
                            'next_attempt_at', v_next);
end
$$;

-- Re-dispatching ----------------------------------------------------------------
-- Called by the per-minute run. Sends every due, unleased job that has attempts
-- left to analyze-interaction again, and pushes its next look out (3, 6, 12 ...
-- minutes, at most an hour) so a request still in flight is not doubled every
-- minute; gives up on jobs out of attempts. Returns how many were sent.
create or replace function public.redispatch_analysis_jobs(p_limit integer default 50)
returns integer
language plpgsql security definer set search_path = '' as $$
declare
  v_job record;
  v_request_id bigint;
  v_sent integer := 0;
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = '22023';
  end if;

  perform public.analysis_give_up(coalesce(array_agg(interaction_id), '{}'))
     from (
       select interaction_id from public.analysis_jobs
        where finished_at is null and attempts >= max_attempts
          and (locked_until is null or locked_until <= now())
          for update skip locked
     ) exhausted;

  for v_job in
    select interaction_id, dispatches from public.analysis_jobs
     where finished_at is null and attempts < max_attempts and next_attempt_at <= now()
       and (locked_until is null or locked_until <= now())
     order by next_attempt_at
     limit p_limit
       for update skip locked
  loop
    v_request_id := public.invoke_edge_function(
      'analyze-interaction', jsonb_build_object('interaction_id', v_job.interaction_id), 120000);
    update public.analysis_jobs
       set last_request_id = coalesce(v_request_id, last_request_id),
           dispatches = dispatches + 1,
           next_attempt_at = now()
             + least(interval '1 hour', interval '3 minutes' * power(2, least(greatest(v_job.dispatches - 1, 0), 5)))
     where interaction_id = v_job.interaction_id;
    if v_request_id is not null then
      v_sent := v_sent + 1;
    end if;
  end loop;
  return v_sent;
end
$$;

-- Tool RPCs -----------------------------------------------------------------------
-- The user a current claim acts for. A claim whose lease lapsed can do nothing
-- more: another run may hold the job by now.
create or replace function public.analysis_claim_user(p_claim_token uuid, p_interaction_id uuid)
returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  v_user uuid;
begin
  select user_id into v_user from public.analysis_jobs
   where interaction_id = p_interaction_id and claim_token = p_claim_token
     and finished_at is null and locked_until > now();
  if v_user is null then
    raise exception 'no current analysis claim for interaction %', p_interaction_id
      using errcode = '55000';
  end if;
  return v_user;
end
$$;

-- The result a tool call with this key already had, or null.
create or replace function public.analysis_replay(p_user_id uuid, p_idempotency_key text)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_result jsonb;
begin
  if p_idempotency_key is null or length(p_idempotency_key) not between 1 and 200 then
    raise exception 'p_idempotency_key must be 1 to 200 characters' using errcode = '22023';
  end if;
  select result into v_result from public.analysis_tool_effects
   where user_id = p_user_id and idempotency_key = p_idempotency_key;
  return case when v_result is null then null else v_result || '{"replayed": true}'::jsonb end;
end
$$;

create or replace function public.analysis_remember(
  p_user_id uuid,
  p_idempotency_key text,
  p_interaction_id uuid,
  p_tool text,
  p_result jsonb
) returns jsonb
language sql security definer set search_path = '' as $$
  insert into public.analysis_tool_effects (user_id, idempotency_key, interaction_id, tool, result)
  values (p_user_id, p_idempotency_key, p_interaction_id, p_tool, p_result);
  select p_result || '{"replayed": false}'::jsonb;
$$;

-- schedule_call for the claimed user. schedule_call itself holds the rules:
-- 1 minute to 90 days ahead, and the per-user cap on calls per local day.
create or replace function public.analysis_schedule_call(
  p_claim_token uuid,
  p_interaction_id uuid,
  p_call_type text,
  p_scheduled_for timestamptz,
  p_custom_instructions text default null,
  p_rrule text default null,
  p_idempotency_key text default null
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_user uuid := public.analysis_claim_user(p_claim_token, p_interaction_id);
  v_prev jsonb := public.analysis_replay(v_user, p_idempotency_key);
  v_id uuid;
begin
  if v_prev is not null then
    return v_prev;
  end if;
  v_id := public.schedule_call(
    p_user_id := v_user,
    p_call_type := p_call_type,
    p_scheduled_for := p_scheduled_for,
    p_custom_instructions := p_custom_instructions,
    p_rrule := p_rrule,
    p_idempotency_key := p_idempotency_key
  );
  return public.analysis_remember(v_user, p_idempotency_key, p_interaction_id, 'schedule_call',
                                  jsonb_build_object('call_id', v_id));
end
$$;

-- cancel_scheduled_call, for the claimed user's own calls only. Another user's
-- call is reported exactly like a call that does not exist.
create or replace function public.analysis_cancel_scheduled_call(
  p_claim_token uuid,
  p_interaction_id uuid,
  p_call_id uuid,
  p_reason text,
  p_idempotency_key text
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_user uuid := public.analysis_claim_user(p_claim_token, p_interaction_id);
  v_prev jsonb := public.analysis_replay(v_user, p_idempotency_key);
  v_cancelled boolean;
begin
  if v_prev is not null then
    return v_prev;
  end if;
  perform 1 from public.scheduled_calls where id = p_call_id and user_id = v_user for update;
  if not found then
    raise exception 'unknown call %', p_call_id using errcode = 'P0002';
  end if;
  v_cancelled := public.cancel_scheduled_call(p_call_id := p_call_id, p_reason := p_reason);
  return public.analysis_remember(v_user, p_idempotency_key, p_interaction_id,
                                  'cancel_scheduled_call',
                                  jsonb_build_object('call_id', p_call_id, 'cancelled', v_cancelled));
end
$$;

-- queue_message: a final SMS text for the claimed user, through enqueue_message.
create or replace function public.analysis_queue_message(
  p_claim_token uuid,
  p_interaction_id uuid,
  p_text text,
  p_priority text default 'medium',
  p_send_at timestamptz default null,
  p_expires_at timestamptz default null,
  p_idempotency_key text default null
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_user uuid := public.analysis_claim_user(p_claim_token, p_interaction_id);
  v_prev jsonb := public.analysis_replay(v_user, p_idempotency_key);
  v_id uuid;
begin
  if v_prev is not null then
    return v_prev;
  end if;
  -- Urgent skips quiet hours and caps: not for something a transcript asked for.
  if p_priority is null or p_priority not in ('low', 'medium', 'high') then
    raise exception 'priority must be low, medium or high' using errcode = '22023';
  end if;
  if p_send_at is not null and p_send_at > now() + interval '90 days' then
    raise exception 'send_at must be within 90 days' using errcode = '22023';
  end if;
  v_id := public.enqueue_message(
    p_user_id := v_user,
    p_agent_id := 'analyze-interaction',
    p_priority := p_priority,
    p_final_message := p_text,
    p_scheduled_for := greatest(coalesce(p_send_at, now()), now()),
    p_expires_at := p_expires_at,
    p_idempotency_key := p_idempotency_key
  );
  return public.analysis_remember(v_user, p_idempotency_key, p_interaction_id, 'queue_message',
                                  jsonb_build_object('message_id', v_id));
end
$$;

-- record_commitment: something the user said they would do.
create or replace function public.record_commitment(
  p_claim_token uuid,
  p_interaction_id uuid,
  p_description text,
  p_due_at timestamptz default null,
  p_idempotency_key text default null
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_user uuid := public.analysis_claim_user(p_claim_token, p_interaction_id);
  v_prev jsonb := public.analysis_replay(v_user, p_idempotency_key);
  v_id uuid;
begin
  if v_prev is not null then
    return v_prev;
  end if;
  if p_description is null or length(btrim(p_description)) = 0 or length(p_description) > 1000 then
    raise exception 'description must be 1 to 1000 characters' using errcode = '22023';
  end if;
  if p_due_at is not null and p_due_at > now() + interval '5 years' then
    raise exception 'due_at must be within 5 years' using errcode = '22023';
  end if;
  insert into public.commitments (user_id, interaction_id, description, due_at, idempotency_key)
  values (v_user, p_interaction_id, btrim(p_description), p_due_at, p_idempotency_key)
  returning id into v_id;
  return public.analysis_remember(v_user, p_idempotency_key, p_interaction_id, 'record_commitment',
                                  jsonb_build_object('commitment_id', v_id));
end
$$;

-- update_commitment: status, due date or wording of one of the user's own commitments.
create or replace function public.update_commitment(
  p_claim_token uuid,
  p_interaction_id uuid,
  p_commitment_id uuid,
  p_status text default null,
  p_due_at timestamptz default null,
  p_description text default null,
  p_idempotency_key text default null
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_user uuid := public.analysis_claim_user(p_claim_token, p_interaction_id);
  v_prev jsonb := public.analysis_replay(v_user, p_idempotency_key);
  v_row public.commitments;
begin
  if v_prev is not null then
    return v_prev;
  end if;
  if num_nonnulls(p_status, p_due_at, p_description) = 0 then
    raise exception 'give at least one of status, due_at and description' using errcode = '22023';
  end if;
  if p_status is not null and p_status not in ('open', 'done', 'dropped') then
    raise exception 'status must be open, done or dropped' using errcode = '22023';
  end if;
  if p_description is not null
     and (length(btrim(p_description)) = 0 or length(p_description) > 1000) then
    raise exception 'description must be 1 to 1000 characters' using errcode = '22023';
  end if;
  update public.commitments
     set status = coalesce(p_status, status),
         due_at = coalesce(p_due_at, due_at),
         description = coalesce(btrim(p_description), description)
   where id = p_commitment_id and user_id = v_user
  returning * into v_row;
  if v_row.id is null then
    raise exception 'unknown commitment %', p_commitment_id using errcode = 'P0002';
  end if;
  return public.analysis_remember(v_user, p_idempotency_key, p_interaction_id, 'update_commitment',
                                  jsonb_build_object('commitment_id', v_row.id, 'status', v_row.status,
                                                     'due_at', v_row.due_at));
end
$$;

-- Access: service_role only. ------------------------------------------------------
do $$
declare
  f text;
begin
  foreach f in array array[
    'public.analysis_truncate_bytes(text, integer)',
    'public.claim_analysis(uuid, integer)',
    'public.analysis_give_up(uuid[])',
    'public.analysis_held_job(uuid, uuid)',
    'public.analysis_record_run(public.analysis_jobs, jsonb, boolean, text)',
    'public.finish_analysis(uuid, uuid, jsonb)',
    'public.fail_analysis(uuid, uuid, text, jsonb)',
    'public.redispatch_analysis_jobs(integer)',
    'public.analysis_claim_user(uuid, uuid)',
    'public.analysis_replay(uuid, text)',
    'public.analysis_remember(uuid, text, uuid, text, jsonb)',
    'public.analysis_schedule_call(uuid, uuid, text, timestamptz, text, text, text)',
    'public.analysis_cancel_scheduled_call(uuid, uuid, uuid, text, text)',
    'public.analysis_queue_message(uuid, uuid, text, text, timestamptz, timestamptz, text)',
    'public.record_commitment(uuid, uuid, text, timestamptz, text)',
    'public.update_commitment(uuid, uuid, uuid, text, timestamptz, text, text)'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
