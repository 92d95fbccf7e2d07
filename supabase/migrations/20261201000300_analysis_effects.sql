-- Analysis (issue 8): every effect once, whatever the wording; webhooks that
-- keep failing before a run starts end failed with what they got; a run whose
-- lease lapsed writes nothing; a run cut off by max_tokens or a refusal is
-- recorded as such; the webhook carries a trimmed record, not the transcript;
-- cancel_scheduled_call can skip one occurrence.

-- Columns -----------------------------------------------------------------------
alter table public.analysis_jobs
  -- Dispatches answered with anything but 2xx (or not at all) while no run
  -- started: 401, 413, 503 from a function without Claude, a dead endpoint.
  add column failed_dispatches integer not null default 0,
  add column max_failed_dispatches integer not null default 6
    constraint analysis_jobs_max_failed_dispatches check (max_failed_dispatches between 1 and 100),
  -- attempts when the last request left, so its answer can tell whether a run started.
  add column attempts_at_dispatch integer not null default 0,
  add column last_http_status integer,
  add column last_http_error text;

-- How the run ended: finished (record_analysis), end_turn, turn_limit,
-- time_budget, max_tokens, refusal, error, lease_lapsed ...
alter table public.sdk_actions add column outcome text
  constraint sdk_actions_outcome_length check (length(outcome) between 1 and 40);

-- The webhook -------------------------------------------------------------------
-- As in 20261122000003, but the record is trimmed to what identifies the
-- interaction: the transcript (up to 200,000 characters, several bytes each
-- once in JSON) made the body exceed the function's 1 MB limit and get 413.
-- analyze-interaction reads the transcript from the database when it claims.
create or replace function public.on_interaction_inserted() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  v_request_id bigint;
begin
  if new.analysis_status <> 'pending' then
    return null;
  end if;
  if new.transcript ~ '^[[:space:]]*$' then
    update public.interactions set analysis_status = 'skipped' where id = new.id;
    return null;
  end if;
  insert into public.analysis_jobs (interaction_id, user_id, next_attempt_at)
  values (new.id, new.user_id, now() + interval '2 minutes')
  on conflict (interaction_id) do nothing;

  v_request_id := public.invoke_edge_function(
    'analyze-interaction',
    jsonb_build_object(
      'type', 'INSERT',
      'table', tg_table_name,
      'schema', tg_table_schema,
      'record', jsonb_build_object(
        'id', new.id,
        'user_id', new.user_id,
        'channel', new.channel,
        'call_type', new.call_type,
        'scheduled_call_id', new.scheduled_call_id,
        'created_at', new.created_at,
        'analysis_status', new.analysis_status,
        'transcript_chars', length(new.transcript)
      ),
      'old_record', null
    ),
    120000
  );
  -- Without the Vault secrets nothing was sent: the per-minute run sends it.
  update public.analysis_jobs
     set last_request_id = v_request_id,
         dispatches = case when v_request_id is null then 0 else 1 end,
         next_attempt_at = case when v_request_id is null then now() else next_attempt_at end
   where interaction_id = new.id;
  return null;
end
$$;

-- Recording runs ------------------------------------------------------------------
-- As in 0008, with how the run ended in sdk_actions.outcome.
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
    cache_write_tokens, cost_usd, actions, success, error, outcome
  ) values (
    p_job.interaction_id, p_job.user_id, v_run ->> 'model', (v_run ->> 'duration_ms')::integer,
    coalesce((v_run ->> 'input_tokens')::integer, 0),
    coalesce((v_run ->> 'output_tokens')::integer, 0),
    coalesce((v_run ->> 'cache_read_tokens')::integer, 0),
    coalesce((v_run ->> 'cache_write_tokens')::integer, 0),
    coalesce((v_run ->> 'cost_usd')::numeric, 0),
    case when jsonb_typeof(v_run -> 'actions') = 'array' then v_run -> 'actions' else '[]'::jsonb end,
    p_success, p_error,
    left(coalesce(nullif(v_run ->> 'stop_reason', ''), case when p_success then 'finished' else 'error' end), 40)
  ) returning id into v_id;
  return v_id;
end
$$;

-- The commitments this interaction recorded, as they stand: every attempt's,
-- so a retry that did not record them again still lists them.
create or replace function public.analysis_extracted_commitments(p_interaction_id uuid)
returns jsonb
language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'commitment_id', c.id, 'description', c.description, 'due_at', c.due_at,
           'status', c.status) order by c.created_at, c.id), '[]'::jsonb)
    from public.commitments c
   where c.interaction_id = p_interaction_id
$$;

-- Finishing -------------------------------------------------------------------
-- As in 0008, with two changes:
-- - Only while the lease holds. Runs of one user are serialized by their
--   leases: once this one lapsed, a newer run of the same user may have
--   claimed and written the memory this run read before, and storing ours
--   would overwrite it. A lapsed run is stale: when the job is still its own
--   it is recorded as a failed attempt (fail_analysis: its sdk_actions row, and
--   the job back in the queue with backoff); the retry finds its effects by
--   their keys.
-- - A run that ended on max_tokens or refusal did not finish its analysis:
--   sdk_actions.success is false with that outcome, the interaction is failed
--   with the reason (its effects stay, its memory and summary are not stored),
--   and the job is over, since a retry of the same prompt stops the same way.
-- extracted_commitments come from the commitments table, not from p_result.
create or replace function public.finish_analysis(
  p_claim_token uuid,
  p_interaction_id uuid,
  p_result jsonb
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_job public.analysis_jobs := public.analysis_held_job(p_claim_token, p_interaction_id);
  v_sentiment text := p_result ->> 'sentiment';
  v_insights jsonb := p_result -> 'insights';
  v_summary text := p_result ->> 'session_summary';
  v_stop text := p_result -> 'run' ->> 'stop_reason';
  v_error text;
  v_action uuid;
begin
  if v_job.interaction_id is null then
    return jsonb_build_object('status', 'stale');
  end if;
  if v_job.locked_until is null or v_job.locked_until <= now() then
    perform public.fail_analysis(p_claim_token, p_interaction_id,
      'the lease lapsed before the run finished, so nothing it found was stored',
      coalesce(p_result -> 'run', '{}'::jsonb) || '{"stop_reason": "lease_lapsed"}'::jsonb);
    return jsonb_build_object('status', 'stale');
  end if;
  if p_result is null or jsonb_typeof(p_result) <> 'object' then
    raise exception 'p_result must be a JSON object' using errcode = '22023';
  end if;
  if v_sentiment is not null and v_sentiment not in ('positive', 'neutral', 'negative', 'mixed') then
    raise exception 'sentiment must be positive, neutral, negative or mixed (got %)', v_sentiment
      using errcode = '22023';
  end if;
  if jsonb_typeof(v_insights) = 'null' then
    v_insights := null;
  end if;
  if v_insights is not null
     and (jsonb_typeof(v_insights) <> 'object' or octet_length(v_insights::text) > 65536) then
    raise exception 'insights must be a JSON object of at most 64 KB' using errcode = '22023';
  end if;

  if v_stop in ('max_tokens', 'refusal') then
    v_error := case v_stop
      when 'max_tokens' then 'the model stopped at its output token limit (max_tokens) before finishing the analysis'
      else 'the model refused to analyse this interaction (refusal)'
    end;
    v_action := public.analysis_record_run(v_job, p_result -> 'run', false, v_error);
    update public.interactions
       set analysis_status = 'failed', analysis_error = v_error,
           extracted_commitments = public.analysis_extracted_commitments(v_job.interaction_id),
           analyzed_at = now()
     where id = v_job.interaction_id;
    update public.analysis_jobs
       set finished_at = now(), locked_until = null, claim_token = null, last_error = v_error
     where interaction_id = v_job.interaction_id;
    return jsonb_build_object('status', 'failed', 'outcome', v_stop, 'sdk_action_id', v_action);
  end if;

  update public.interactions
     set sentiment = v_sentiment,
         extracted_commitments = public.analysis_extracted_commitments(v_job.interaction_id),
         analysis_status = 'done', analysis_error = null, analyzed_at = now()
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

-- Earlier attempts ------------------------------------------------------------------
-- What an effect's row holds now, for the model: the call, commitment or message.
create or replace function public.analysis_effect_state(p_tool text, p_result jsonb)
returns jsonb
language sql stable security definer set search_path = '' as $$
  select case
    when p_tool in ('schedule_call', 'cancel_scheduled_call') then (
      select jsonb_build_object('call_type', c.call_type, 'scheduled_for', c.scheduled_for,
                                'rrule', c.rrule, 'status', c.status,
                                'custom_instructions', left(c.custom_instructions, 300))
        from public.scheduled_calls c where c.id = (p_result ->> 'call_id')::uuid)
    when p_tool in ('record_commitment', 'update_commitment') then (
      select jsonb_build_object('description', left(m.description, 300), 'due_at', m.due_at,
                                'status', m.status)
        from public.commitments m where m.id = (p_result ->> 'commitment_id')::uuid)
    when p_tool = 'queue_message' then (
      select jsonb_build_object('text', left(q.final_message, 300), 'scheduled_for', q.scheduled_for,
                                'status', q.status)
        from public.message_queue q where q.id = (p_result ->> 'message_id')::uuid)
  end
$$;

-- The effects earlier attempts at this analysis had, oldest first, for the
-- current claim only: the agent counts them towards this run's caps, knows
-- their keys, and shows them to the model.
create or replace function public.analysis_earlier_effects(p_claim_token uuid, p_interaction_id uuid)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_user uuid := public.analysis_claim_user(p_claim_token, p_interaction_id);
begin
  return coalesce((
    select jsonb_agg(jsonb_build_object(
             'tool', e.tool, 'idempotency_key', e.idempotency_key, 'result', e.result,
             'state', public.analysis_effect_state(e.tool, e.result))
           order by e.created_at, e.idempotency_key)
      from (
        select * from public.analysis_tool_effects
         where user_id = v_user and interaction_id = p_interaction_id
         order by created_at, idempotency_key limit 100
      ) e), '[]'::jsonb);
end
$$;

-- Re-dispatching ----------------------------------------------------------------
-- What the database's last request for a job got, in words.
create or replace function public.analysis_describe_answer(
  p_answered boolean,
  p_status integer,
  p_timed_out boolean,
  p_error text,
  p_content text
) returns text
language sql immutable set search_path = '' as $$
  select case
    when not p_answered then 'no response recorded'
    when p_status is not null then format('HTTP %s: %s', p_status, left(coalesce(p_content, ''), 300))
    when p_timed_out then coalesce(p_error, 'timed out')
    else coalesce(p_error, 'no response')
  end
$$;

-- As in 0008, and each due job's last request is looked up in
-- net._http_response first: no 2xx answer while no run started (attempts did
-- not grow since it left) is a failed dispatch, with its status and error kept
-- on the job. attempts only grows when a run claims the job, so without this a
-- webhook that always fails (wrong secret, a function without Claude) was sent
-- for ever; after max_failed_dispatches such failures the job ends failed with
-- the last answer. pg_net keeps responses six hours, longer than any backoff.
create or replace function public.redispatch_analysis_jobs(p_limit integer default 50)
returns integer
language plpgsql security definer set search_path = '' as $$
declare
  v_job record;
  v_answer text;
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
    select j.interaction_id, j.dispatches, j.attempts, j.attempts_at_dispatch, j.failed_dispatches,
           j.max_failed_dispatches, j.last_request_id, r.id is not null as answered,
           r.status_code, r.timed_out, r.error_msg, r.content
      from public.analysis_jobs j
      left join lateral (
        select x.id, x.status_code, x.timed_out, x.error_msg, left(x.content, 300) as content
          from net._http_response x
         where x.id = j.last_request_id
         limit 1
      ) r on true
     where j.finished_at is null and j.attempts < j.max_attempts and j.next_attempt_at <= now()
       and (j.locked_until is null or j.locked_until <= now())
     order by j.next_attempt_at
     limit p_limit
       for update of j skip locked
  loop
    if v_job.last_request_id is not null and v_job.attempts = v_job.attempts_at_dispatch
       and coalesce(v_job.status_code not between 200 and 299, true) then
      v_answer := public.analysis_describe_answer(
        v_job.answered, v_job.status_code, v_job.timed_out, v_job.error_msg, v_job.content);
      update public.analysis_jobs
         set failed_dispatches = failed_dispatches + 1,
             last_http_status = v_job.status_code,
             last_http_error = v_answer
       where interaction_id = v_job.interaction_id;
      if v_job.failed_dispatches + 1 >= v_job.max_failed_dispatches then
        update public.analysis_jobs
           set last_error = format('the webhook failed %s times before a run could start; last: %s',
                                   v_job.failed_dispatches + 1, v_answer)
         where interaction_id = v_job.interaction_id;
        perform public.analysis_give_up(array[v_job.interaction_id]);
        continue;
      end if;
    elsif v_job.answered then
      update public.analysis_jobs set last_http_status = v_job.status_code
       where interaction_id = v_job.interaction_id;
    end if;

    v_request_id := public.invoke_edge_function(
      'analyze-interaction', jsonb_build_object('interaction_id', v_job.interaction_id), 120000);
    update public.analysis_jobs
       set last_request_id = coalesce(v_request_id, last_request_id),
           attempts_at_dispatch = v_job.attempts,
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

-- cancel_scheduled_call with a scope ---------------------------------------------
-- occurrence: skip this occurrence, the series goes on (skip_scheduled_call,
-- migration 20261201000200); series: end the call and its recurrence, as
-- before. 'series' by default, which is what the 0008 version did; the old
-- signature goes, so a call without p_scope is not ambiguous.
drop function public.analysis_cancel_scheduled_call(uuid, uuid, uuid, text, text);
create or replace function public.analysis_cancel_scheduled_call(
  p_claim_token uuid,
  p_interaction_id uuid,
  p_call_id uuid,
  p_reason text,
  p_idempotency_key text,
  p_scope text default 'series'
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_user uuid := public.analysis_claim_user(p_claim_token, p_interaction_id);
  v_prev jsonb := public.analysis_replay(v_user, p_idempotency_key);
  v_result jsonb;
begin
  if v_prev is not null then
    return v_prev;
  end if;
  if p_scope is null or p_scope not in ('occurrence', 'series') then
    raise exception 'scope must be occurrence or series' using errcode = '22023';
  end if;
  perform 1 from public.scheduled_calls where id = p_call_id and user_id = v_user for update;
  if not found then
    raise exception 'unknown call %', p_call_id using errcode = 'P0002';
  end if;
  if p_scope = 'occurrence' then
    begin
      v_result := jsonb_build_object(
        'call_id', p_call_id, 'scope', p_scope,
        'next_call_id', public.skip_scheduled_call(p_call_id := p_call_id, p_reason := p_reason));
    exception when object_not_in_prerequisite_state then
      -- The next occurrence is not computed yet: a refusal the model is told
      -- about (P0001), not a lost claim (55000), which fails the run.
      raise exception '%', sqlerrm using errcode = 'P0001';
    end;
  else
    v_result := jsonb_build_object(
      'call_id', p_call_id, 'scope', p_scope,
      'cancelled', public.cancel_scheduled_call(p_call_id := p_call_id, p_reason := p_reason));
  end if;
  return public.analysis_remember(v_user, p_idempotency_key, p_interaction_id,
                                  'cancel_scheduled_call', v_result);
end
$$;

-- Access: service_role only. ------------------------------------------------------
do $$
declare
  f text;
begin
  foreach f in array array[
    'public.analysis_extracted_commitments(uuid)',
    'public.analysis_effect_state(text, jsonb)',
    'public.analysis_earlier_effects(uuid, uuid)',
    'public.analysis_describe_answer(boolean, integer, boolean, text, text)',
    'public.analysis_cancel_scheduled_call(uuid, uuid, uuid, text, text, text)'
  ] loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
