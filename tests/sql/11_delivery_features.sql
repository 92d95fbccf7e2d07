-- Issue 11: snooze, preferred hours, the fast lane, every suppression on record,
-- per-agent caps and bounded history.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(37);

update message_queue set next_attempt_at = now() + interval '10 years' where status = 'queued';
update orchestrator_settings set value = 1 where name = 'fast_lane_enabled';
update fast_lane_state set active_since = null, missed = false;

create temp table t_now as select date_trunc('minute', now() at time zone 'UTC') as utc_local;
insert into users (id, phone_number, timezone, quiet_hours_start, quiet_hours_end,
                   daily_message_limit, hourly_message_limit) values
  -- s: snoozed; p: preferred hours from two hours from now; q: inside quiet hours
  ('00000000-0000-4000-8000-00000000b0a1', '+19995550181', 'UTC', '00:00', '00:00', 10, 10),
  ('00000000-0000-4000-8000-00000000b0b1', '+19995550182', 'UTC', '00:00', '00:00', 10, 10),
  ('00000000-0000-4000-8000-00000000b0c1', '+19995550183', 'UTC',
   ((select utc_local from t_now) - interval '1 hour')::time,
   ((select utc_local from t_now) + interval '2 hours')::time, 10, 10),
  ('00000000-0000-4000-8000-00000000b0d1', '+19995550184', 'UTC', '00:00', '00:00', 10, 10);

create function pg_temp.st(p_body text) returns text language sql as
  $$ select status from public.message_queue where final_message = p_body $$;
create function pg_temp.next(p_body text) returns timestamptz language sql as
  $$ select next_attempt_at from public.message_queue where final_message = p_body $$;

-- Snooze ------------------------------------------------------------------------------
select throws_ok($$select snooze_user('00000000-0000-4000-8000-00000000b0a1', now() - interval '1 minute', 'x')$$,
  '22023', null, 'a snooze must end in the future');
select throws_ok($$select snooze_user('00000000-0000-4000-8000-00000000b0a1', now() + interval '31 days', 'x')$$,
  '22023', null, 'and at most 30 days ahead');
select throws_ok($$select snooze_user('00000000-0000-4000-8000-0000000fffff', now() + interval '1 day', 'x')$$,
  'P0002', null, 'of a known user');
select snooze_user('00000000-0000-4000-8000-00000000b0a1', now() + interval '3 hours', 'on holiday');
select enqueue_message('00000000-0000-4000-8000-00000000b0a1', 'test', 'high', null, 's high');
select enqueue_message('00000000-0000-4000-8000-00000000b0a1', 'test', 'urgent', null, 's urgent');

-- Preferred hours ---------------------------------------------------------------------
select throws_ok($$select set_preferred_hours('00000000-0000-4000-8000-00000000b0b1', '18:00', null)$$,
  '22023', null, 'preferred hours need both ends');
select throws_ok($$select set_preferred_hours('00000000-0000-4000-8000-00000000b0b1', '18:00', '18:30')$$,
  '22023', null, 'and last at least an hour');
select set_preferred_hours('00000000-0000-4000-8000-00000000b0b1',
  ((select utc_local from t_now) + interval '2 hours')::time,
  ((select utc_local from t_now) + interval '5 hours')::time);
select enqueue_message('00000000-0000-4000-8000-00000000b0b1', 'test', 'low', null, 'p can wait');
select enqueue_message('00000000-0000-4000-8000-00000000b0b1', 'test', 'low', null, 'p now',
                       p_can_delay := false);
select enqueue_message('00000000-0000-4000-8000-00000000b0b1', 'test', 'low', null, 'p expires first',
                       p_expires_at := now() + interval '1 hour');

-- Quiet hours, recorded once ------------------------------------------------------------
select enqueue_message('00000000-0000-4000-8000-00000000b0c1', 'test', 'medium', null, 'q medium');

create temp table claim1 as select claim_messages(100, 60) as c;

select is(pg_temp.st('s urgent'), 'sending', 'urgent goes while the user is snoozed');
select is(pg_temp.st('s high'), 'queued', 'anything else waits');
select is(pg_temp.next('s high'), now() + interval '3 hours', 'until the snooze ends, exactly');
select is((select wait_reason from message_queue where final_message = 's high'), 'snoozed', 'saying why');

select is(pg_temp.st('p can wait'), 'queued', 'a message that may wait waits for the preferred hours');
select is(pg_temp.next('p can wait'), (select utc_local from t_now) at time zone 'UTC' + interval '2 hours',
  'until the window starts, exactly');
select is(pg_temp.st('p now'), 'sending', 'can_delay = false goes at the first allowed instant');
select is(pg_temp.st('p expires first'), 'sending', 'so does one that would expire before the window');

select is(pg_temp.st('q medium'), 'queued', 'quiet hours hold a medium message');

-- Every deferral on record, once per reason.
select is((select array_agg(reason || ' ' || (next_eligible_at = m.next_attempt_at) order by reason)::text
             from delivery_events e join message_queue m on m.id = e.message_id
            where e.kind = 'deferred'
              and m.final_message in ('s high', 'p can wait', 'q medium')),
  '{"preferred_hours true","quiet_hours true","snoozed true"}',
  'each deferral is an event with its reason and next eligible instant');
update message_queue set next_attempt_at = now() where final_message = 'q medium';
select claim_messages(100, 60);
select is((select count(*)::int from delivery_events e join message_queue m on m.id = e.message_id
            where m.final_message = 'q medium'), 1,
  'looked at again for the same reason: no second event');
update users set quiet_hours_start = '00:00', quiet_hours_end = '00:00', daily_message_limit = 0
 where id = '00000000-0000-4000-8000-00000000b0c1';
update message_queue set next_attempt_at = now() where final_message = 'q medium';
select claim_messages(100, 60);
select is((select array_agg(e.reason order by e.id)::text from delivery_events e
             join message_queue m on m.id = e.message_id where m.final_message = 'q medium'),
  '{quiet_hours,daily_cap}', 'a new reason is a new event');

-- Unsnooze lets what waited for it go.
select unsnooze_user('00000000-0000-4000-8000-00000000b0a1');
select is(pg_temp.next('s high'), now(), 'unsnoozed: due at once');

-- Send-time checks see the snooze too.
select enqueue_message('00000000-0000-4000-8000-00000000b0d1', 'test', 'medium', null, 'd to snooze');
create temp table claim2 as select claim_messages(100, 60) as c;
select snooze_user('00000000-0000-4000-8000-00000000b0d1', now() + interval '1 hour', null);
select is((select start_sending(jsonb_build_array(jsonb_build_object(
              'claim_token', (select (c ->> 'claim_token')::uuid from claim2), 'id', m.id,
              'body', m.final_message))) ->> m.id::text
              from message_queue m where m.final_message = 'd to snooze'),
  'deferred', 'snoozed between claim and send: not sent');
select is((select wait_reason from message_queue where final_message = 'd to snooze'), 'snoozed',
  'it waits for the snooze end');

-- The ValidityPeriod bound: a claimed message knows when quiet hours next begin.
update users set quiet_hours_start = ((select utc_local from t_now) + interval '3 hours')::time,
                 quiet_hours_end = ((select utc_local from t_now) + interval '4 hours')::time,
                 snoozed_until = null
 where id = '00000000-0000-4000-8000-00000000b0d1';
select enqueue_message('00000000-0000-4000-8000-00000000b0d1', 'test', 'medium', null, 'd valid');
create temp table claim3 as select claim_messages(100, 60) as c;
select is((select (m ->> 'valid_until')::timestamptz from claim3, jsonb_array_elements(c -> 'messages') m
            where m ->> 'final_message' = 'd valid'),
  (select utc_local from t_now) at time zone 'UTC' + interval '3 hours',
  'valid until the next start of quiet hours');

-- Per-agent caps ------------------------------------------------------------------------
insert into agent_message_limits (agent_id, daily_messages_per_user) values ('chatty', 2);
select enqueue_message('00000000-0000-4000-8000-00000000b0d1', 'chatty', 'low', null, 'chatty ' || i)
  from generate_series(1, 2) i;
select throws_like(
  $$select enqueue_message('00000000-0000-4000-8000-00000000b0d1', 'chatty', 'low', null, 'chatty 3')$$,
  '%agent chatty already queued 2 messages%', 'an agent past its daily cap for a user is refused');
select is((select count(*)::int from message_queue where agent_id = 'chatty'), 2, 'and nothing is written');
select lives_ok(
  $$select enqueue_message('00000000-0000-4000-8000-00000000b0a1', 'chatty', 'low', null, 'chatty other user')$$,
  'the cap is per user');
select is((select count(*)::int from agent_activity where agent_id = 'chatty' and period = 'day'), 1,
  'agent_activity shows the agent''s day');
select is((select enqueued::int from agent_activity where agent_id = 'chatty' and period = 'hour'), 3,
  'and its hour');
select record_enqueue_refusal('00000000-0000-4000-8000-00000000b0d1', 'chatty', 'agent_daily_cap', 'over 2');
select is((select (kind, reason, message_id)::text from delivery_events where agent_id = 'chatty'),
  '(refused,agent_daily_cap,)', 'a refusal caught by the caller is on record');

-- The fast lane -------------------------------------------------------------------------
update fast_lane_state set active_since = null, missed = false;
create temp table q0 as select coalesce(max(id), 0) as id from net.http_request_queue;
select enqueue_message('00000000-0000-4000-8000-00000000b0d1', 'test', 'urgent', null, 'fast 1');
select ok((select active_since is not null from fast_lane_state), 'an urgent message due now wakes delivery');
select is((select count(*) from net.http_request_queue
            where id > (select id from q0) and url like '%/functions/v1/process-queue'
              and convert_from(body, 'utf8') like '%fast_lane%')::int, 1,
  'through pg_net, once');
select enqueue_message('00000000-0000-4000-8000-00000000b0d1', 'test', 'high', null, 'fast 2',
                       p_can_delay := false);
select is((select count(*) from net.http_request_queue
            where id > (select id from q0) and url like '%/functions/v1/process-queue')::int, 1,
  'a second one while the run is active makes no second request');
select ok((select missed from fast_lane_state), 'but is remembered');
select enqueue_message('00000000-0000-4000-8000-00000000b0d1', 'test', 'low', null, 'slow lane');
select is(finish_fast_lane(), true, 'so the run goes round again');
select is(finish_fast_lane(), false, 'and then ends');
select ok((select active_since is null from fast_lane_state), 'leaving the lane free');
select enqueue_message('00000000-0000-4000-8000-00000000b0d1', 'test', 'urgent', null, 'later',
                       p_scheduled_for := now() + interval '1 hour');
select ok((select active_since is null from fast_lane_state), 'a message due later wakes nothing');

-- Bounded history -------------------------------------------------------------------------
insert into delivery_events (message_id, user_id, kind, reason, created_at)
select id, user_id, 'deferred', 'quiet_hours', now() - interval '31 days'
  from message_queue where final_message = 'slow lane';
select is((prune_history() ->> 'delivery_events')::int, 1, 'prune_history drops events past 30 days');
select is((select count(*)::int from cron.job where jobname = 'prune-history'), 1, 'daily, by pg_cron');

select * from finish();
rollback;
