-- Routines: every RPC parameter and step field refused with 22023 naming it and nothing written;
-- the state changes; one run per routine and occurrence; leases; retries; skips; built-ins.
-- now() is fixed inside this transaction, so "due" is arranged by moving next_run_at.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(114);

-- Anything other tests left due waits, so only this file's routines are claimed.
update routines set next_run_at = now() + interval '10 years' where next_run_at is not null;
update routine_runs set next_attempt_at = now() + interval '10 years' where status = 'running';

insert into users (id, phone_number, timezone) values
  ('00000000-0000-4000-8000-0000000a0101', '+19995550151', 'Europe/Chisinau'),
  ('00000000-0000-4000-8000-0000000a0102', '+19995550152', 'UTC');
create function pg_temp.u1() returns uuid language sql as $$ select '00000000-0000-4000-8000-0000000a0101'::uuid $$;
create function pg_temp.u2() returns uuid language sql as $$ select '00000000-0000-4000-8000-0000000a0102'::uuid $$;
create function pg_temp.steps() returns jsonb language sql as $$ select $j$[
  {"id": "ctx", "uses": "context.read"},
  {"id": "plan", "uses": "claude.generate", "with": {"instruction": "Plan ${user.local_date}", "context": "${steps.ctx}"}},
  {"id": "send", "uses": "sms.queue", "when": "length(steps.plan.text) > `0`", "with": {"text": "${steps.plan.text}"}}
]$j$::jsonb $$;
-- create_routine with one step's `with` replaced.
create function pg_temp.with_step(p_uses text, p_with jsonb, p_when text default null) returns uuid
language sql as $$
  select create_routine(pg_temp.u1(), 'bad', jsonb_build_array(
    jsonb_strip_nulls(jsonb_build_object('id', 'a', 'uses', p_uses, 'with', p_with, 'when', p_when))),
    'FREQ=DAILY;BYHOUR=8;BYMINUTE=30')
$$;
create temp table counts as select (select count(*) from routines) as routines,
  (select count(*) from routine_runs) as runs;

-- create_routine: each parameter ------------------------------------------------------------
select throws_ok($$select create_routine(null, 'x', pg_temp.steps(), 'FREQ=DAILY')$$,
  '22023', 'p_user_id is required', 'a missing user');
select throws_ok($$select create_routine(gen_random_uuid(), 'x', pg_temp.steps(), 'FREQ=DAILY')$$,
  'P0002', null, 'an unknown user');
select throws_ok($$select create_routine(pg_temp.u1(), '  ', pg_temp.steps(), 'FREQ=DAILY')$$,
  '22023', 'p_name must be 1 to 100 characters', 'a blank name');
select throws_ok($$select create_routine(pg_temp.u1(), repeat('n', 101), pg_temp.steps(), 'FREQ=DAILY')$$,
  '22023', 'p_name must be 1 to 100 characters', 'a long name');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', null, 'FREQ=DAILY')$$,
  '22023', 'p_steps must be a JSON array of steps', 'no steps');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', '[]', 'FREQ=DAILY')$$,
  '22023', 'p_steps must have 1 to 20 steps', 'an empty pipeline');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', pg_temp.steps())$$,
  '22023', 'p_rrule and p_run_at: give exactly one (a recurrence or one instant)', 'neither schedule');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', pg_temp.steps(), 'FREQ=DAILY', now() + interval '1 day')$$,
  '22023', 'p_rrule and p_run_at: give exactly one (a recurrence or one instant)', 'both schedules');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', pg_temp.steps(), 'FREQ=HOURLY')$$,
  '22023', null, 'a sub-daily RRULE');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', pg_temp.steps(), 'FREQ=DAILY;BYMINUTE=0,10,20')$$,
  '22023', 'p_rrule is not accepted: the RRULE recurs as often as every 10 minutes; the minimum gap between calls is 60 minutes',
  'an RRULE more often than the call guardrails allow');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', pg_temp.steps(), null, now() - interval '1 hour')$$,
  '22023', 'p_run_at must be from now to a year ahead', 'a run_at in the past');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', pg_temp.steps(), 'FREQ=DAILY', null, '[1]')$$,
  '22023', 'p_params must be a JSON object', 'params not an object');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', pg_temp.steps(), 'FREQ=DAILY', null, '{"bad key": 1}')$$,
  '22023', null, 'a param name templates cannot name');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', pg_temp.steps(), 'FREQ=DAILY', null, '{}', '')$$,
  '22023', 'p_idempotency_key must be 1 to 200 characters', 'an empty idempotency key');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', pg_temp.steps(), 'FREQ=DAILY', null, '{}', null, 'twice')$$,
  '22023', 'p_missed must be once or each', 'an unknown missed policy');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', pg_temp.steps(), 'FREQ=DAILY', null, '{}', null, 'once', '')$$,
  '22023', 'p_created_by must be 1 to 100 characters', 'an empty creator');

-- create_routine: each step field ---------------------------------------------------------------
select throws_ok($$select create_routine(pg_temp.u1(), 'x', '["ctx"]', 'FREQ=DAILY')$$,
  '22023', 'p_steps: step #1 must be an object {id, uses, with, when}', 'a step that is not an object');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', '[{"id": "a", "uses": "context.read", "retry": 3}]', 'FREQ=DAILY')$$,
  '22023', 'p_steps: step #1 has an unknown field retry', 'an unknown step field');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', '[{"id": "A b", "uses": "context.read"}]', 'FREQ=DAILY')$$,
  '22023', 'p_steps: step #1 id must be 1 to 40 characters of a-z, 0-9 and _, starting with a letter', 'a bad step id');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', '[{"id": "a", "uses": "context.read"}, {"id": "a", "uses": "context.read"}]', 'FREQ=DAILY')$$,
  '22023', 'p_steps: step a (#2) id is used by an earlier step', 'a repeated step id');
select throws_ok($$select pg_temp.with_step('shell.exec', '{}')$$,
  '22023', 'p_steps: step a (#1) uses must be one of call.schedule, claude.generate, context.read, http.post, memory.update, sms.queue',
  'an unknown tool');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', '[{"id": "a", "uses": "sms.queue", "with": "hi"}]', 'FREQ=DAILY')$$,
  '22023', 'p_steps: step a (#1) with must be an object', 'with not an object');
select throws_ok($$select pg_temp.with_step('context.read', '{"user_id": "x"}')$$,
  '22023', 'p_steps: step a (#1) with.user_id is not a field of this tool', 'a field the tool does not have');
select throws_ok($$select pg_temp.with_step('claude.generate', '{}')$$,
  '22023', 'p_steps: step a (#1) with.instruction is required', 'a missing required field');
select throws_ok($$select pg_temp.with_step('claude.generate', jsonb_build_object('instruction', repeat('i', 4001)))$$,
  '22023', 'p_steps: step a (#1) with.instruction must be at most 4000 characters', 'an over-long instruction');
select throws_ok($$select pg_temp.with_step('claude.generate', '{"instruction": "x", "max_chars": 5000}')$$,
  '22023', 'p_steps: step a (#1) with.max_chars must be at most 1600', 'max_chars over the bound');
select throws_ok($$select pg_temp.with_step('claude.generate', '{"instruction": "x", "max_chars": 1.5}')$$,
  '22023', 'p_steps: step a (#1) with.max_chars must be integer', 'a fractional max_chars');
select throws_ok($$select pg_temp.with_step('claude.generate', '{"instruction": "x", "json": "yes"}')$$,
  '22023', 'p_steps: step a (#1) with.json must be boolean', 'json not a boolean');
select throws_ok($$select pg_temp.with_step('sms.queue', '{"priority": "low"}')$$,
  '22023', 'p_steps: step a (#1) with must have exactly one of text, data', 'an SMS with neither text nor data');
select throws_ok($$select pg_temp.with_step('sms.queue', '{"text": "hi", "priority": "now"}')$$,
  '22023', 'p_steps: step a (#1) with.priority must be one of urgent, high, medium, low', 'an unknown priority');
select throws_ok($$select pg_temp.with_step('sms.queue', '{"text": "hi", "scheduled_for": "tomorrow"}')$$,
  '22023', 'p_steps: step a (#1) with.scheduled_for is not valid (an ISO 8601 instant with offset)', 'a bad instant');
select throws_ok($$select pg_temp.with_step('sms.queue', '{"text": "hi", "idempotency_key": "k"}')$$,
  '22023', 'p_steps: step a (#1) with.idempotency_key is not a field of this tool', 'an idempotency key (the run makes it)');
select throws_ok($$select pg_temp.with_step('call.schedule', '{"call_type": "Check In", "scheduled_for": "${occurrence}"}')$$,
  '22023', 'p_steps: step a (#1) with.call_type is not valid', 'a call type outside the pattern');
select throws_ok($$select pg_temp.with_step('memory.update', '{"items": [{"key": "k"}]}')$$,
  '22023', 'p_steps: step a (#1) with.items[0].value is required', 'a memory item without a value');
select throws_ok($$select pg_temp.with_step('memory.update', '{"items": [{"key": "k", "value": "v", "category": "mood"}]}')$$,
  '22023', null, 'a memory item of an unknown category');
select throws_ok($$select pg_temp.with_step('http.post', '{"url": "ftp://example.com/x"}')$$,
  '22023', 'p_steps: step a (#1) with.url must be an http or https URL', 'a non-http URL');
select throws_ok($$select pg_temp.with_step('http.post', '{"url": "https://evil.example.com/hook"}')$$,
  '22023', 'p_steps: step a (#1) with.url: https://evil.example.com is not in ROUTINE_HTTP_ALLOWLIST', 'an origin outside the allowlist');
select throws_ok($$select pg_temp.with_step('http.post', '{"url": "https://${params.host}/hook"}')$$,
  '22023', 'p_steps: step a (#1) with.url must name its origin literally (templates only after it)', 'a templated origin');
select throws_ok($$select pg_temp.with_step('sms.queue', '{"text": "${steps.a.text}"}')$$,
  '22023', 'p_steps: step a (#1) with: ${steps.a.text}: a step may only refer to steps before it', 'a step reading itself');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', '[{"id": "a", "uses": "sms.queue", "with": {"text": "${steps.b.text}"}}, {"id": "b", "uses": "claude.generate", "with": {"instruction": "x"}}]', 'FREQ=DAILY')$$,
  '22023', 'p_steps: step a (#1) with: ${steps.b.text}: a step may only refer to steps before it', 'a step reading a later one');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', '[{"id": "c", "uses": "context.read"}, {"id": "a", "uses": "sms.queue", "with": {"text": "${steps.c.mood}"}}]', 'FREQ=DAILY')$$,
  '22023', null, 'an output field the tool does not have');
select throws_ok($$select pg_temp.with_step('sms.queue', '{"text": "${params.city}"}')$$,
  '22023', 'p_steps: step a (#1) with: ${params.city}: there is no parameter city', 'an unknown parameter');
select throws_ok($$select pg_temp.with_step('sms.queue', '{"text": "${user.phone}"}')$$,
  '22023', 'p_steps: step a (#1) with: ${user.phone}: user has id, timezone, local_date and local_time', 'an unknown user field');
select throws_ok($$select pg_temp.with_step('sms.queue', '{"text": "${now}"}')$$,
  '22023', null, 'an unknown reference');
select throws_ok($$select pg_temp.with_step('sms.queue', '{"text": "hi ${user.timezone"}')$$,
  '22023', 'p_steps: step a (#1) with has a ${ without its closing }', 'an unclosed template');
select throws_ok($$select pg_temp.with_step('context.read', '{}', '')$$,
  '22023', 'p_steps: step a (#1) when must be a JMESPath expression of 1 to 1000 characters', 'an empty condition');
select throws_ok($$select pg_temp.with_step('context.read', '{}', 'steps.a.text')$$,
  '22023', 'p_steps: step a (#1) when reads steps.a: a step may only refer to steps before it', 'a condition on its own step');
select throws_ok($$select pg_temp.with_step('context.read', '{}', 'length(params.x')$$,
  '22023', 'p_steps: step a (#1) when has unbalanced brackets', 'a condition with unbalanced brackets');
select throws_ok($$select pg_temp.with_step('context.read', '{}', 'params.x == ''open')$$,
  '22023', 'p_steps: step a (#1) when has an unterminated literal', 'a condition with an open literal');
select throws_ok($$select pg_temp.with_step('sms.queue', '{"text": "hi", "can_delay": "yes"}')$$,
  '22023', 'p_steps: step a (#1) with.can_delay must be boolean', 'can_delay not a boolean');
select throws_ok($$select pg_temp.with_step('sms.queue', '{"data": {}, "text": "hi"}')$$,
  '22023', 'p_steps: step a (#1) with must have exactly one of text, data', 'both text and data');
select throws_ok($$select pg_temp.with_step('call.schedule', jsonb_build_object('call_type', 'check_in', 'scheduled_for', '${occurrence}', 'custom_instructions', repeat('c', 4001)))$$,
  '22023', 'p_steps: step a (#1) with.custom_instructions must be at most 4000 characters', 'over-long call instructions');
select throws_ok($$select pg_temp.with_step('call.schedule', '{"scheduled_for": "${occurrence}"}')$$,
  '22023', 'p_steps: step a (#1) with.call_type is required', 'a call without its type');
select throws_ok($$select pg_temp.with_step('memory.update', jsonb_build_object('retire', jsonb_build_array(repeat('k', 81))))$$,
  '22023', 'p_steps: step a (#1) with.retire[0] must be at most 80 characters', 'an over-long key to retire');
select throws_ok($$select pg_temp.with_step('http.post', '{"url": "https://user:pw@hooks.example.com/x"}')$$,
  '22023', 'p_steps: step a (#1) with.url must not carry credentials', 'a URL with credentials');
select throws_ok($$select pg_temp.with_step('http.post', '{"body": {}}')$$,
  '22023', 'p_steps: step a (#1) with.url is required', 'a post without a URL');
select throws_ok($$select create_routine(pg_temp.u1(), 'x', '[{"id": "a", "uses": "context.read", "when": 5}]', 'FREQ=DAILY')$$,
  '22023', 'p_steps: step a (#1) when must be a string', 'a condition that is not a string');
select is((select count(*) from routines), (select routines from counts), 'no refused routine was stored');

-- A good routine; idempotency -----------------------------------------------------------------
create temp table r as select create_routine(pg_temp.u1(), 'morning', pg_temp.steps(),
  'FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8;BYMINUTE=30', null, '{}', 'k1') as id;
select is(create_routine(pg_temp.u1(), 'other', pg_temp.steps(), 'FREQ=DAILY', null, '{}', 'k1'),
  (select id from r), 'the same idempotency key returns the same routine');
select is((select status || ' ' || next_run_known from routines where id = (select id from r)),
  'active false', 'a new RRULE routine waits for its first occurrence to be computed');

-- State RPCs ---------------------------------------------------------------------------------
select throws_ok($$select pause_routine(null)$$, '22023', 'p_routine_id is required', 'pause: no id');
select throws_ok($$select pause_routine(gen_random_uuid())$$, 'P0002', null, 'pause: unknown routine');
select throws_ok($$select snooze_routine((select id from r), now() - interval '1 minute')$$,
  '22023', 'p_until must be after now and at most a year ahead', 'snooze into the past');
select throws_ok($$select snooze_routine((select id from r), null)$$,
  '22023', 'p_until must be after now and at most a year ahead', 'snooze without an end');
select throws_ok($$select run_routine_now(gen_random_uuid())$$, 'P0002', null, 'run now: unknown routine');
select throws_ok($$select resume_routine(null)$$, '22023', 'p_routine_id is required', 'resume: no id');
select throws_ok($$select snooze_routine(null, now() + interval '1 day')$$, '22023', 'p_routine_id is required', 'snooze: no id');
select throws_ok($$select end_routine(null)$$, '22023', 'p_routine_id is required', 'end: no id');
select throws_ok($$select end_routine(gen_random_uuid())$$, 'P0002', null, 'end: unknown routine');
select throws_ok($$select run_routine_now(null)$$, '22023', 'p_routine_id is required', 'run now: no id');
select throws_ok($$select claim_routine_runs(0, 60)$$, '22023', 'p_limit must be between 1 and 1000', 'claim: a zero limit');
select throws_ok($$select claim_routine_runs(10, 5)$$, '22023', 'p_lease_seconds must be between 10 and 900', 'claim: a short lease');
select throws_ok($$select sync_routine_http_origins(array['https://hooks.example.com/path'])$$, '22023',
  'p_origins must be origins such as https://hooks.example.com', 'an allowlist entry with a path');
select throws_ok($$select sync_routine_http_origins(null)$$, '22023', null, 'no allowlist');

-- Claiming: one run per occurrence; paused and snoozed skip --------------------------------------
update routines set next_run_known = true, next_run_at = now() - interval '1 minute' where id = (select id from r);
create temp table claimed as select claim_routine_runs(10, 60) as runs;
select is((select jsonb_array_length(runs) from claimed), 1, 'the due occurrence makes one leased run');
select is((select count(*) from routine_runs where routine_id = (select id from r)), 1::bigint, 'one run row');
select is((select next_run_known from routines where id = (select id from r)), false,
  'the routine waits for its next occurrence to be planned');
-- The same occurrence again (say, a plan that computed it twice) makes no second run.
update routines set next_run_known = true, next_run_at = (select occurrence from routine_runs where routine_id = (select id from r))
 where id = (select id from r);
select is(jsonb_array_length(claim_routine_runs(10, 60)), 0, 'a leased run is not claimed again');
select is((select count(*) from routine_runs where routine_id = (select id from r)), 1::bigint,
  'the same occurrence makes no second run');

-- Steps under the lease -----------------------------------------------------------------------
create temp table lease as select (runs -> 0 ->> 'run_id')::uuid as run_id, (runs -> 0 ->> 'lease_token')::uuid as token from claimed;
select lives_ok($$select record_routine_step((select run_id from lease), (select token from lease), 'ctx', '{"status": "succeeded"}', 60)$$,
  'a step is recorded under the lease');
select throws_ok($$select record_routine_step((select run_id from lease), gen_random_uuid(), 'plan', '{}', 60)$$,
  '55000', null, 'another lease cannot record a step');
select is(fail_routine_step((select run_id from lease), (select token from lease), 'plan', '{"status": "retrying"}', 'boom'),
  'running', 'a failed step leaves the run to be retried');
select ok((select next_attempt_at > now() and lease_token is null from routine_runs where id = (select run_id from lease)),
  'after a backoff, without a lease');
update routine_runs set next_attempt_at = now() - interval '1 second' where id = (select run_id from lease);
create temp table again as select claim_routine_runs(10, 60) -> 0 as run;
select is((select run -> 'done' ? 'ctx' from again), true, 'the retried run carries its finished steps');
select is(fail_routine_step((select run_id from lease), (select (run ->> 'lease_token')::uuid from again), 'plan', '{}', 'boom'), 'running', 'second failure');
update routine_runs set next_attempt_at = now() - interval '1 second' where id = (select run_id from lease);
select is(fail_routine_step((select run_id from lease), (select (claim_routine_runs(10, 60) -> 0 ->> 'lease_token')::uuid), 'plan', '{}', 'boom'),
  'failed', 'the third failure fails the run');
select is((select failed_step || ': ' || error from routine_runs where id = (select run_id from lease)), 'plan: boom',
  'the failed run names its step and error');

-- Paused and snoozed occurrences are skipped with a reason ----------------------------------------
select pause_routine((select id from r));
update routines set next_run_known = true, next_run_at = now() - interval '2 minutes' where id = (select id from r);
select is(jsonb_array_length(claim_routine_runs(10, 60)), 0, 'a paused routine runs nothing');
select is((select reason from routine_runs where routine_id = (select id from r) and occurrence = now() - interval '2 minutes'),
  'the routine is paused', 'its occurrence is skipped as paused');
select resume_routine((select id from r));
select snooze_routine((select id from r), now() + interval '1 day');
update routines set next_run_known = true, next_run_at = now() - interval '3 minutes' where id = (select id from r);
select is(jsonb_array_length(claim_routine_runs(10, 60)), 0, 'a snoozed routine runs nothing');
select matches((select reason from routine_runs where routine_id = (select id from r) and occurrence = now() - interval '3 minutes'),
  '^the routine is snoozed until ', 'its occurrence is skipped as snoozed');
select isnt((select run_routine_now((select id from r))), null, 'run now works while snoozed');
select end_routine((select id from r));
select throws_ok($$select resume_routine((select id from r))$$, '22023', 'p_routine_id: the routine has ended',
  'an ended routine cannot be resumed');

-- Built-ins -----------------------------------------------------------------------------------
select throws_ok($$select enable_builtin_routine(pg_temp.u2(), 'evening_plan')$$,
  '22023', 'p_template must be morning_plan, weekly_review or commitment_follow_up', 'an unknown built-in');
select throws_ok($$select enable_builtin_routine(null, 'morning_plan')$$, '22023', 'p_user_id is required', 'built-in: no user');
select throws_ok($$select enable_builtin_routine(gen_random_uuid(), 'morning_plan')$$, 'P0002', null, 'built-in: unknown user');
select throws_ok($$select enable_builtin_routine(pg_temp.u2(), 'morning_plan', '{"time": "7am"}')$$,
  '22023', 'p_params.time must be HH:MM (24-hour)', 'a bad time');
select throws_ok($$select enable_builtin_routine(pg_temp.u2(), 'morning_plan', '{"days": "MON"}')$$,
  '22023', 'p_params.days must be days such as MO,TU,WE,TH,FR', 'bad days');
select throws_ok($$select enable_builtin_routine(pg_temp.u2(), 'weekly_review', '{"day": "XX"}')$$,
  '22023', 'p_params.day must be one of MO, TU, WE, TH, FR, SA, SU', 'a bad day');
select throws_ok($$select enable_builtin_routine(pg_temp.u2(), 'commitment_follow_up', '{"delay_minutes": -1}')$$,
  '22023', 'p_params.delay_minutes must be a whole number from 0 to 1440', 'a negative delay');
select throws_ok($$select enable_builtin_routine(pg_temp.u2(), 'commitment_follow_up', '{"channel": "email"}')$$,
  '22023', 'p_params.channel must be sms or call', 'an unknown channel');
select throws_ok($$select enable_builtin_routine(pg_temp.u2(), 'morning_plan', '{"colour": "red"}')$$,
  '22023', null, 'a parameter the built-in does not have');
select throws_ok($$select enable_builtin_routine(pg_temp.u2(), 'morning_plan', '[]')$$,
  '22023', 'p_params must be a JSON object', 'built-in params not an object');
select is((select count(*) from routines where user_id = pg_temp.u2()), 0::bigint, 'no refused built-in was stored');
create temp table b as select enable_builtin_routine(pg_temp.u2(), 'morning_plan', '{"time": "07:00"}') as id;
select is((select rrule from routines where id = (select id from b)), 'FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=7;BYMINUTE=0',
  'morning_plan at 07:00 on weekdays');
select is(enable_builtin_routine(pg_temp.u2(), 'morning_plan', '{"time": "07:30"}'), (select id from b),
  'enabling it again adjusts the same routine');
select is((select params ->> 'time' from routines where id = (select id from b)), '07:30', 'with the new time');
select isnt(enable_builtin_routine(pg_temp.u2(), 'weekly_review'), null, 'weekly_review installs');
select isnt(enable_builtin_routine(pg_temp.u2(), 'commitment_follow_up', '{"delay_minutes": 0}'), null,
  'commitment_follow_up installs');

-- Follow-ups: one per open commitment, none for a settled one ----------------------------------
update routines set next_run_at = now() + interval '10 years' where user_id = pg_temp.u2() and next_run_at is not null;
insert into commitments (user_id, description, due_at) values
  (pg_temp.u2(), 'Call the bank', now() - interval '1 minute'),
  (pg_temp.u2(), 'Book the dentist', now() - interval '1 minute');
update commitments set status = 'done' where description = 'Book the dentist' and user_id = pg_temp.u2();
create temp table f as select claim_routine_runs(10, 60) as runs;
select is((select jsonb_array_length(runs) from f), 1, 'one follow-up, for the open commitment');
select is((select runs -> 0 -> 'trigger' -> 'commitment' ->> 'description' from f), 'Call the bank',
  'it carries the commitment');
select is(jsonb_array_length(claim_routine_runs(10, 60)), 0, 'a second tick makes no second follow-up');

-- Privileges -----------------------------------------------------------------------------------
select ok(not has_function_privilege('anon', 'public.create_routine(uuid, text, jsonb, text, timestamptz, jsonb, text, text, text)', 'execute'),
  'anon cannot create routines');
select ok(not has_table_privilege('authenticated', 'public.routine_runs', 'select'), 'clients cannot read runs');

select * from finish();
rollback;
