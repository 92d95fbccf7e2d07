-- Sends marked in groups: send_time_verdict, the rule at the instant a request
-- leaves, on its own; then start_sending deciding a group of messages with
-- different fates in one statement.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(24);

create temp table t as select date_trunc('minute', now()) as now;
-- Quiet hours from an hour before to an hour after now, in UTC.
create temp table q as
select ((select now from t) at time zone 'UTC' - interval '1 hour')::time as qs,
       ((select now from t) at time zone 'UTC' + interval '1 hour')::time as qe;
create function pg_temp.verdict(p jsonb) returns text language sql as $$
  select (v.verdict, v.wait_until - (select now from t), v.wait_reason)::text
    from public.send_time_verdict(
      coalesce(p ->> 'priority', 'medium'), (p ->> 'expires_at')::timestamptz,
      (p ->> 'opted_out_at')::timestamptz, (p ->> 'snoozed_until')::timestamptz,
      (p ->> 'last_inbound_at')::timestamptz, 'UTC',
      coalesce((p ->> 'quiet_start')::time, '00:00'), coalesce((p ->> 'quiet_end')::time, '00:00'),
      (select now from t)) v
$$;
create function pg_temp.ago(p interval) returns text language sql as $$
  select ((select now from t) - p)::text
$$;
create function pg_temp.quiet(p jsonb default '{}') returns jsonb language sql as $$
  select jsonb_build_object('quiet_start', (select qs from q), 'quiet_end', (select qe from q)) || p
$$;

-- The rule alone.
select is(pg_temp.verdict('{}'), '(go,,)', 'nothing holds it: go');
select is(pg_temp.verdict(jsonb_build_object('opted_out_at', pg_temp.ago('1 minute'))),
  '(cancelled,,)', 'opted out: cancelled');
select is(pg_temp.verdict(jsonb_build_object('expires_at', pg_temp.ago('1 second'))),
  '(expired,,)', 'past its expiry: expired');
select is(pg_temp.verdict(jsonb_build_object('opted_out_at', pg_temp.ago('1 minute'),
                                             'expires_at', pg_temp.ago('1 second'))),
  '(cancelled,,)', 'opted out and expired: the opt-out is what it says');
select is(pg_temp.verdict(jsonb_build_object('snoozed_until', pg_temp.ago('-2 hours'))),
  '(deferred,02:00:00,snoozed)', 'snoozed: deferred to the snooze end');
select is(pg_temp.verdict(jsonb_build_object('priority', 'urgent',
                                             'snoozed_until', pg_temp.ago('-2 hours'))),
  '(go,,)', 'urgent goes through a snooze');
select is(pg_temp.verdict(pg_temp.quiet()), '(deferred,01:00:00,quiet_hours)',
  'quiet hours: deferred to their end');
select is(pg_temp.verdict(pg_temp.quiet(jsonb_build_object('last_inbound_at', pg_temp.ago('5 minutes')))),
  '(go,,)', 'quiet hours, but the user wrote 5 minutes ago: go');
select is(pg_temp.verdict(pg_temp.quiet(jsonb_build_object('last_inbound_at', pg_temp.ago('11 minutes')))),
  '(deferred,01:00:00,quiet_hours)', 'an inbound text 11 minutes ago no longer lifts them');
select is(pg_temp.verdict(pg_temp.quiet('{"priority": "urgent"}')), '(go,,)',
  'urgent goes through quiet hours');
select is(pg_temp.verdict(jsonb_build_object('quiet_start', (select qe from q),
                                             'quiet_end', (select qs from q))),
  '(go,,)', 'outside quiet hours: go');

-- A group with five fates, in one statement.
update message_queue set next_attempt_at = now() + interval '10 years' where status = 'queued';
insert into users (id, phone_number, timezone, quiet_hours_start, quiet_hours_end,
                   daily_message_limit, hourly_message_limit) values
  ('00000000-0000-4000-8000-0000000e0001', '+19995550191', 'UTC', '00:00', '00:00', 10, 10),
  ('00000000-0000-4000-8000-0000000e0002', '+19995550192', 'UTC', '00:00', '00:00', 10, 10),
  ('00000000-0000-4000-8000-0000000e0003', '+19995550193', 'UTC', '00:00', '00:00', 10, 10),
  ('00000000-0000-4000-8000-0000000e0004', '+19995550194', 'UTC', '00:00', '00:00', 10, 10);
select enqueue_message('00000000-0000-4000-8000-0000000e0001', 'test', 'medium', null, 'g go');
select enqueue_message('00000000-0000-4000-8000-0000000e0002', 'test', 'medium', null, 'g stopped');
select enqueue_message('00000000-0000-4000-8000-0000000e0003', 'test', 'medium', null, 'g quiet');
select enqueue_message('00000000-0000-4000-8000-0000000e0004', 'test', 'medium', null, 'g other claim');
create temp table claim1 as select claim_messages(3, 60) as c;
create temp table claim2 as select claim_messages(3, 60) as c;
select is((select count(*)::int from message_queue where final_message like 'g %' and status = 'sending'),
  4, 'all four claimed, by two claims');
create function pg_temp.token_of(p_body text) returns uuid language sql as $$
  select claim_token from public.message_queue where final_message = p_body
$$;
create function pg_temp.item(p_body text, p_token uuid default null) returns jsonb language sql as $$
  select jsonb_build_object('claim_token', coalesce(p_token, pg_temp.token_of(p_body)), 'id', id,
                            'body', 'sent: ' || p_body, 'encoding', 'GSM-7', 'segments', 1)
    from public.message_queue where final_message = p_body
$$;
create function pg_temp.verdict_of(p_verdicts jsonb, p_body text) returns text language sql as $$
  select p_verdicts ->> id::text from public.message_queue where final_message = p_body
$$;
update users set sms_opted_out_at = now() where id = '00000000-0000-4000-8000-0000000e0002';
update users set quiet_hours_start = (select qs from q), quiet_hours_end = (select qe from q)
 where id = '00000000-0000-4000-8000-0000000e0003';
create temp table started as
select start_sending(jsonb_build_array(
         pg_temp.item('g go'), pg_temp.item('g stopped'), pg_temp.item('g quiet'),
         -- Not this claim's token: another processor's, or a stale one.
         pg_temp.item('g other claim', gen_random_uuid()))) as v;

select is(pg_temp.verdict_of((select v from started), 'g go'), 'go', 'the free one may go');
select is((select (attempts, rendered_body, encoding, segments, send_started_at is not null)::text
             from message_queue where final_message = 'g go'),
  '(1,"sent: g go",GSM-7,1,t)', 'and is marked, with the body it goes with');
select is(pg_temp.verdict_of((select v from started), 'g stopped'), 'cancelled',
  'the one whose user opted out since the claim is cancelled');
select is((select status from message_queue where final_message = 'g stopped'), 'cancelled',
  'and ends cancelled');
select is(pg_temp.verdict_of((select v from started), 'g quiet'), 'deferred',
  'the one whose quiet hours began since the claim is deferred');
select is((select (status, wait_reason, next_attempt_at = (select now from t) + interval '1 hour',
                   rendered_body)::text
             from message_queue where final_message = 'g quiet'),
  '(queued,quiet_hours,t,"sent: g quiet")', 'back to queued until they end, its body kept');
select is((select units_used from user_message_budget
            where user_id = '00000000-0000-4000-8000-0000000e0003'), 0,
  'the unit it spent is given back');
select is(pg_temp.verdict_of((select v from started), 'g other claim'), 'lost',
  'a message the token does not hold is lost to it');
select is((select (status, send_started_at)::text from message_queue where final_message = 'g other claim'),
  '(sending,)', 'and is left as its claim has it');

select is(start_sending(jsonb_build_array(pg_temp.item('g go'))) ->> (
            select id::text from message_queue where final_message = 'g go'),
  'lost', 'a message whose send began is never started twice');
select is(start_sending('[]'), '{}', 'an empty group marks nothing');
select throws_ok($$select start_sending('{"id": "x"}')$$, '22023', null,
  'a group that is not an array is refused');

select * from finish();
rollback;
