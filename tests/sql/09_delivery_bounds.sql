-- Issue 7: claims that nothing can stall, that cost O(batch) whatever one
-- user's backlog, and sends checked again at the instant they leave.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(21);

-- Anything other tests left due waits, so only this file's users are claimed.
update message_queue set next_attempt_at = now() + interval '10 years' where status = 'queued';

-- A stalled batch: 450 sequences whose first member's outcome is unknown, and
-- whose second member has been due for an hour (more than one claim decides).
insert into users (id, phone_number, timezone, quiet_hours_start, quiet_hours_end)
select ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       '+1' || (981 + i % 19) || '55501' || lpad((i / 19)::text, 2, '0'), 'UTC', '00:00', '00:00'
  from generate_series(1, 450) i;
insert into message_queue (user_id, agent_id, final_message, sequence_id, sequence_position,
                           sequence_total, status, send_started_at, scheduled_for, next_attempt_at)
select ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'test', 'stalled ' || i || '/' || p,
       ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, p, 2,
       case p when 1 then 'unknown' else 'queued' end,
       case p when 1 then now() - interval '1 hour' end,
       now() - interval '1 hour', now() - interval '1 hour'
  from generate_series(1, 450) i, generate_series(1, 2) p;

insert into users (id, phone_number, timezone, quiet_hours_start, quiet_hours_end) values
  ('00000000-0000-4000-8000-00000000a001', '+19995550171', 'UTC', '00:00', '00:00');
select enqueue_message('00000000-0000-4000-8000-00000000a001', 'test', 'urgent', null, 'fresh urgent');

create temp table claim1 as select claim_messages(100, 60) as c;
create function pg_temp.st(p_body text) returns text language sql as
  $$ select status from public.message_queue where final_message = p_body $$;

select is(pg_temp.st('fresh urgent'), 'sending',
  'a fresh urgent message is claimed past 450 stalled sequences');
select is((select count(*)::int from message_queue
            where final_message like 'stalled %/2' and next_attempt_at <= now()), 51,
  'the units read get a later instant: 399 of 450 beside the urgent one, 4 x 100 units a claim');
select is((select wait_reason from message_queue where final_message = 'stalled 1/2'),
  'sequence_wait', 'saying they wait for the member in flight');
select claim_messages(100, 60);
select is((select count(*)::int from message_queue
            where final_message like 'stalled %/2' and next_attempt_at <= now()), 0,
  'the next claim decides the rest: none stays due');

-- A sequence that cannot complete within the timeout ends failed.
insert into users (id, phone_number, timezone, quiet_hours_start, quiet_hours_end) values
  ('00000000-0000-4000-8000-00000000a002', '+19995550172', 'UTC', '00:00', '00:00');
select enqueue_message('00000000-0000-4000-8000-00000000a002', 'test', 'medium', null, 'lonely 1',
                       p_sequence_id := '00000000-0000-4000-9000-00000000a002',
                       p_sequence_position := 1, p_sequence_total := 2);
update message_queue set created_at = now() - interval '7 hours' where final_message = 'lonely 1';
select claim_messages(100, 60);
select is(pg_temp.st('lonely 1'), 'failed', 'a sequence incomplete after 6 hours ends failed');
select matches((select status_reason from message_queue where final_message = 'lonely 1'),
  'could not go out whole within 06:00:00', 'with the reason');

-- The per-user cap on queued messages.
update orchestrator_settings set value = 5 where name = 'max_queued_per_user';
insert into users (id, phone_number, timezone) values
  ('00000000-0000-4000-8000-00000000a004', '+19995550174', 'UTC');
select enqueue_message('00000000-0000-4000-8000-00000000a004', 'test', 'low', null, 'capped ' || i)
  from generate_series(1, 5) i;
select throws_ok(
  $$select enqueue_message('00000000-0000-4000-8000-00000000a004', 'test', 'low', null, 'one too many')$$,
  '54000', null, 'past the cap enqueue_message refuses with 54000');
select is((select count(*)::int from message_queue
            where user_id = '00000000-0000-4000-8000-00000000a004'), 5, 'and writes nothing');
update orchestrator_settings set value = 1000 where name = 'max_queued_per_user';

-- Checked again at send time: start_sending refuses what a rule now forbids.
insert into users (id, phone_number, timezone, quiet_hours_start, quiet_hours_end,
                   daily_message_limit, hourly_message_limit) values
  ('00000000-0000-4000-8000-00000000a005', '+19995550175', 'UTC', '00:00', '00:00', 10, 10),
  ('00000000-0000-4000-8000-00000000a006', '+19995550176', 'UTC', '00:00', '00:00', 10, 10),
  ('00000000-0000-4000-8000-00000000a007', '+19995550177', 'UTC', '00:00', '00:00', 10, 10),
  ('00000000-0000-4000-8000-00000000a008', '+19995550178', 'UTC', '00:00', '00:00', 10, 10);
select enqueue_message('00000000-0000-4000-8000-00000000a005', 'test', 'medium', null, 'to stop');
select enqueue_message('00000000-0000-4000-8000-00000000a006', 'test', 'medium', null, 'to expire',
                       p_expires_at := now() + interval '1 hour');
select enqueue_message('00000000-0000-4000-8000-00000000a007', 'test', 'medium', null, 'to quiet');
select enqueue_message('00000000-0000-4000-8000-00000000a008', 'test', 'medium', null, 'to supersede',
                       p_supersede_key := 'weather');
create temp table claim4 as select claim_messages(100, 60) as c;
create function pg_temp.start(p_body text) returns text language sql as $$
  select public.start_sending(jsonb_build_array(jsonb_build_object(
           'claim_token', (select (c ->> 'claim_token')::uuid from claim4), 'id', m.id, 'body', p_body)))
           ->> m.id::text
    from public.message_queue m where m.final_message = p_body
$$;
select is(pg_temp.st('to stop'), 'sending', 'claimed');
select is((record_inbound_sms('+19995550175', '+19995550100', 'STOP', 'SM' || repeat('9', 32)) ->> 'action'),
  'opted_out', 'then the user texts STOP');
select is(pg_temp.start('to stop'), 'cancelled', 'start_sending refuses: opted out since the claim');
select is(pg_temp.st('to stop'), 'cancelled', 'and the message is cancelled');
update message_queue set expires_at = now() - interval '1 second' where final_message = 'to expire';
select is(pg_temp.start('to expire'), 'expired', 'expired since the claim: refused');
update users set quiet_hours_start = (date_trunc('minute', now() at time zone 'UTC') - interval '1 hour')::time,
                 quiet_hours_end = (date_trunc('minute', now() at time zone 'UTC') + interval '1 hour')::time
 where id = '00000000-0000-4000-8000-00000000a007';
select is(pg_temp.start('to quiet'), 'deferred', 'quiet hours began since the claim: deferred');
select is((select (status, wait_reason)::text from message_queue where final_message = 'to quiet'),
  '(queued,quiet_hours)', 'back in the queue until they end');
select is((select units_used from user_message_budget where user_id = '00000000-0000-4000-8000-00000000a007'), 0,
  'with its unit given back');
select enqueue_message('00000000-0000-4000-8000-00000000a008', 'test', 'medium', null, 'newer weather',
                       p_supersede_key := 'weather');
select is(pg_temp.st('to supersede'), 'superseded', 'a claimed message not yet sending can be superseded');
select is(pg_temp.start('to supersede'), 'lost', 'and start_sending then refuses it');

-- One user with 5,000 due messages: a claim reads at most one batch of them.
insert into users (id, phone_number, timezone, quiet_hours_start, quiet_hours_end,
                   daily_message_limit, hourly_message_limit) values
  ('00000000-0000-4000-8000-00000000a003', '+19995550173', 'UTC', '00:00', '00:00', 10, 10);
insert into message_queue (user_id, agent_id, final_message, scheduled_for, next_attempt_at)
select '00000000-0000-4000-8000-00000000a003', 'test', 'backlog ' || i,
       now() - make_interval(secs => 5000 - i), now() - make_interval(secs => 5000 - i)
  from generate_series(1, 5000) i;
create temp table claim3 as select claim_messages(100, 60) as c;
select is((select count(*)::int from message_queue
            where user_id = '00000000-0000-4000-8000-00000000a003' and status = 'sending'), 10,
  'the backlog user gets what the day allows');
select cmp_ok((select count(*)::int from message_queue
                where user_id = '00000000-0000-4000-8000-00000000a003'
                  and status = 'queued' and next_attempt_at > now()), '<=', 100,
  'and the claim decided no more than a batch of the rest');
select is((select array_agg(final_message order by final_message)::text from message_queue
            where user_id = '00000000-0000-4000-8000-00000000a003' and status = 'sending'),
  (select array_agg('backlog ' || i order by 'backlog ' || i)::text from generate_series(1, 10) i),
  'the oldest go first');

select * from finish();
rollback;
