-- The public contract's tables, their constraints and who may touch them.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(26);

select has_table('public', t, t || ' exists')
  from unnest(array[
    'users', 'interactions', 'message_queue', 'messages', 'user_message_budget',
    'scheduled_calls', 'user_sessions', 'sdk_actions', 'agent_actions_log', 'commitments'
  ]) as t;

select is(
  (select array_agg(c.relname order by c.relname)
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind = 'r' and not c.relrowsecurity),
  null,
  'RLS is enabled on every public table'
);

select is(
  (select count(*)::int from information_schema.role_table_grants
    where table_schema = 'public' and grantee in ('anon', 'authenticated', 'public')),
  0,
  'anon and authenticated hold no grant on any public table'
);

select is(
  (select array_agg(p.proname::text order by p.proname)
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public'
      and (has_function_privilege('anon', p.oid, 'execute')
        or has_function_privilege('authenticated', p.oid, 'execute'))),
  null,
  'no public function is executable by anon or authenticated'
);

select is(
  (select array_agg(p.proname::text order by p.proname)
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public' and p.prosecdef
      and not coalesce(p.proconfig @> array['search_path=""'], false)),
  null,
  'every SECURITY DEFINER function pins search_path to empty'
);

-- users
select lives_ok(
  $$insert into users (phone_number, timezone) values ('+19995550101', 'Europe/Chisinau')$$,
  'a user with an E.164 number and an IANA zone is accepted'
);
select is(
  (select (quiet_hours_start, quiet_hours_end, daily_message_limit, hourly_message_limit)::text
     from users where phone_number = '+19995550101'),
  '(22:00:00,08:00:00,10,2)',
  'quiet hours and limits take their documented defaults'
);
select throws_ok(
  $$insert into users (phone_number) values ('555-0101')$$,
  '23514', null, 'a phone number that is not E.164 is rejected'
);
select throws_ok(
  $$insert into users (phone_number) values ('+19995550101')$$,
  '23505', null, 'phone numbers are unique'
);
select throws_ok(
  $$insert into users (phone_number, timezone) values ('+19995550102', 'Mars/Olympus_Mons')$$,
  '23514', null, 'an unknown time zone is rejected'
);
select throws_ok(
  $$insert into users (phone_number, timezone) values ('+19995550103', 'EST5EDT,M3.2.0,M11.1.0')$$,
  '23514', null, 'a POSIX zone string is not an IANA name'
);
select throws_ok(
  $$insert into users (phone_number, quiet_hours_start) values ('+19995550104', '22:00:30')$$,
  '23514', null, 'quiet hours have minute precision'
);

-- interactions, message_queue
select throws_ok(
  $$insert into interactions (user_id, channel) select id, 'fax' from users limit 1$$,
  '23514', null, 'channel is voice or sms'
);
select throws_ok(
  $$insert into interactions (user_id, channel) values (gen_random_uuid(), 'sms')$$,
  '23503', null, 'an interaction needs a real user'
);
select throws_ok(
  $$insert into message_queue (user_id, agent_id, message_data, final_message)
    select id, 'a', '{}'::jsonb, 'hi' from users limit 1$$,
  '23514', null, 'a message has message_data or final_message, not both'
);
select throws_ok(
  $$insert into message_queue (user_id, agent_id, final_message, status)
    select id, 'a', 'hi', 'lost' from users limit 1$$,
  '23514', null, 'message status is one of the documented values'
);
select throws_ok(
  $$insert into scheduled_calls (user_id, call_type, scheduled_for, next_attempt_at, status)
    select id, 'checkin', now(), now(), 'ringing' from users limit 1$$,
  '23514', null, 'call status is one of the documented values'
);

select * from finish();
rollback;
