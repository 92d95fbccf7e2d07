-- Analysis, issue 8: webhooks that fail before any run starts end failed; a run
-- whose lease lapsed writes nothing; max_tokens and refusals are recorded as
-- such; the webhook body carries no transcript; cancel with a scope; what
-- earlier attempts did. now() is fixed inside this transaction, so a lease
-- "lapses" by moving locked_until into the past.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(37);

-- Whatever other tests left due waits, so re-dispatch counts only this file's jobs.
update analysis_jobs set next_attempt_at = now() + interval '10 years' where finished_at is null;

insert into users (id, phone_number, timezone) values
  ('00000000-0000-4000-8000-0000000009a1', '+19995550191', 'UTC'),
  ('00000000-0000-4000-8000-0000000009a2', '+19995550192', 'UTC'),
  ('00000000-0000-4000-8000-0000000009a3', '+19995550193', 'America/New_York');

create function pg_temp.status_of(p_id uuid) returns text language sql as
  $$ select analysis_status from public.interactions where id = p_id $$;
-- The answer pg_net would record for the job's last request; the job due again.
create function pg_temp.answer_last(p_id uuid, p_status integer, p_content text) returns void
language sql as $$
  insert into net._http_response (id, status_code, content, timed_out)
  select last_request_id, p_status, p_content, false from public.analysis_jobs where interaction_id = p_id;
  update public.analysis_jobs set next_attempt_at = now() - interval '1 second' where interaction_id = p_id;
$$;

-- A lapsed lease writes nothing ----------------------------------------------------------
insert into interactions (id, user_id, channel, transcript, analysis_status) values
  ('00000000-0000-4000-8000-0000000009d1', '00000000-0000-4000-8000-0000000009a2', 'sms', 'Old run.', 'running'),
  ('00000000-0000-4000-8000-0000000009d2', '00000000-0000-4000-8000-0000000009a2', 'sms', 'New run.', 'running');
create temp table tok (name text primary key, token uuid);
insert into tok select 'old', (claim_analysis('00000000-0000-4000-8000-0000000009d1', 60) ->> 'claim_token')::uuid;
select is((claim_analysis('00000000-0000-4000-8000-0000000009d2', 60) ->> 'status'), 'busy',
  'runs of one user are serialized while the lease holds');
update analysis_jobs set locked_until = now() - interval '1 second'
 where interaction_id = '00000000-0000-4000-8000-0000000009d1';
insert into tok select 'new', (claim_analysis('00000000-0000-4000-8000-0000000009d2', 60) ->> 'claim_token')::uuid;
select isnt((select token from tok where name = 'new'), null, 'once it lapsed, a newer run of the user claims');
select is((finish_analysis((select token from tok where name = 'new'), '00000000-0000-4000-8000-0000000009d2',
  '{"sentiment": "positive", "insights": {"items": [{"key": "newer", "value": "written by the newer run"}]},
    "session_summary": "newer summary", "run": {"model": "m", "stop_reason": "finished"}}') ->> 'status'),
  'done', 'the newer run finishes and writes the memory');
select is((finish_analysis((select token from tok where name = 'old'), '00000000-0000-4000-8000-0000000009d1',
  '{"sentiment": "negative", "insights": {"items": [{"key": "older", "value": "from the lapsed run"}]},
    "session_summary": "older summary", "run": {"model": "m", "stop_reason": "finished"}}') ->> 'status'),
  'stale', 'the run whose lease lapsed is stale');
select is((select insights -> 'items' -> 0 ->> 'key' from users where id = '00000000-0000-4000-8000-0000000009a2'),
  'newer', 'and cannot overwrite the newer run''s memory');
select is((select context_summary from user_sessions where user_id = '00000000-0000-4000-8000-0000000009a2'),
  'newer summary', 'nor its session summary');
select is((select (analysis_status, sentiment, analysis_error like '%lease lapsed%')::text from interactions
            where id = '00000000-0000-4000-8000-0000000009d1'),
  '(pending,,t)', 'its interaction waits for a retry, with the reason');

-- max_tokens and refusal -------------------------------------------------------------------
insert into interactions (id, user_id, channel, transcript, analysis_status) values
  ('00000000-0000-4000-8000-0000000009e1', '00000000-0000-4000-8000-0000000009a1', 'sms', 'Too long.', 'running');
insert into tok select 'cut', (claim_analysis('00000000-0000-4000-8000-0000000009e1', 60) ->> 'claim_token')::uuid;
select is((finish_analysis((select token from tok where name = 'cut'), '00000000-0000-4000-8000-0000000009e1',
  '{"sentiment": null, "insights": {"items": []}, "session_summary": null,
    "run": {"model": "m", "stop_reason": "max_tokens", "output_tokens": 4096}}') ->> 'status'),
  'failed', 'a run that ended on max_tokens does not finish as done');
select is((select (analysis_status, analysis_error like '%max_tokens%')::text from interactions
            where id = '00000000-0000-4000-8000-0000000009e1'),
  '(failed,t)', 'the interaction is failed with the reason');
select is((select (success, output_tokens)::text from sdk_actions
            where interaction_id = '00000000-0000-4000-8000-0000000009e1'),
  '(f,4096)', 'and its run is recorded unsuccessful');
select isnt((select finished_at from analysis_jobs where interaction_id = '00000000-0000-4000-8000-0000000009e1'),
  null, 'the job is over: the same prompt would stop the same way');
select is((select insights from users where id = '00000000-0000-4000-8000-0000000009a1'), '{}'::jsonb,
  'its memory is not stored');

-- Webhooks that keep failing before a run starts ------------------------------------
insert into interactions (id, user_id, channel, transcript) values
  ('00000000-0000-4000-8000-0000000009c1', '00000000-0000-4000-8000-0000000009a1', 'voice',
   'Nobody will ever analyse this: the function has no Claude.'),
  ('00000000-0000-4000-8000-0000000009c2', '00000000-0000-4000-8000-0000000009a2', 'sms',
   'Busy every time.');

do $$
begin
  for i in 1..10 loop
    perform pg_temp.answer_last('00000000-0000-4000-8000-0000000009c1', 503,
      '{"error":"not_configured","message":"Claude is not configured"}');
    perform pg_temp.answer_last('00000000-0000-4000-8000-0000000009c2', 202, '{"status":"busy"}');
    perform public.redispatch_analysis_jobs();
  end loop;
end
$$;
select is(pg_temp.status_of('00000000-0000-4000-8000-0000000009c1'), 'failed',
  'a job whose webhook answers 503 every time ends failed');
select matches((select analysis_error from interactions where id = '00000000-0000-4000-8000-0000000009c1'),
  'HTTP 503.*not_configured', 'with the last HTTP status and answer as its error');
select is((select (dispatches, attempts, finished_at is not null)::text from analysis_jobs
            where interaction_id = '00000000-0000-4000-8000-0000000009c1'),
  '(6,0,t)', 'after six dispatches (the webhook and five more), no run ever started');
select is(pg_temp.status_of('00000000-0000-4000-8000-0000000009c2'), 'pending',
  'a job answered 202 (busy) is no failure and keeps its turn');

-- The webhook body --------------------------------------------------------------------
select is((select (body -> 'record') - 'created_at' from (
             select convert_from(body, 'UTF8')::jsonb as body from net.http_request_queue) q
            where body -> 'record' ->> 'id' = '00000000-0000-4000-8000-0000000009c2'),
  '{"id": "00000000-0000-4000-8000-0000000009c2", "user_id": "00000000-0000-4000-8000-0000000009a2",
    "channel": "sms", "call_type": "general", "scheduled_call_id": null, "analysis_status": "pending",
    "transcript_chars": 16}'::jsonb,
  'the webhook names the interaction');
select is((select count(*)::int from net.http_request_queue
            where convert_from(body, 'UTF8') like '%Busy every time%'
               or convert_from(body, 'UTF8') like '%has no Claude%'),
  0, 'but never carries its transcript');

-- What needs this migration's columns and functions ------------------------------
select is((select (success, outcome)::text from sdk_actions
            where interaction_id = '00000000-0000-4000-8000-0000000009d1'),
  '(f,lease_lapsed)', 'the lapsed run is on record as a failed attempt');
select is((select (failed_dispatches, last_http_status)::text from analysis_jobs
            where interaction_id = '00000000-0000-4000-8000-0000000009c1'),
  '(6,503)', 'each failed dispatch is counted, the last status kept');
select is((select (failed_dispatches, last_http_status)::text from analysis_jobs
            where interaction_id = '00000000-0000-4000-8000-0000000009c2'),
  '(0,202)', 'with nothing counted against it');
select is((select outcome from sdk_actions where interaction_id = '00000000-0000-4000-8000-0000000009e1'),
  'max_tokens', 'with the outcome');

insert into interactions (id, user_id, channel, transcript) values
  ('00000000-0000-4000-8000-0000000009c3', '00000000-0000-4000-8000-0000000009a1', 'sms', 'Timed out.');
update analysis_jobs set max_failed_dispatches = 2 where interaction_id = '00000000-0000-4000-8000-0000000009c3';
insert into net._http_response (id, timed_out, error_msg)
  select last_request_id, true, 'Timeout of 120000 ms reached' from analysis_jobs
   where interaction_id = '00000000-0000-4000-8000-0000000009c3';
update analysis_jobs set next_attempt_at = now() - interval '1 second'
 where interaction_id = '00000000-0000-4000-8000-0000000009c3';
select is(redispatch_analysis_jobs(), 1, 'a timed-out webhook is sent again');
update analysis_jobs set next_attempt_at = now() - interval '1 second'
 where interaction_id = '00000000-0000-4000-8000-0000000009c3';
select is(redispatch_analysis_jobs(), 0, 'a request never answered counts as failed too');
select matches((select analysis_error from interactions where id = '00000000-0000-4000-8000-0000000009c3'),
  'failed 2 times.*no response recorded', 'and the error says so');

-- cancel_scheduled_call's scope, and what earlier attempts did ------------------------------
insert into interactions (id, user_id, channel, transcript, analysis_status) values
  ('00000000-0000-4000-8000-0000000009f1', '00000000-0000-4000-8000-0000000009a3', 'voice', 'Calls.', 'running');
insert into tok select 'f', (claim_analysis('00000000-0000-4000-8000-0000000009f1', 60) ->> 'claim_token')::uuid;
create temp table calls as
  select n, (analysis_schedule_call((select token from tok where name = 'f'),
              '00000000-0000-4000-8000-0000000009f1', 'check_in', now() + make_interval(days => n),
              'ask about the week', null, format('k-f-%s', n)) ->> 'call_id')::uuid as id
    from generate_series(1, 2) n;
select throws_ok(format($$select analysis_cancel_scheduled_call(%L, '00000000-0000-4000-8000-0000000009f1',
    %L, 'no', 'k-scope', 'everything')$$, (select token from tok where name = 'f'),
    (select id from calls where n = 1)), '22023', null, 'an unknown scope is refused');
select is((analysis_cancel_scheduled_call((select token from tok where name = 'f'),
    '00000000-0000-4000-8000-0000000009f1', (select id from calls where n = 1), 'changed plans',
    'k-series') ->> 'cancelled'), 'true', 'without a scope the call and its series end');
select is((select (status, cancel_scope)::text from scheduled_calls where id = (select id from calls where n = 1)),
  '(cancelled,series)', 'as a series cancellation');
select is((analysis_cancel_scheduled_call((select token from tok where name = 'f'),
    '00000000-0000-4000-8000-0000000009f1', (select id from calls where n = 2), 'away that day',
    'k-occurrence', 'occurrence') ->> 'scope'), 'occurrence', 'scope occurrence skips one occurrence');
select is((select (status, cancel_scope)::text from scheduled_calls where id = (select id from calls where n = 2)),
  '(cancelled,occurrence)', 'through skip_scheduled_call');

-- A recurring call: skipping one occurrence keeps the series going.
create temp table daily as
  select (analysis_schedule_call((select token from tok where name = 'f'),
            '00000000-0000-4000-8000-0000000009f1', 'check_in', now() + interval '3 days',
            null, 'FREQ=DAILY', 'k-daily') ->> 'call_id')::uuid as id;
select throws_ok(format($$select analysis_cancel_scheduled_call(%L, '00000000-0000-4000-8000-0000000009f1',
    %L, 'too soon', 'k-early', 'occurrence')$$, (select token from tok where name = 'f'),
    (select id from daily)), 'P0001', null,
  'before its next occurrence is computed, a skip is a refusal the model is told about, not a lost claim');
update scheduled_calls set next_occurrence_at = scheduled_for + interval '1 day', next_occurrence_known = true
 where id = (select id from daily);
create temp table skipped as select analysis_cancel_scheduled_call((select token from tok where name = 'f'),
  '00000000-0000-4000-8000-0000000009f1', (select id from daily), 'travelling', 'k-skip', 'occurrence') as r;
select is((select (s.status, s.cancel_scope, n.status, n.scheduled_for - s.scheduled_for)::text
             from scheduled_calls s, scheduled_calls n
            where s.id = (select id from daily) and n.id = (select (r ->> 'next_call_id')::uuid from skipped)),
  '(cancelled,occurrence,pending,"1 day")', 'skipping one occurrence of a recurring call keeps the series');

select is((select jsonb_agg(e ->> 'tool' order by e ->> 'idempotency_key')
             from jsonb_array_elements(analysis_earlier_effects((select token from tok where name = 'f'),
                    '00000000-0000-4000-8000-0000000009f1')) e),
  '["schedule_call", "schedule_call", "schedule_call", "cancel_scheduled_call", "cancel_scheduled_call", "cancel_scheduled_call"]'::jsonb,
  'analysis_earlier_effects lists every effect of this interaction');
select is((select e -> 'state' ->> 'status' from jsonb_array_elements(analysis_earlier_effects(
             (select token from tok where name = 'f'), '00000000-0000-4000-8000-0000000009f1')) e
            where e ->> 'idempotency_key' = 'k-f-1'),
  'cancelled', 'with the state its row is in now');
update analysis_jobs set locked_until = now() - interval '1 second'
 where interaction_id = '00000000-0000-4000-8000-0000000009f1';
select throws_ok(format($$select analysis_earlier_effects(%L, '00000000-0000-4000-8000-0000000009f1')$$,
    (select token from tok where name = 'f')), '55000', null, 'only for the current claim');

-- Grants -------------------------------------------------------------------------------------
select is(
  (select array_agg(p.oid::regprocedure::text order by 1)
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public'
      and p.proname in ('analysis_extracted_commitments', 'analysis_effect_state', 'analysis_earlier_effects',
                        'analysis_describe_answer', 'analysis_cancel_scheduled_call')
      and (has_function_privilege('anon', p.oid, 'execute')
           or has_function_privilege('authenticated', p.oid, 'execute'))),
  null, 'anon and authenticated may execute none of the new analysis functions');
select ok(has_function_privilege('service_role', 'public.analysis_earlier_effects(uuid, uuid)', 'execute'),
  'service_role may');

select * from finish();
rollback;
