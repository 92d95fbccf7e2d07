-- Scheduled calls: the agents' RPCs refuse bad values and write nothing;
-- claiming, dispatch outcomes, recurrence and completion. now() is fixed inside
-- this transaction, so "due" is arranged by moving next_attempt_at.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(100);

-- Anything other tests left due waits, so only this file's calls are claimed.
update scheduled_calls set next_attempt_at = now() + interval '10 years' where status = 'pending';

insert into users (id, phone_number, timezone) values
  ('00000000-0000-4000-8000-0000000ca111', '+19995550141', 'UTC'),
  ('00000000-0000-4000-8000-0000000ca112', '+19995550142', 'America/New_York'),
  ('00000000-0000-4000-8000-0000000ca113', '+19995550143', 'Pacific/Auckland'),
  ('00000000-0000-4000-8000-0000000ca114', '+19995550144', 'UTC');
create temp table counts as select count(*) as n from scheduled_calls;
create function pg_temp.u1() returns uuid language sql as $$ select '00000000-0000-4000-8000-0000000ca111'::uuid $$;
create function pg_temp.u2() returns uuid language sql as $$ select '00000000-0000-4000-8000-0000000ca112'::uuid $$;
create function pg_temp.u3() returns uuid language sql as $$ select '00000000-0000-4000-8000-0000000ca113'::uuid $$;
create function pg_temp.u4() returns uuid language sql as $$ select '00000000-0000-4000-8000-0000000ca114'::uuid $$;

-- Validation --------------------------------------------------------------------
select throws_ok($$select schedule_call(null, 'checkin', now() + interval '1 hour')$$,
  '22023', 'p_user_id is required', 'a missing user id');
select throws_ok($$select schedule_call(gen_random_uuid(), 'checkin', now() + interval '1 hour')$$,
  'P0002', null, 'an unknown user');
select throws_ok($$select schedule_call(pg_temp.u1(), 'Morning Call', now() + interval '1 hour')$$,
  '22023', 'p_call_type must be 1 to 64 characters of a-z, 0-9, _ or - (got Morning Call)',
  'a call type outside the table''s pattern');
select throws_ok($$select schedule_call(pg_temp.u1(), null, now() + interval '1 hour')$$,
  '22023', null, 'a null call type');
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', null)$$,
  '22023', 'p_scheduled_for must not be null', 'a null schedule');
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', now() + interval '30 seconds')$$,
  '22023', 'p_scheduled_for must be at least 1 minute ahead', 'less than a minute ahead');
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', now() - interval '1 hour')$$,
  '22023', 'p_scheduled_for must be at least 1 minute ahead', 'in the past');
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', now() + interval '91 days')$$,
  '22023', 'p_scheduled_for must be at most 90 days ahead', 'more than 90 days ahead');
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', now() + interval '1 hour', repeat('x', 4001))$$,
  '22023', 'p_custom_instructions must be at most 4000 characters', 'over-long instructions');
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', now() + interval '1 hour', null, 'FREQ=HOURLY')$$,
  '22023', null, 'an unsupported frequency');
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', now() + interval '1 hour', null,
    'FREQ=DAILY;BYSECOND=5')$$,
  '22023', null, 'an unsupported rule part');
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', now() + interval '1 hour', null,
    'every weekday at 8:30')$$,
  '22023', null, 'prose instead of an RRULE');
-- Regression (issue 8): on 8976604 this rule (a call every 5 minutes) was accepted.
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', now() + interval '1 hour', null,
    'FREQ=DAILY;BYMINUTE=0,5,10,15,20,25,30,35,40,45,50,55')$$,
  '22023', 'p_rrule is not accepted: the RRULE recurs as often as every 5 minutes; the minimum gap between calls is 60 minutes',
  'a rule that recurs every 5 minutes, naming the minimum gap');
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', now() + interval '1 hour', null,
    'FREQ=DAILY;BYHOUR=0,2,4,6,8,10,12,14,16,18,20,22')$$,
  '22023', 'p_rrule is not accepted: the RRULE gives up to 12 calls in a local day; the daily call cap is 10',
  'a rule with more calls a day than the daily cap, naming it');
-- Regression (issue 8): on 8976604 SQL accepted this and TypeScript refused it.
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', now() + interval '1 hour', null,
    'FREQ=WEEKLY;BYMONTHDAY=1')$$,
  '22023', 'p_rrule is not accepted: BYMONTHDAY cannot be used with FREQ=WEEKLY (RFC 5545)',
  'BYMONTHDAY with WEEKLY, as RFC 5545 says');
select throws_ok($$select schedule_call(pg_temp.u1(), 'checkin', now() + interval '1 hour',
    p_idempotency_key := '')$$,
  '22023', 'p_idempotency_key must be 1 to 200 characters', 'an empty idempotency key');
select is((select count(*) from scheduled_calls), (select n from counts), 'none of that wrote a row');

-- Regression (issue 8): on 8976604 SQL refused this and TypeScript accepted it.
select lives_ok($$select schedule_call(pg_temp.u1(), 'interval-first', now() + interval '1 hour', null,
    'INTERVAL=2;FREQ=DAILY')$$,
  'rule parts in any order');
select lives_ok($$select schedule_call(pg_temp.u1(), 'thanksgiving', now() + interval '1 hour', null,
    'FREQ=YEARLY;BYMONTH=11;BYDAY=4TH;BYHOUR=10')$$,
  'YEARLY, BYMONTH and ordinal weekdays');
select is((select next_occurrence_known from scheduled_calls where call_type = 'thanksgiving'), false,
  'a new recurring call waits for process-queue to compute its next occurrence');
select lives_ok($$select schedule_call(pg_temp.u1(), 'weekday-checkin', now() + interval '1 hour',
    'Ask about the week', 'RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8;BYMINUTE=30;UNTIL=20271231T000000Z')$$,
  'a weekday RRULE with the RRULE: prefix is accepted');
select is(
  (select (status, attempts, next_attempt_at = scheduled_for, claim_token is null)::text
     from scheduled_calls where call_type = 'weekday-checkin'),
  '(pending,0,t,t)', 'a new call is pending, due at its scheduled time');

-- Idempotency ----------------------------------------------------------------------
create temp table first_call as
  select schedule_call(pg_temp.u1(), 'checkin', now() + interval '2 hours', 'first',
                       p_idempotency_key := 'k1') as id;
select is(
  schedule_call(pg_temp.u1(), 'other', now() + interval '3 hours', 'second', p_idempotency_key := 'k1'),
  (select id from first_call), 'the same idempotency key returns the existing call');
select is(
  schedule_call(pg_temp.u1(), 'checkin', null, p_idempotency_key := 'k1'),
  (select id from first_call), 'even when its arguments would no longer pass');
select is((select (count(*), min(custom_instructions))::text from scheduled_calls where idempotency_key = 'k1'),
  '(1,first)', 'and creates nothing');
select isnt(
  schedule_call(pg_temp.u2(), 'checkin', now() + interval '2 hours', p_idempotency_key := 'k1'),
  (select id from first_call), 'idempotency keys are per user');

-- The daily cap, on the user's local day (Auckland is 11 to 13 hours ahead) -------
create temp table nz as
  select (now() at time zone 'Pacific/Auckland')::date + 3 as day;
select lives_ok($$
  select schedule_call(pg_temp.u3(), 'checkin',
                       local_to_instant((select day from nz) + time '00:30' + make_interval(hours => i), 'Pacific/Auckland'))
    from generate_series(0, 9) i$$,
  'ten calls on one local day');
select throws_ok($$select schedule_call(pg_temp.u3(), 'checkin',
    local_to_instant((select day from nz) + time '23:30', 'Pacific/Auckland'))$$,
  '22023', null, 'an eleventh on the same local day is refused');
select lives_ok($$select schedule_call(pg_temp.u3(), 'checkin',
    local_to_instant((select day from nz) - 1 + time '23:30', 'Pacific/Auckland'))$$,
  'the local day before is another day, though the same UTC date');
select cancel_scheduled_call(
  (select id from scheduled_calls where user_id = pg_temp.u3() order by scheduled_for desc limit 1), 'moved');
select lives_ok($$select schedule_call(pg_temp.u3(), 'checkin',
    local_to_instant((select day from nz) + time '23:30', 'Pacific/Auckland'))$$,
  'a cancelled call frees its place');

-- Cancel -------------------------------------------------------------------------------
select throws_ok($$select cancel_scheduled_call(gen_random_uuid(), 'no longer needed')$$,
  'P0002', null, 'cancelling an unknown call');
select throws_ok($$select cancel_scheduled_call(null, 'no longer needed')$$,
  '22023', 'p_call_id is required', 'a missing call id');
select throws_ok($$select cancel_scheduled_call((select id from first_call), '  ')$$,
  '22023', 'p_reason must be 1 to 500 characters, not blank', 'a blank reason');
select is((select status from scheduled_calls where id = (select id from first_call)), 'pending',
  'which changed nothing');
select is(cancel_scheduled_call((select id from first_call), 'user asked to skip'), true,
  'a pending call is cancelled');
select is((select (status, cancel_reason)::text from scheduled_calls where id = (select id from first_call)),
  '(cancelled,"user asked to skip")', 'with its reason');
select is(cancel_scheduled_call((select id from first_call), 'again'), false,
  'cancelling again returns false');
select is((select cancel_reason from scheduled_calls where id = (select id from first_call)),
  'user asked to skip', 'and keeps the first reason');

-- Claiming ------------------------------------------------------------------------------
insert into commitments (user_id, description, due_at, status)
  select pg_temp.u1(), 'commitment ' || i, now() + make_interval(days => i), 'open' from generate_series(1, 12) i;
insert into commitments (user_id, description, status) values (pg_temp.u1(), 'done already', 'done');
insert into user_sessions (user_id, context_summary) values (pg_temp.u1(), 'Training for a 10k.');
insert into interactions (user_id, channel, transcript, created_at, sentiment)
  select pg_temp.u1(), 'voice', repeat('t', 500) || i, now() - make_interval(hours => i), 'positive'
    from generate_series(1, 4) i;

create temp table c as
  select name, schedule_call(pg_temp.u1(), 'checkin', now() + interval '1 hour', 'call ' || name,
                             case when name in ('recurring', 'refused', 'early') then 'FREQ=DAILY' end) as id
    from unnest(array['plain', 'retrying', 'recurring', 'refused', 'early', 'cancelled']) as name;
create function pg_temp.cid(p_name text) returns uuid language sql as $$ select id from c where name = p_name $$;
create function pg_temp.st(p_name text) returns text language sql as
  $$ select status from public.scheduled_calls where id = pg_temp.cid(p_name) $$;
select cancel_scheduled_call(pg_temp.cid('cancelled'), 'not wanted');
update scheduled_calls set next_attempt_at = now() - interval '1 minute' where id in (select id from c);

select throws_ok($$select claim_due_calls(0)$$, '22023', 'p_limit must be between 1 and 500', 'a zero limit');
create temp table claim1 as select claim_due_calls(20, 60) as j;
create temp table token1 as select (j ->> 'claim_token')::uuid as t from claim1;
select is(
  (select array_agg(x ->> 'custom_instructions' order by x ->> 'custom_instructions')::text
     from claim1, jsonb_array_elements(j -> 'calls') x),
  '{"call early","call plain","call recurring","call refused","call retrying"}',
  'every due pending call is claimed, not the cancelled one');
select is(
  (select count(*)::int from scheduled_calls
    where id in (select id from c) and status = 'pending' and claim_token = (select t from token1)
      and locked_until = now() + interval '60 seconds' and next_attempt_at = locked_until),
  5, 'claimed calls stay pending under a token and a lease');
create temp table plain_claim as
  select x from claim1, jsonb_array_elements(j -> 'calls') x where x ->> 'id' = pg_temp.cid('plain')::text;
select is((select x -> 'user' from plain_claim),
  '{"timezone": "UTC", "phone_number": "+19995550141"}'::jsonb, 'with the user''s number and zone');
select is(
  (select jsonb_array_length(x -> 'brief' -> 'open_commitments') from plain_claim), 10,
  'the brief has at most 10 open commitments');
select is((select x -> 'brief' -> 'open_commitments' -> 0 ->> 'description' from plain_claim),
  'commitment 1', 'the soonest due first');
select is((select x -> 'brief' ->> 'session_summary' from plain_claim), 'Training for a 10k.',
  'the session summary');
select is(
  (select array_agg(length(i ->> 'transcript') || ':' || (i ->> 'channel') || ':' || (i ->> 'sentiment'))::text
     from plain_claim, jsonb_array_elements(x -> 'brief' -> 'recent_interactions') i),
  '{300:voice:positive,300:voice:positive,300:voice:positive}',
  'and the last 3 interactions, their transcripts cut to 300 characters');
select is((select (x ->> 'series_start')::timestamptz from plain_claim), now() + interval '1 hour',
  'a call that starts its own series is its own DTSTART');
select is((select jsonb_array_length(claim_due_calls(20, 60) -> 'calls')), 0,
  'a second claim finds nothing: the calls are leased');

-- Outcomes --------------------------------------------------------------------------------
select throws_ok($$select complete_call_dispatch((select t from token1),
    jsonb_build_array(jsonb_build_object('id', pg_temp.cid('plain'), 'outcome', 'sent')))$$,
  '22023', null, 'an unknown outcome is refused');
select is(
  complete_call_dispatch(gen_random_uuid(),
    jsonb_build_array(jsonb_build_object('id', pg_temp.cid('plain'), 'outcome', 'dispatched'))) ->> 'ignored',
  '1', 'another claim''s token changes nothing');
create temp table results1 as select jsonb_build_array(
  jsonb_build_object('id', pg_temp.cid('plain'), 'outcome', 'dispatched'),
  jsonb_build_object('id', pg_temp.cid('retrying'), 'outcome', 'retry', 'error', 'voice system said 503',
                     'retry_at', now() + interval '5 minutes'),
  jsonb_build_object('id', pg_temp.cid('recurring'), 'outcome', 'dispatched',
                     'next_occurrence', now() + interval '1 day 1 hour',
                     'following_occurrence', now() + interval '2 days 1 hour'),
  jsonb_build_object('id', pg_temp.cid('refused'), 'outcome', 'failed', 'error', 'voice system said 400',
                     'next_occurrence', now() + interval '1 day 1 hour')
) as r;
select is(complete_call_dispatch((select t from token1), (select r from results1)),
  '{"failed": 1, "ignored": 0, "retried": 1, "dispatched": 2, "next_occurrences": 2}'::jsonb,
  'outcomes are recorded in one call');
select is((select (status, dispatched_at = now(), attempts, locked_until is null)::text
             from scheduled_calls where id = pg_temp.cid('plain')),
  '(dispatched,t,1,t)', '2xx: dispatched');
select is((select (status, attempts, next_attempt_at = now() + interval '5 minutes', claim_token is null, last_error)::text
             from scheduled_calls where id = pg_temp.cid('retrying')),
  '(pending,1,t,t,"voice system said 503")', 'retry: back in the queue for its backoff');
select is((select (status, last_error)::text from scheduled_calls where id = pg_temp.cid('refused')),
  '(failed,"voice system said 400")', 'failed is final');
select is((select count(*)::int from scheduled_calls where recurrence_of = pg_temp.cid('refused')
             and status = 'pending'), 1, 'but a failed occurrence does not end its series');
create temp table next1 as select * from scheduled_calls where recurrence_of = pg_temp.cid('recurring');
select is(
  (select (status, scheduled_for = now() + interval '1 day 1 hour', next_attempt_at = scheduled_for,
           call_type, custom_instructions, rrule, user_id = pg_temp.u1())::text from next1),
  '(pending,t,t,checkin,"call recurring",FREQ=DAILY,t)',
  'a dispatched recurring call makes its next occurrence');
select is((select (next_occurrence_known, next_occurrence_at = now() + interval '2 days 1 hour')::text from next1),
  '(t,t)', 'knowing the one after it');
select is((select next_occurrence_known from scheduled_calls where recurrence_of = pg_temp.cid('refused')),
  false, 'or not, when the caller did not say');
select is(complete_call_dispatch((select t from token1), (select r from results1)),
  '{"failed": 0, "ignored": 4, "retried": 0, "dispatched": 0, "next_occurrences": 0}'::jsonb,
  'a replayed completion changes nothing');
select is((select count(*)::int from scheduled_calls where recurrence_of = pg_temp.cid('recurring')), 1,
  'and makes no second occurrence');
select is((select attempts from scheduled_calls where id = pg_temp.cid('retrying')), 1,
  'nor counts a second attempt');

-- The next occurrence after that belongs to the same series.
update scheduled_calls set next_attempt_at = now() - interval '1 second' where id = (select id from next1);
create temp table claim2 as select claim_due_calls(20, 60) as j;
select is(
  (select (x ->> 'series_start')::timestamptz from claim2, jsonb_array_elements(j -> 'calls') x
    where x ->> 'id' = (select id::text from next1)),
  now() + interval '1 hour', 'an occurrence carries its series'' first scheduled time');
select complete_call_dispatch((select (j ->> 'claim_token')::uuid from claim2), jsonb_build_array(
  jsonb_build_object('id', (select id from next1), 'outcome', 'dispatched',
                     'next_occurrence', now() + interval '2 days 1 hour')));
select is(
  (select array_agg(scheduled_for - now() order by scheduled_for)::text from scheduled_calls
    where recurrence_of = pg_temp.cid('recurring')),
  '{"1 day 01:00:00","2 days 01:00:00"}', 'and so does the one after it');

-- Retries, then failed after 5 attempts.
create function pg_temp.retry_once() returns text language plpgsql as $$
declare
  v_claim jsonb;
begin
  update public.scheduled_calls set next_attempt_at = now() - interval '1 second'
   where id = pg_temp.cid('retrying');
  v_claim := public.claim_due_calls(20, 60);
  perform public.complete_call_dispatch((v_claim ->> 'claim_token')::uuid, jsonb_build_array(
    jsonb_build_object('id', pg_temp.cid('retrying'), 'outcome', 'retry', 'error', 'voice system said 502',
                       'retry_at', now() + interval '1 minute')));
  return pg_temp.st('retrying');
end
$$;
select is(array[pg_temp.retry_once(), pg_temp.retry_once(), pg_temp.retry_once(), pg_temp.retry_once()],
  array['pending', 'pending', 'pending', 'failed'], 'the fifth failed attempt gives up');
select is((select (attempts, last_error)::text from scheduled_calls where id = pg_temp.cid('retrying')),
  '(5,"gave up after 5 attempts: voice system said 502")', 'saying why');

-- A lapsed lease frees the call; the old claim's outcome no longer counts.
update scheduled_calls set locked_until = now() - interval '1 second', next_attempt_at = now() - interval '1 second'
 where id = pg_temp.cid('early');
create temp table claim3 as select claim_due_calls(20, 60) as j;
select is((select (j ->> 'rescued')::int from claim3), 1, 'a call whose lease lapsed is claimed again');
select is(
  complete_call_dispatch((select t from token1),
    jsonb_build_array(jsonb_build_object('id', pg_temp.cid('early'), 'outcome', 'failed'))) ->> 'ignored',
  '1', 'the first claim''s late outcome is ignored');

-- Completion by the call's interaction.
insert into interactions (user_id, channel, transcript, scheduled_call_id)
  values (pg_temp.u2(), 'voice', 'wrong user', pg_temp.cid('plain'));
select is(pg_temp.st('plain'), 'dispatched', 'another user''s interaction does not complete the call');
insert into interactions (user_id, channel, transcript, scheduled_call_id)
  values (pg_temp.u1(), 'voice', 'Morning! Yes, I went for the run.', pg_temp.cid('plain'));
select is((select (status, completed_at = now())::text from scheduled_calls where id = pg_temp.cid('plain')),
  '(completed,t)', 'an interaction carrying the call id completes a dispatched call');
insert into interactions (user_id, channel, transcript, scheduled_call_id)
  values (pg_temp.u1(), 'voice', 'Hello?', pg_temp.cid('refused'));
select is(pg_temp.st('refused'), 'failed', 'but not a failed one');

-- The interaction can arrive before the dispatch outcome is recorded.
insert into interactions (user_id, channel, transcript, scheduled_call_id)
  values (pg_temp.u1(), 'voice', 'Quick one.', pg_temp.cid('early'));
select is(pg_temp.st('early'), 'completed', 'a claimed, still pending call is completed too');
select is(
  complete_call_dispatch((select (j ->> 'claim_token')::uuid from claim3), jsonb_build_array(
    jsonb_build_object('id', pg_temp.cid('early'), 'outcome', 'dispatched',
                       'next_occurrence', now() + interval '1 day 1 hour'))),
  '{"failed": 0, "ignored": 0, "retried": 0, "dispatched": 1, "next_occurrences": 1}'::jsonb,
  'its late dispatch outcome still counts');
select is(
  (select (c0.status, c0.dispatched_at is not null, count(n.id))::text
     from scheduled_calls c0 left join scheduled_calls n on n.recurrence_of = c0.id
    where c0.id = pg_temp.cid('early') group by c0.status, c0.dispatched_at),
  '(completed,t,1)', 'it stays completed, and its series goes on');

-- The end of a series, and the daily cap on a next occurrence -----------------------------------
create temp table ends as
  select name, schedule_call(pg_temp.u4(), 'ending', now() + interval '1 hour', null, 'FREQ=DAILY;COUNT=2') as id
    from unnest(array['counted']) name
  union all
  select 'capped', schedule_call(pg_temp.u3(), 'capped',
                                 local_to_instant((select day from nz) - 1 + time '12:00', 'Pacific/Auckland'),
                                 null, 'FREQ=DAILY');
update scheduled_calls set next_attempt_at = now() - interval '1 second' where id in (select id from ends);
create temp table claim4 as select claim_due_calls(20, 60) as j;
select is(
  complete_call_dispatch((select (j ->> 'claim_token')::uuid from claim4), jsonb_build_array(
    jsonb_build_object('id', (select id from ends where name = 'counted'), 'outcome', 'dispatched',
                       'series_end_reason', 'the RRULE has no occurrence after this one'),
    jsonb_build_object('id', (select id from ends where name = 'capped'), 'outcome', 'dispatched',
                       'next_occurrence', local_to_instant((select day from nz) + time '12:00', 'Pacific/Auckland')))),
  '{"failed": 0, "ignored": 0, "retried": 0, "dispatched": 2, "next_occurrences": 0}'::jsonb,
  'neither series goes on');
select is((select series_end_reason from scheduled_calls where id = (select id from ends where name = 'counted')),
  'the RRULE has no occurrence after this one', 'a series that has run out says so');
select matches((select series_end_reason from scheduled_calls where id = (select id from ends where name = 'capped')),
  '^the next occurrence, at .*, is over the daily cap: the user already has 10 calls on ',
  'a next occurrence over the daily cap ends the series, saying why');
select is((select count(*)::int from scheduled_calls where recurrence_of in (select id from ends)), 0,
  'and inserts nothing');

-- Skip ----------------------------------------------------------------------------------------------
create temp table s as
  select name, schedule_call(pg_temp.u4(), 'daily', now() + interval '1 day', 'skip me',
                             case when name <> 'single' then 'FREQ=DAILY' end) as id
    from unnest(array['skipped', 'last', 'cancelled', 'single']) name;
create function pg_temp.sid(p_name text) returns uuid language sql as $$ select id from s where name = p_name $$;
select throws_ok($$select skip_scheduled_call(pg_temp.sid('skipped'), 'away')$$, '55000', null,
  'skipping before process-queue computed the next occurrence asks to try again');
select throws_ok($$select skip_scheduled_call(gen_random_uuid(), 'away')$$, 'P0002', null,
  'skipping an unknown call');
select throws_ok($$select skip_scheduled_call(pg_temp.sid('skipped'), '')$$, '22023',
  'p_reason must be 1 to 500 characters, not blank', 'skipping without a reason');
select is(record_next_occurrences(jsonb_build_array(
    jsonb_build_object('id', pg_temp.sid('skipped'), 'next_occurrence', now() + interval '2 days'),
    jsonb_build_object('id', pg_temp.sid('last'), 'next_occurrence', null),
    jsonb_build_object('id', pg_temp.sid('cancelled'), 'next_occurrence', now() + interval '2 days'))),
  3, 'process-queue records the next occurrences');
select is((select array_agg(x ->> 'id') from jsonb_array_elements(unplanned_recurrences(500)) x
            where (x ->> 'id')::uuid in (select id from s)), null, 'and they are planned');
create temp table skip1 as select skip_scheduled_call(pg_temp.sid('skipped'), 'away on the 2nd') as next;
select is((select (status, cancel_scope, cancel_reason)::text from scheduled_calls where id = pg_temp.sid('skipped')),
  '(cancelled,occurrence,"away on the 2nd")', 'the skipped occurrence is cancelled with the reason');
select is(
  (select (status, scheduled_for = now() + interval '2 days', recurrence_of = pg_temp.sid('skipped'),
           custom_instructions, next_occurrence_known)::text
     from scheduled_calls where id = (select next from skip1)),
  '(pending,t,t,"skip me",f)', 'and the series goes on with its next occurrence, whose id is returned');
select is(skip_scheduled_call(pg_temp.sid('skipped'), 'again'), (select next from skip1),
  'skipping it again returns the same occurrence');
select is((select count(*)::int from scheduled_calls where recurrence_of = pg_temp.sid('skipped')), 1,
  'and makes no second one');
select is(skip_scheduled_call(pg_temp.sid('last'), 'not needed'), null,
  'skipping the last occurrence returns null');
select is((select (status, series_end_reason)::text from scheduled_calls where id = pg_temp.sid('last')),
  '(cancelled,"the RRULE has no occurrence after this one")', 'the series ended, saying why');
select is(skip_scheduled_call(pg_temp.sid('single'), 'not needed'), null,
  'a call without an RRULE is simply cancelled');
select is((select (status, cancel_scope)::text from scheduled_calls where id = pg_temp.sid('single')),
  '(cancelled,occurrence)', 'as one occurrence');
select throws_ok(format('select skip_scheduled_call(%L, %L)', pg_temp.cid('plain'), 'x'), '22023', null,
  'a completed call cannot be skipped');

-- Cancel ends the series, named by any of its occurrences ------------------------------------------
create temp table skip2 as select skip_scheduled_call(pg_temp.sid('cancelled'), 'skip one') as next;
select is(cancel_scheduled_call(pg_temp.sid('cancelled'), 'stop calling'), true,
  'cancelling through an earlier occurrence cancels the pending one');
select is((select (status, cancel_scope, series_end_reason)::text from scheduled_calls where id = (select next from skip2)),
  '(cancelled,series,"cancelled: stop calling")', 'and ends the series');
select is(cancel_scheduled_call((select next from skip2), 'again'), false, 'a second cancel changes nothing');
-- A claimed occurrence its interaction completed before the dispatch was recorded.
create temp table s2 as select schedule_call(pg_temp.u4(), 'late', now() + interval '1 hour', null, 'FREQ=DAILY') as id;
update scheduled_calls set next_attempt_at = now() - interval '1 second' where id = (select id from s2);
create temp table claim5 as select claim_due_calls(20, 60) as j;
insert into interactions (user_id, channel, transcript, scheduled_call_id)
  values (pg_temp.u4(), 'voice', 'Bye.', (select id from s2));
select is(cancel_scheduled_call((select id from s2), 'stop'), false, 'a series with nothing pending');
select is(
  complete_call_dispatch((select (j ->> 'claim_token')::uuid from claim5), jsonb_build_array(
    jsonb_build_object('id', (select id from s2), 'outcome', 'dispatched',
                       'next_occurrence', now() + interval '1 day 1 hour'))) ->> 'next_occurrences',
  '0', 'still gains no occurrence once cancelled');

-- Access -----------------------------------------------------------------------------------
select is(
  (select array_agg(f || ' ' || r order by f, r) from
     unnest(array['public.schedule_call(uuid, text, timestamptz, text, text, text)',
                  'public.cancel_scheduled_call(uuid, text)',
                  'public.claim_due_calls(integer, integer)',
                  'public.complete_call_dispatch(uuid, jsonb)',
                  'public.on_call_interaction_inserted()']) f,
     unnest(array['anon', 'authenticated']) r
    where has_function_privilege(r, f, 'execute')),
  null, 'anon and authenticated cannot execute the call functions');
select ok(
  (select bool_and(has_function_privilege('service_role', f, 'execute')) from
     unnest(array['public.schedule_call(uuid, text, timestamptz, text, text, text)',
                  'public.cancel_scheduled_call(uuid, text)',
                  'public.claim_due_calls(integer, integer)',
                  'public.complete_call_dispatch(uuid, jsonb)']) f),
  'service_role can');
select is(
  (select array_agg(p.proname::text order by p.proname) from pg_proc p
    where p.pronamespace = 'public'::regnamespace
      and p.proname in ('schedule_call', 'cancel_scheduled_call', 'claim_due_calls',
                        'complete_call_dispatch', 'on_call_interaction_inserted',
                        'skip_scheduled_call', 'unplanned_recurrences', 'record_next_occurrences')
      and not (p.prosecdef and p.proconfig @> array['search_path=""'])),
  null, 'all are SECURITY DEFINER with an empty search_path');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
    where p.pronamespace = 'public'::regnamespace
      and p.proname in ('call_limits', 'lock_user_calls', 'rrule_items', 'rrule_problem',
                        'daily_cap_problem', 'skip_scheduled_call', 'checked_call', 'occurrence_key',
                        'add_next_occurrence', 'unplanned_recurrences', 'record_next_occurrences')
      and (has_function_privilege('anon', p.oid, 'execute')
           or has_function_privilege('authenticated', p.oid, 'execute')
           or not has_function_privilege('service_role', p.oid, 'execute')
           or not coalesce(p.proconfig @> array['search_path=""'], false))),
  null, 'the RRULE, skip and planning functions: service_role only, with an empty search_path');

select * from finish();
rollback;
