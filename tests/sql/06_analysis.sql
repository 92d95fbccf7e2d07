-- Analysis jobs: the trigger, claim / finish / fail / re-dispatch, and the tool
-- RPCs that act for the claimed interaction's user only. now() is fixed inside
-- this transaction, so a lease "lapses" by moving locked_until into the past.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(70);

-- Whatever other tests left due waits, so re-dispatch counts only this file's jobs.
update analysis_jobs set next_attempt_at = now() + interval '10 years' where finished_at is null;

insert into users (id, phone_number, timezone) values
  ('00000000-0000-4000-8000-0000000006a1', '+19995550161', 'America/New_York'),
  ('00000000-0000-4000-8000-0000000006b1', '+19995550162', 'UTC');

create function pg_temp.status_of(p_id uuid) returns text language sql as
  $$ select analysis_status from public.interactions where id = p_id $$;

-- The trigger ---------------------------------------------------------------------
insert into interactions (id, user_id, channel, transcript) values
  ('00000000-0000-4000-8000-0000000006c0', '00000000-0000-4000-8000-0000000006a1', 'sms', E'  \n\t ');
select is(pg_temp.status_of('00000000-0000-4000-8000-0000000006c0'), 'skipped',
  'a blank transcript is skipped');
select is((select count(*)::int from analysis_jobs where interaction_id = '00000000-0000-4000-8000-0000000006c0'),
  0, 'with no job');
select is((select count(*)::int from net.http_request_queue
            where convert_from(body, 'UTF8') like '%00000000-0000-4000-8000-0000000006c0%'),
  0, 'and no webhook');

insert into interactions (id, user_id, channel, transcript) values
  ('00000000-0000-4000-8000-0000000006c1', '00000000-0000-4000-8000-0000000006a1', 'voice',
   'I will call my sister on Sunday. Call me Friday at 9.');
select is((select (dispatches, next_attempt_at - now())::text from analysis_jobs
            where interaction_id = '00000000-0000-4000-8000-0000000006c1'),
  '(1,00:02:00)', 'a transcript gets a job whose webhook counts as its first dispatch, re-dispatch waits 2 minutes');
select is(pg_temp.status_of('00000000-0000-4000-8000-0000000006c1'), 'pending', 'and stays pending');

-- Claiming --------------------------------------------------------------------------
select throws_ok($$select claim_analysis(gen_random_uuid())$$, 'P0002', null, 'an unknown interaction');
select throws_ok($$select claim_analysis('00000000-0000-4000-8000-0000000006c1', 5)$$, '22023', null,
  'a lease out of range');

create temp table c1 as select claim_analysis('00000000-0000-4000-8000-0000000006c1', 120) as c;
create temp table tok (name text primary key, token uuid);
insert into tok select 't1', (c ->> 'claim_token')::uuid from c1;

select is((select c ->> 'status' from c1), 'claimed', 'the first claim takes the job');
select is(pg_temp.status_of('00000000-0000-4000-8000-0000000006c1'), 'running', 'the interaction is running');
select is((select (attempts, locked_until - now(), claim_token = (select token from tok where name = 't1'))::text
             from analysis_jobs where interaction_id = '00000000-0000-4000-8000-0000000006c1'),
  '(1,00:02:00,t)', 'one attempt, a lease, the claim token');
select is((select c -> 'interaction' ->> 'transcript' from c1),
  'I will call my sister on Sunday. Call me Friday at 9.', 'the claim carries the transcript');
select is((select c -> 'user' ->> 'timezone' from c1), 'America/New_York', 'and the user''s time zone');
select ok((select c ? 'context' and c -> 'context' ?& array['session_summary', 'open_commitments',
             'recent_interactions', 'pending_calls', 'queued_messages'] from c1),
  'and the bounded context');
select is((select position('5550161' in c::text) from c1), 0, 'but never the phone number');

select is((claim_analysis('00000000-0000-4000-8000-0000000006c1') ->> 'status'), 'busy',
  'a second claim of a running job is busy');

insert into interactions (id, user_id, channel, transcript) values
  ('00000000-0000-4000-8000-0000000006c2', '00000000-0000-4000-8000-0000000006a1', 'sms', 'Also, I hate mornings.'),
  ('00000000-0000-4000-8000-0000000006c3', '00000000-0000-4000-8000-0000000006b1', 'sms', 'Hi from user b.');
select is((claim_analysis('00000000-0000-4000-8000-0000000006c2') ->> 'status'), 'busy',
  'another interaction of the same user waits while one runs');
select is((select (next_attempt_at - now(), attempts)::text from analysis_jobs
            where interaction_id = '00000000-0000-4000-8000-0000000006c2'),
  '(00:01:00,0)', 'due again in a minute, no attempt spent');
create temp table c3 as select claim_analysis('00000000-0000-4000-8000-0000000006c3') as c;
insert into tok select 't3', (c ->> 'claim_token')::uuid from c3;
select is((select c ->> 'status' from c3), 'claimed', 'another user is not held up');
select is((select jsonb_array_length(c -> 'context' -> 'recent_interactions') from c1), 0,
  'the first interaction has no history');

-- Tool RPCs -----------------------------------------------------------------------------
select throws_ok($$select record_commitment(gen_random_uuid(), '00000000-0000-4000-8000-0000000006c1',
    'x', null, 'k0')$$, '55000', null, 'a tool needs the current claim token');
select throws_ok(format($$select record_commitment(%L, '00000000-0000-4000-8000-0000000006c1',
    'x', null, null)$$, (select token from tok where name = 't1')), '22023', null,
  'and an idempotency key');

create temp table rc as select record_commitment((select token from tok where name = 't1'),
  '00000000-0000-4000-8000-0000000006c1', 'Call my sister', now() + interval '3 days', 'k-commit') as r;
select is((select user_id::text from commitments where id = (select (r ->> 'commitment_id')::uuid from rc)),
  '00000000-0000-4000-8000-0000000006a1', 'record_commitment acts for the claimed user');
select is((record_commitment((select token from tok where name = 't1'),
    '00000000-0000-4000-8000-0000000006c1', 'Call my sister', now() + interval '3 days', 'k-commit')
    ->> 'commitment_id'), (select r ->> 'commitment_id' from rc),
  'the same key again returns the first commitment');
select is((select count(*)::int from commitments where user_id = '00000000-0000-4000-8000-0000000006a1'), 1,
  'and makes no second one');

insert into commitments (id, user_id, description) values
  ('00000000-0000-4000-8000-0000000006d2', '00000000-0000-4000-8000-0000000006b1', 'b''s own');
select throws_ok(format($$select update_commitment(%L, '00000000-0000-4000-8000-0000000006c1',
    '00000000-0000-4000-8000-0000000006d2', 'done', p_idempotency_key := 'k-u1')$$,
    (select token from tok where name = 't1')), 'P0002', null,
  'update_commitment refuses another user''s commitment');
select is((select status from commitments where id = '00000000-0000-4000-8000-0000000006d2'), 'open',
  'which stays as it was');
select is((update_commitment((select token from tok where name = 't1'),
    '00000000-0000-4000-8000-0000000006c1', (select (r ->> 'commitment_id')::uuid from rc), 'done',
    p_idempotency_key := 'k-u2') ->> 'status'), 'done', 'and updates the user''s own');
select throws_ok(format($$select update_commitment(%L, '00000000-0000-4000-8000-0000000006c1',
    %L, p_idempotency_key := 'k-u3')$$, (select token from tok where name = 't1'),
    (select r ->> 'commitment_id' from rc)), '22023', null, 'an update that changes nothing is refused');

create temp table sc as select analysis_schedule_call((select token from tok where name = 't1'),
  '00000000-0000-4000-8000-0000000006c1', 'check_in', now() + interval '1 day', 'ask about Sunday',
  null, 'k-call') as r;
select is((select user_id::text from scheduled_calls where id = (select (r ->> 'call_id')::uuid from sc)),
  '00000000-0000-4000-8000-0000000006a1', 'analysis_schedule_call schedules for the claimed user');
select is((analysis_schedule_call((select token from tok where name = 't1'),
    '00000000-0000-4000-8000-0000000006c1', 'check_in', now() + interval '1 day', 'ask about Sunday',
    null, 'k-call') ->> 'replayed'), 'true', 'a replay says so');
select is((select count(*)::int from scheduled_calls where user_id = '00000000-0000-4000-8000-0000000006a1'), 1,
  'and schedules nothing more');
select throws_ok(format($$select analysis_schedule_call(%L, '00000000-0000-4000-8000-0000000006c1',
    'check_in', now() + interval '91 days', p_idempotency_key := 'k-far')$$,
    (select token from tok where name = 't1')), '22023', null, 'calls more than 90 days ahead are refused');

insert into scheduled_calls (id, user_id, call_type, scheduled_for, next_attempt_at) values
  ('00000000-0000-4000-8000-0000000006e2', '00000000-0000-4000-8000-0000000006b1', 'check_in',
   now() + interval '1 day', now() + interval '1 day');
select throws_ok(format($$select analysis_cancel_scheduled_call(%L, '00000000-0000-4000-8000-0000000006c1',
    '00000000-0000-4000-8000-0000000006e2', 'not yours', 'k-cx')$$,
    (select token from tok where name = 't1')), 'P0002', null,
  'analysis_cancel_scheduled_call refuses another user''s call');
select is((select status from scheduled_calls where id = '00000000-0000-4000-8000-0000000006e2'), 'pending',
  'which stays pending');
select is((analysis_cancel_scheduled_call((select token from tok where name = 't1'),
    '00000000-0000-4000-8000-0000000006c1', (select (r ->> 'call_id')::uuid from sc), 'changed plans',
    'k-cancel') ->> 'cancelled'), 'true', 'and cancels the user''s own');

select throws_ok(format($$select analysis_queue_message(%L, '00000000-0000-4000-8000-0000000006c1',
    'now!', 'urgent', p_idempotency_key := 'k-urgent')$$, (select token from tok where name = 't1')),
  '22023', null, 'analysis_queue_message never queues urgent');
create temp table qm as select analysis_queue_message((select token from tok where name = 't1'),
  '00000000-0000-4000-8000-0000000006c1', 'Good luck with your sister on Sunday!',
  p_idempotency_key := 'k-msg') as r;
select is((select (user_id, agent_id, final_message, idempotency_key)::text from message_queue
            where id = (select (r ->> 'message_id')::uuid from qm)),
  '(00000000-0000-4000-8000-0000000006a1,analyze-interaction,"Good luck with your sister on Sunday!",k-msg)',
  'analysis_queue_message queues for the claimed user through enqueue_message');
select is((select count(*)::int from analysis_tool_effects
            where interaction_id = '00000000-0000-4000-8000-0000000006c1'), 5,
  'every effect is remembered by its key');

-- Finishing --------------------------------------------------------------------------------
select is((finish_analysis(gen_random_uuid(), '00000000-0000-4000-8000-0000000006c1', '{}') ->> 'status'),
  'stale', 'finish_analysis with another token changes nothing');
select is(pg_temp.status_of('00000000-0000-4000-8000-0000000006c1'), 'running', 'the interaction still runs');
select throws_ok(format($$select finish_analysis(%L, '00000000-0000-4000-8000-0000000006c1',
    '{"sentiment": "ecstatic"}')$$, (select token from tok where name = 't1')), '22023', null,
  'an unknown sentiment is refused');

select is((finish_analysis((select token from tok where name = 't1'), '00000000-0000-4000-8000-0000000006c1',
  jsonb_build_object(
    'sentiment', 'positive',
    'extracted_commitments', jsonb_build_array(jsonb_build_object('description', 'Call my sister')),
    'insights', '{"items": [{"key": "sister", "value": "Has a sister"}], "other": 1}'::jsonb,
    'session_summary', repeat('é', 3000),
    'run', '{"model": "claude-test", "duration_ms": 1200, "input_tokens": 100, "output_tokens": 20,
             "cache_read_tokens": 900, "cache_write_tokens": 50, "cost_usd": 0.0123,
             "actions": [{"tool": "record_commitment", "status": "ok"}]}'::jsonb
  )) ->> 'status'), 'done', 'finish_analysis with the claim token');
select is((select (analysis_status, sentiment, jsonb_array_length(extracted_commitments), analyzed_at = now())::text
             from interactions where id = '00000000-0000-4000-8000-0000000006c1'),
  '(done,positive,1,t)', 'records sentiment and commitments on the interaction');
select is((select insights from users where id = '00000000-0000-4000-8000-0000000006a1'),
  '{"items": [{"key": "sister", "value": "Has a sister"}], "other": 1}'::jsonb, 'stores the insights');
select ok((select octet_length(context_summary) between 3990 and 4000 and last_interaction_id = '00000000-0000-4000-8000-0000000006c1'
             from user_sessions where user_id = '00000000-0000-4000-8000-0000000006a1'),
  'keeps the session summary under 4 KB, cut on a character');
select is((select (model, duration_ms, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                   cost_usd, jsonb_array_length(actions), success)::text
             from sdk_actions where interaction_id = '00000000-0000-4000-8000-0000000006c1'),
  '(claude-test,1200,100,20,900,50,0.012300,1,t)', 'writes one sdk_actions row');
select is((select (finished_at is not null, locked_until, claim_token)::text from analysis_jobs
            where interaction_id = '00000000-0000-4000-8000-0000000006c1'),
  '(t,,)', 'and finishes the job');
select is((claim_analysis('00000000-0000-4000-8000-0000000006c1') ->> 'status'), 'done',
  'a replayed webhook finds it done');
select throws_ok(format($$select record_commitment(%L, '00000000-0000-4000-8000-0000000006c1',
    'late', null, 'k-late')$$, (select token from tok where name = 't1')), '55000', null,
  'a finished claim can do nothing more');

-- Failing and re-dispatching ------------------------------------------------------------------
create temp table c2 as select claim_analysis('00000000-0000-4000-8000-0000000006c2') as c;
insert into tok select 't2', (c ->> 'claim_token')::uuid from c2;
select is((select c ->> 'status' from c2), 'claimed', 'once the user''s run is over, the next one goes');
select is((select jsonb_array_length(c -> 'context' -> 'recent_interactions') from c2), 1,
  'with the earlier interactions as history');
select is((select c -> 'context' ->> 'session_summary' from c2), (select context_summary from user_sessions
            where user_id = '00000000-0000-4000-8000-0000000006a1'), 'and the session summary');
select is((fail_analysis((select token from tok where name = 't2'), '00000000-0000-4000-8000-0000000006c2',
  'model overloaded', '{"model": "claude-test", "input_tokens": 7}') ->> 'status'), 'retry',
  'a failure with attempts left is retried');
select is((select (analysis_status, analysis_error)::text from interactions
            where id = '00000000-0000-4000-8000-0000000006c2'),
  '(pending,"model overloaded")', 'the interaction is pending again, with the error');
select is((select (next_attempt_at - now(), locked_until, claim_token, last_error)::text from analysis_jobs
            where interaction_id = '00000000-0000-4000-8000-0000000006c2'),
  '(00:01:00,,,"model overloaded")', 'after a minute of backoff, the lease released');
select is((select (success, error, input_tokens)::text from sdk_actions
            where interaction_id = '00000000-0000-4000-8000-0000000006c2'),
  '(f,"model overloaded",7)', 'the failed run has its sdk_actions row');

select is(redispatch_analysis_jobs(), 0, 'nothing is re-dispatched before it is due');
update analysis_jobs set next_attempt_at = now() - interval '1 second'
 where interaction_id = '00000000-0000-4000-8000-0000000006c2';
create temp table before_redispatch as
  select last_request_id, dispatches from analysis_jobs where interaction_id = '00000000-0000-4000-8000-0000000006c2';
select is(redispatch_analysis_jobs(), 1, 'a due job is re-dispatched');
select is((select convert_from(q.body, 'UTF8')::jsonb from net.http_request_queue q
             join analysis_jobs j on j.last_request_id = q.id
            where j.interaction_id = '00000000-0000-4000-8000-0000000006c2'),
  '{"interaction_id": "00000000-0000-4000-8000-0000000006c2"}'::jsonb, 'as {interaction_id}');
select is((select (j.dispatches - b.dispatches, j.next_attempt_at - now())::text
             from analysis_jobs j, before_redispatch b
            where j.interaction_id = '00000000-0000-4000-8000-0000000006c2'),
  '(1,00:03:00)', 'and not again while its request may be in flight');

update analysis_jobs set attempts = max_attempts, next_attempt_at = now() - interval '1 second'
 where interaction_id = '00000000-0000-4000-8000-0000000006c2';
select is(redispatch_analysis_jobs(), 0, 'a job out of attempts is not sent again');
select is((select (analysis_status, analysis_error)::text from interactions
            where id = '00000000-0000-4000-8000-0000000006c2'),
  '(failed,"model overloaded")', 'it fails with its last error');
select isnt((select finished_at from analysis_jobs where interaction_id = '00000000-0000-4000-8000-0000000006c2'),
  null, 'and its job is finished');

update analysis_jobs set max_attempts = 1 where interaction_id = '00000000-0000-4000-8000-0000000006c3';
select is((fail_analysis((select token from tok where name = 't3'), '00000000-0000-4000-8000-0000000006c3',
  'bad tool loop') ->> 'status'), 'failed', 'the last attempt failing fails for good');
select is((select (analysis_status, analysis_error)::text from interactions
            where id = '00000000-0000-4000-8000-0000000006c3'),
  '(failed,"bad tool loop")', 'with the error');

-- A run that died: its lease lapses, and the job can be claimed afresh.
insert into interactions (id, user_id, channel, transcript) values
  ('00000000-0000-4000-8000-0000000006c4', '00000000-0000-4000-8000-0000000006b1', 'sms', 'Another one.');
create temp table c4 as select claim_analysis('00000000-0000-4000-8000-0000000006c4') as c;
update analysis_jobs set locked_until = now() - interval '1 second'
 where interaction_id = '00000000-0000-4000-8000-0000000006c4';
select is((claim_analysis('00000000-0000-4000-8000-0000000006c4') ->> 'status'), 'claimed',
  'a lapsed lease can be claimed again');
select throws_ok(format($$select record_commitment(%L, '00000000-0000-4000-8000-0000000006c4',
    'x', null, 'k-old')$$, (select c ->> 'claim_token' from c4)), '55000', null,
  'and the old claim can no longer act');

-- Grants -------------------------------------------------------------------------------------------
select is(
  (select array_agg(p.oid::regprocedure::text order by 1)
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public'
      and p.proname in ('claim_analysis', 'finish_analysis', 'fail_analysis', 'redispatch_analysis_jobs',
                        'record_commitment', 'update_commitment', 'analysis_schedule_call',
                        'analysis_cancel_scheduled_call', 'analysis_queue_message', 'analysis_claim_user',
                        'analysis_replay', 'analysis_remember', 'analysis_give_up', 'analysis_held_job',
                        'analysis_record_run', 'analysis_truncate_bytes', 'on_interaction_inserted')
      and (has_function_privilege('anon', p.oid, 'execute')
           or has_function_privilege('authenticated', p.oid, 'execute'))),
  null,
  'anon and authenticated may execute none of the analysis functions'
);
select ok(has_function_privilege('service_role', 'public.claim_analysis(uuid, integer)', 'execute')
      and has_function_privilege('service_role', 'public.redispatch_analysis_jobs(integer)', 'execute')
      and has_function_privilege('service_role',
            'public.record_commitment(uuid, uuid, text, timestamptz, text)', 'execute'),
  'service_role may');

-- Without the Vault secrets nothing is sent, so the job is due at once.
delete from vault.secrets where name in ('project_url', 'orchestrator_secret');
insert into interactions (id, user_id, channel, transcript) values
  ('00000000-0000-4000-8000-0000000006c5', '00000000-0000-4000-8000-0000000006b1', 'sms', 'No secrets.');
select is((select (dispatches, last_request_id, next_attempt_at = now())::text from analysis_jobs
            where interaction_id = '00000000-0000-4000-8000-0000000006c5'),
  '(0,,t)', 'without the Vault secrets the job waits for the per-minute run, due now');

select * from finish();
rollback;
