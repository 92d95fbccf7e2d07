-- claim_messages decides every delivery rule in SQL. now() is fixed inside this
-- transaction, so quiet windows are placed around it.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(47);

-- Anything other tests left due waits, so only this file's users are claimed.
update message_queue set next_attempt_at = now() + interval '10 years' where status = 'queued';

create temp table t_now as
  select date_trunc('minute', now()) at time zone 'UTC' as utc_local;

insert into users (id, phone_number, timezone, quiet_hours_start, quiet_hours_end,
                   daily_message_limit, hourly_message_limit, last_inbound_at) values
  -- a: no quiet hours, 3 a day
  ('00000000-0000-4000-8000-00000000c0a1', '+19995550131', 'UTC', '00:00', '00:00', 3, 10, null),
  -- b: inside quiet hours now
  ('00000000-0000-4000-8000-00000000c0b1', '+19995550132', 'UTC',
   ((select utc_local from t_now) - interval '1 hour')::time, ((select utc_local from t_now) + interval '2 hours')::time, 10, 10, null),
  -- c: inside quiet hours, but texted us 5 minutes ago
  ('00000000-0000-4000-8000-00000000c0c1', '+19995550133', 'UTC',
   ((select utc_local from t_now) - interval '1 hour')::time, ((select utc_local from t_now) + interval '2 hours')::time, 10, 10,
   now() - interval '5 minutes'),
  -- d: one capped unit a day, many urgent
  ('00000000-0000-4000-8000-00000000c0d1', '+19995550134', 'Asia/Tokyo', '00:00', '00:00', 1, 10, null),
  -- e: sequences
  ('00000000-0000-4000-8000-00000000c0e1', '+19995550135', 'UTC', '00:00', '00:00', 10, 10, null),
  -- f: 2 an hour
  ('00000000-0000-4000-8000-00000000c0f1', '+19995550136', 'UTC', '00:00', '00:00', 10, 2, null);

select enqueue_message('00000000-0000-4000-8000-00000000c0a1', 'test', 'low', null, 'a low');
select enqueue_message('00000000-0000-4000-8000-00000000c0a1', 'test', 'high', null, 'a high');
select enqueue_message('00000000-0000-4000-8000-00000000c0a1', 'test', 'medium', null, 'a medium');
select enqueue_message('00000000-0000-4000-8000-00000000c0a1', 'test', 'urgent', null, 'a urgent');
select enqueue_message('00000000-0000-4000-8000-00000000c0b1', 'test', 'medium', null, 'b medium');
select enqueue_message('00000000-0000-4000-8000-00000000c0b1', 'test', 'urgent', null, 'b urgent');
select enqueue_message('00000000-0000-4000-8000-00000000c0c1', 'test', 'medium', null, 'c medium');
select enqueue_message('00000000-0000-4000-8000-00000000c0d1', 'test', 'urgent', null, 'd urgent ' || i,
                       p_scheduled_for := now() - make_interval(mins => 10 - i))
  from generate_series(1, 7) i;
select enqueue_message('00000000-0000-4000-8000-00000000c0e1', 'test', 'medium', null, 'e seq ' || i,
                       p_sequence_id := '00000000-0000-4000-8000-0000000005e1',
                       p_sequence_position := i, p_sequence_total := 3)
  from generate_series(1, 2) i;
select enqueue_message('00000000-0000-4000-8000-00000000c0f1', 'test', 'medium', null, 'f ' || i,
                       p_scheduled_for := now() - make_interval(mins => 10 - i))
  from generate_series(1, 3) i;

create temp table claim1 as select claim_messages(100, 60) as c;
create function pg_temp.st(p_body text) returns text language sql as
  $$ select status from public.message_queue where final_message = p_body $$;

-- Priorities and caps: an urgent message spends one of the day's 3 units too
select is(pg_temp.st('a urgent'), 'sending', 'urgent goes');
select is(pg_temp.st('a high'), 'sending', 'high goes');
select is(pg_temp.st('a medium'), 'sending', 'medium goes');
select is(pg_temp.st('a low'), 'queued', 'low waits: the urgent one and the two highest others spent the day');
select is((select wait_reason from message_queue where final_message = 'a low'), 'daily_cap', 'saying why');
select is((select next_attempt_at from message_queue where final_message = 'a low'),
  date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' + interval '1 day',
  'until the next local midnight');
select is((select (units_used, urgent_used)::text from user_message_budget
            where user_id = '00000000-0000-4000-8000-00000000c0a1'), '(3,1)',
  'three units are spent, one of them urgent');
select is((select count(*)::int from message_queue
            where user_id = '00000000-0000-4000-8000-00000000c0f1' and status = 'sending'), 2,
  'two an hour go');
select is(pg_temp.st('f 3'), 'queued', 'the third waits');
select is((select wait_reason from message_queue where final_message = 'f 3'), 'hourly_cap', 'for the hourly cap');
select is((select next_attempt_at from message_queue where final_message = 'f 3'), now() + interval '1 hour',
  'until the oldest unit leaves the rolling hour');

-- Quiet hours
select is(pg_temp.st('b medium'), 'queued', 'inside quiet hours a medium message waits');
select is((select next_attempt_at from message_queue where final_message = 'b medium'),
  date_trunc('minute', now()) + interval '2 hours', 'until the local end of quiet hours, exactly');
select is(pg_temp.st('b urgent'), 'sending', 'urgent ignores quiet hours');
select is(pg_temp.st('c medium'), 'sending', 'an active user (inbound SMS in the last 10 minutes) gets it now');

-- The urgent ceiling and the local day
select is((select count(*)::int from message_queue
            where user_id = '00000000-0000-4000-8000-00000000c0d1' and status = 'sending'), 5,
  'five urgent go, past the day''s one unit');
select is(pg_temp.st('d urgent 6'), 'queued', 'the sixth waits like high: the day is spent');
select is(pg_temp.st('d urgent 7'), 'queued', 'the seventh waits');
select is((select next_attempt_at from message_queue where final_message = 'd urgent 7'),
  local_to_instant(((now() at time zone 'Asia/Tokyo')::date + 1)::timestamp, 'Asia/Tokyo'),
  'until the next local midnight in Tokyo');
select is((select local_date from user_message_budget where user_id = '00000000-0000-4000-8000-00000000c0d1'),
  (now() at time zone 'Asia/Tokyo')::date, 'the budget day is the user''s local day');
select is((select (units_used, urgent_used)::text from user_message_budget
            where user_id = '00000000-0000-4000-8000-00000000c0d1'), '(5,5)',
  'five units, all urgent');

-- Sequences
select is(pg_temp.st('e seq 1'), 'queued', 'an incomplete sequence does not go');
select is((select wait_reason from message_queue where final_message = 'e seq 1'),
  'sequence_wait', 'it waits for the rest');
select cmp_ok((select next_attempt_at from message_queue where final_message = 'e seq 1'), '>', now(),
  'and is not looked at again every claim');
select enqueue_message('00000000-0000-4000-8000-00000000c0e1', 'test', 'medium', null, 'e seq 3',
                       p_sequence_id := '00000000-0000-4000-8000-0000000005e1',
                       p_sequence_position := 3, p_sequence_total := 3);
create temp table claim2 as select claim_messages(100, 60) as c;
select is((select count(*)::int from message_queue
            where sequence_id = '00000000-0000-4000-8000-0000000005e1' and status = 'sending'), 3,
  'once whole, the sequence goes together');
select is((select units_used from user_message_budget where user_id = '00000000-0000-4000-8000-00000000c0e1'), 1,
  'as one unit');
select is(
  (select array_agg(m ->> 'sequence_position' order by ord)::text
     from claim2, jsonb_array_elements(c -> 'messages') with ordinality as x(m, ord)
    where m ->> 'sequence_id' = '00000000-0000-4000-8000-0000000005e1'),
  '{1,2,3}', 'in position order: the last member woke the others');

-- Expiry
select enqueue_message('00000000-0000-4000-8000-00000000c0e1', 'test', 'medium', null, 'e stale',
                       p_expires_at := now() + interval '1 hour');
update message_queue set expires_at = now() - interval '1 second' where final_message = 'e stale';
select claim_messages(100, 60);
select is(pg_temp.st('e stale'), 'expired', 'past its expiry a message is expired, not sent');

-- Outcomes
create temp table a_token as select (c ->> 'claim_token')::uuid as t from claim1;
select is(
  (select array_agg(start_sending(jsonb_build_array(jsonb_build_object(
            'claim_token', (select t from a_token), 'id', id, 'body', final_message))) ->> id::text
          order by final_message)::text
     from message_queue where final_message in ('a high', 'a medium')),
  '{go,go}', 'start_sending lets what this claim holds go');
select is(
  (select count(*)::int from message_queue where final_message in ('a high', 'a medium')
      and send_started_at is not null), 2, 'and marks it');
select complete_messages(jsonb_build_array(
  jsonb_build_object('claim_token', (select t from a_token),
                     'id', (select id from message_queue where final_message = 'a high'),
                     'outcome', 'sent', 'twilio_sid', 'SM' || repeat('a', 32), 'from', '+19995550100'),
  jsonb_build_object('claim_token', (select t from a_token),
                     'id', (select id from message_queue where final_message = 'a medium'),
                     'outcome', 'retry', 'error', 'Twilio 429', 'retry_at', now() + interval '5 minutes')));
select is(pg_temp.st('a high'), 'sent', 'an accepted send is sent');
select is((select (direction, twilio_sid, body)::text from messages where twilio_sid = 'SM' || repeat('a', 32)),
  '(outbound,SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,"a high")', 'and logged in messages');
select is(pg_temp.st('a medium'), 'queued', 'a definite refusal goes back to the queue');
select is((select next_attempt_at from message_queue where final_message = 'a medium'),
  now() + interval '5 minutes', 'for its backoff');
select is((select units_used from user_message_budget where user_id = '00000000-0000-4000-8000-00000000c0a1'), 2,
  'and gives its unit back');

-- Status callbacks: final states are never taken back
select apply_twilio_status((select id from message_queue where final_message = 'a high'),
  'SM' || repeat('a', 32), 'delivered');
select apply_twilio_status((select id from message_queue where final_message = 'a high'),
  'SM' || repeat('a', 32), 'sent');
select is(pg_temp.st('a high'), 'delivered', 'a late "sent" callback does not undo "delivered"');
select is((select status from messages where twilio_sid = 'SM' || repeat('a', 32)), 'delivered',
  'messages carries Twilio''s status');

-- Lapsed leases
update message_queue set locked_until = now() - interval '1 second'
 where final_message in ('b urgent', 'c medium');
update message_queue set send_started_at = now() where final_message = 'c medium';
select claim_messages(100, 60);
select is(pg_temp.st('c medium'), 'unknown',
  'a lease that lapsed after the send started is unknown: never re-sent');
select is(pg_temp.st('b urgent'), 'sending', 'one that lapsed before it is requeued and claimed again');
select is((select urgent_used from user_message_budget where user_id = '00000000-0000-4000-8000-00000000c0b1'), 1,
  'spending its unit once, not twice');
select is(
  (apply_twilio_status((select id from message_queue where final_message = 'c medium'),
    'SM' || repeat('c', 32), 'delivered') ->> 'status'),
  'delivered', 'the status callback reconciles an unknown outcome');

-- STOP and START
select is((record_inbound_sms('+19995550135', '+19995550100', 'Stop', 'SM' || repeat('1', 32)) ->> 'action'),
  'opted_out', 'STOP in any case opts the user out');
select enqueue_message('00000000-0000-4000-8000-00000000c0e1', 'test', 'medium', null, 'e after stop');
select is(pg_temp.st('e after stop'), 'cancelled', 'nothing is queued for an opted-out user');
select is((record_inbound_sms('+19995550135', '+19995550100', 'Stop', 'SM' || repeat('1', 32)) ->> 'action'),
  'duplicate', 'a retried webhook is handled once');
select is((record_inbound_sms('+19995550135', '+19995550100', ' start ', 'SM' || repeat('2', 32)) ->> 'action'),
  'opted_in', 'START opts back in');
select is((record_inbound_sms('+19995550135', '+19995550100', 'running late, call me at 6', 'SM' || repeat('3', 32)) ->> 'action'),
  'stored', 'other text is stored');
select is((select (channel, transcript)::text from interactions
            where user_id = '00000000-0000-4000-8000-00000000c0e1' order by created_at desc limit 1),
  '(sms,"running late, call me at 6")', 'as an sms interaction, which triggers analysis');

select * from finish();
rollback;
