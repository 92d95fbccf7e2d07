-- decide_delivery on its own: the rule for one unit, given what its user may
-- still receive. It reads no table, so each case is a constructed state.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(24);

create temp table t as select date_trunc('minute', now()) as now;

create function pg_temp.user_state(p jsonb default '{}') returns public.delivery_user_state
language sql as $$
  select jsonb_populate_record(null::public.delivery_user_state, jsonb_build_object(
    'user_id', gen_random_uuid(), 'tz', 'UTC', 'quiet_start', '00:00', 'quiet_end', '00:00',
    'opted_out', false, 'local_day', (select now from t)::date, 'daily_limit', 10,
    'hourly_limit', 10, 'daily_used', 0, 'hour_used', 0, 'urgent_used', 0) || p)
$$;
create function pg_temp.unit(p jsonb default '{}') returns public.delivery_unit
language sql as $$
  select jsonb_populate_record(null::public.delivery_unit, jsonb_build_object(
    'unit_id', gen_random_uuid(), 'member_ids', array[gen_random_uuid()], 'is_sequence', false,
    'priority_rank', 2, 'scheduled_for', (select now from t), 'can_delay', true,
    'expired', false, 'broken', false, 'in_flight', false, 'complete', true, 'paid', false,
    'first_queued_at', (select now from t)) || p)
$$;
create function pg_temp.decide(p_user jsonb, p_unit jsonb) returns text language sql as $$
  select (d.action, d.unit_kind, d.not_before - (select now from t), d.reason)::text
    from public.decide_delivery(pg_temp.user_state(p_user), pg_temp.unit(p_unit),
                                (select now from t), interval '6 hours') d
$$;

-- Units that cannot go at all.
select is(pg_temp.decide('{"opted_out": true}', '{}'), '(cancel,,,opt_out)', 'opted out: cancelled');
select is(pg_temp.decide('{}', '{"expired": true}'), '(expire,,,expired)', 'expired: expired');
select is(pg_temp.decide('{}', '{"is_sequence": true, "broken": true}'), '(cancel,,,sequence_broken)',
  'a sequence with a dropped member: cancelled');
select is(pg_temp.decide('{}', jsonb_build_object('is_sequence', true, 'complete', false,
            'first_queued_at', (select now from t) - interval '7 hours')),
  '(fail,,,sequence_timeout)', 'a sequence still incomplete after 6 hours: failed');

-- Sequences that wait.
select is(pg_temp.decide('{}', jsonb_build_object('is_sequence', true, 'in_flight', true,
            'in_flight_until', (select now from t) + interval '2 minutes')),
  '(defer,,00:03:00,sequence_wait)', 'a member in flight: wait for its lease, then a minute');
select is(pg_temp.decide('{}', '{"is_sequence": true, "complete": false}'),
  '(defer,,06:00:00,sequence_wait)', 'incomplete: wait until its deadline (an arrival wakes it)');
select is(pg_temp.decide('{}', jsonb_build_object('is_sequence', true,
            'due_at', (select now from t) + interval '20 minutes')),
  '(defer,,00:20:00,sequence_wait)', 'a member not yet due: wait for it');

-- Urgent.
select is(pg_temp.decide(jsonb_build_object('quiet_until', (select now from t) + interval '1 hour',
            'snoozed_until', (select now from t) + interval '2 hours', 'daily_used', 10),
            '{"priority_rank": 0}'),
  '(claim,urgent,,)', 'urgent goes through snooze, quiet hours and a spent day');
select is(pg_temp.decide(jsonb_build_object('quiet_until', (select now from t) + interval '1 hour',
            'urgent_used', 5), '{"priority_rank": 0}'),
  '(defer,,01:00:00,urgent_ceiling)', 'the sixth urgent of the day waits like high, saying why');

-- Snooze, quiet hours, preferred hours.
select is(pg_temp.decide(jsonb_build_object('snoozed_until', (select now from t) + interval '2 hours',
            'quiet_until', (select now from t) + interval '1 hour'), '{}'),
  '(defer,,02:00:00,snoozed)', 'snoozed: wait for the snooze end (then quiet hours apply)');
select is(pg_temp.decide(jsonb_build_object('quiet_until', (select now from t) + interval '1 hour'), '{}'),
  '(defer,,01:00:00,quiet_hours)', 'quiet hours: wait for their end');
select is(pg_temp.decide(jsonb_build_object('preferred_from', (select now from t) + interval '3 hours'), '{}'),
  '(defer,,03:00:00,preferred_hours)', 'may wait: wait for the preferred window');
select is(pg_temp.decide(jsonb_build_object('preferred_from', (select now from t) + interval '3 hours'),
            '{"can_delay": false}'),
  '(claim,capped,,)', 'may not wait: goes now');
select is(pg_temp.decide(jsonb_build_object('preferred_from', (select now from t) + interval '3 hours'),
            jsonb_build_object('expires_at', (select now from t) + interval '2 hours')),
  '(claim,capped,,)', 'would expire before the window: goes now');
select is(pg_temp.decide(jsonb_build_object('preferred_from', (select now from t) + interval '8 hours'),
            jsonb_build_object('is_sequence', true)),
  '(claim,capped,,)', 'a sequence that would time out before the window: goes now');

-- Budgets.
select is(pg_temp.decide('{}', '{}'), '(claim,capped,,)', 'room in both caps: claimed, spending a unit');
select is(pg_temp.decide('{"daily_used": 10, "hour_used": 10}', '{"paid": true}'), '(claim,,,)',
  'a sequence already paid for goes without another unit');
select is(pg_temp.decide('{"daily_used": 10}', '{}'),
  (select ('defer', null, (date_trunc('day', now) + interval '1 day') - now, 'daily_cap')::text from t),
  'the day is spent: wait for the next local midnight');
select is(pg_temp.decide(jsonb_build_object('hour_used', 10,
            'oldest_spend', (select now from t) - interval '15 minutes'), '{}'),
  '(defer,,00:45:00,hourly_cap)', 'the hour is spent: wait for its oldest unit to leave it');
select is(pg_temp.decide(jsonb_build_object('daily_used', 10, 'tz', 'Asia/Tokyo'), '{}'),
  (select ('defer', null,
           local_to_instant(((now at time zone 'Asia/Tokyo')::date + 1)::timestamp, 'Asia/Tokyo') - now,
           'daily_cap')::text from t),
  'the local midnight is the user''s own');
select is(pg_temp.decide(jsonb_build_object('daily_used', 10, 'quiet_start', '00:00', 'quiet_end', '07:00'),
            '{}'),
  (select ('defer', null, (date_trunc('day', now) + interval '1 day 7 hours') - now,
           'daily_cap')::text from t),
  'and if it falls in quiet hours, their end');

-- delivery_candidates: urgent users first.
insert into users (id, phone_number, timezone, quiet_hours_start, quiet_hours_end) values
  ('00000000-0000-4000-8000-00000000d001', '+19995550191', 'UTC', '00:00', '00:00'),
  ('00000000-0000-4000-8000-00000000d002', '+19995550192', 'UTC', '00:00', '00:00');
update message_queue set next_attempt_at = now() + interval '10 years' where status = 'queued';
select enqueue_message('00000000-0000-4000-8000-00000000d001', 'test', 'low', null, 'old low',
                       p_scheduled_for := now() - interval '1 hour');
select enqueue_message('00000000-0000-4000-8000-00000000d002', 'test', 'urgent', null, 'new urgent');
select is((select array_agg(c)::text from delivery_candidates(100, now()) c),
  '{00000000-0000-4000-8000-00000000d002,00000000-0000-4000-8000-00000000d001}',
  'a user with due urgent work comes before older due work');

-- delivery_user_state: what one user may still receive, read from the tables.
insert into user_message_budget (user_id, local_date, units_used, urgent_used)
values ('00000000-0000-4000-8000-00000000d001', (now() at time zone 'UTC')::date, 3, 1);
update users set quiet_hours_start = (date_trunc('minute', now() at time zone 'UTC') - interval '1 hour')::time,
                 quiet_hours_end = (date_trunc('minute', now() at time zone 'UTC') + interval '1 hour')::time,
                 snoozed_until = now() + interval '1 day'
 where id = '00000000-0000-4000-8000-00000000d001';
select is((select (s.daily_used, s.urgent_used, s.quiet_until - date_trunc('minute', now()),
                   s.snoozed_until - now())::text
             from delivery_user_state('00000000-0000-4000-8000-00000000d001', now()) s),
  '(3,1,01:00:00,"1 day")', 'the day''s units, the end of quiet hours and the snooze');
update users set last_inbound_at = now() - interval '5 minutes'
 where id = '00000000-0000-4000-8000-00000000d001';
select is((select quiet_until from delivery_user_state('00000000-0000-4000-8000-00000000d001', now())),
  null, 'an inbound text in the last 10 minutes lifts quiet hours');

select * from finish();
rollback;
