-- Outcomes written in one call across claims: complete_messages takes results
-- that each name their claim, counts each only for a row its claim holds, and
-- says what it recorded.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(9);

update message_queue set next_attempt_at = now() + interval '10 years' where status = 'queued';
insert into users (id, phone_number, timezone, quiet_hours_start, quiet_hours_end,
                   daily_message_limit, hourly_message_limit) values
  ('00000000-0000-4000-8000-0000000f0001', '+19995550181', 'UTC', '00:00', '00:00', 10, 10),
  ('00000000-0000-4000-8000-0000000f0002', '+19995550182', 'UTC', '00:00', '00:00', 10, 10),
  ('00000000-0000-4000-8000-0000000f0003', '+19995550183', 'UTC', '00:00', '00:00', 10, 10);
select enqueue_message('00000000-0000-4000-8000-0000000f0001', 'test', 'medium', null, 'o first claim');
select enqueue_message('00000000-0000-4000-8000-0000000f0002', 'test', 'medium', null, 'o second claim');
select enqueue_message('00000000-0000-4000-8000-0000000f0003', 'test', 'medium', null, 'o refused');
create temp table claim1 as select claim_messages(1, 60) as c;
create temp table claim2 as select claim_messages(2, 60) as c;
create function pg_temp.token_of(p_body text) returns uuid language sql as $$
  select claim_token from public.message_queue where final_message = p_body
$$;
create function pg_temp.id_of(p_body text) returns uuid language sql as $$
  select id from public.message_queue where final_message = p_body
$$;
select is((select count(distinct claim_token)::int from message_queue where final_message like 'o %'),
  2, 'three messages, held by two claims');
select start_sending(jsonb_agg(jsonb_build_object('claim_token', claim_token, 'id', id,
                                                  'body', final_message)))
  from message_queue where final_message like 'o %';

create temp table written as
select complete_messages(jsonb_build_array(
  jsonb_build_object('claim_token', pg_temp.token_of('o first claim'), 'id', pg_temp.id_of('o first claim'),
                     'outcome', 'sent', 'twilio_sid', 'SM' || repeat('b', 32), 'from', '+19995550100'),
  jsonb_build_object('claim_token', pg_temp.token_of('o second claim'), 'id', pg_temp.id_of('o second claim'),
                     'outcome', 'sent', 'twilio_sid', 'SM' || repeat('c', 32), 'from', '+19995550100'),
  -- Another claim's token: the result is not this row's to write.
  jsonb_build_object('claim_token', gen_random_uuid(), 'id', pg_temp.id_of('o refused'),
                     'outcome', 'sent', 'twilio_sid', 'SM' || repeat('d', 32), 'from', '+19995550100')
)) as counts;

select is((select counts from written), '{"sent": 2, "logged": 2}',
  'one call records the sends of both claims, and only those');
select is((select array_agg(status order by final_message)::text from message_queue
            where final_message like 'o %'),
  '{sent,sending,sent}', 'each held row is sent; the one its token does not hold is untouched');
select is((select count(*)::int from messages
            where twilio_sid in ('SM' || repeat('b', 32), 'SM' || repeat('c', 32))),
  2, 'both sends are logged in messages');
select is((select count(*)::int from messages where twilio_sid = 'SM' || repeat('d', 32)), 0,
  'the foreign result logs nothing');

select is(complete_messages(jsonb_build_array(
  jsonb_build_object('claim_token', pg_temp.token_of('o refused'), 'id', pg_temp.id_of('o refused'),
                     'outcome', 'failed', 'error', 'Twilio rejected (400): invalid'))),
  '{"failed": 1, "logged": 0}', 'a refusal with its own token is recorded');
select is((select (status, unit_kind)::text from message_queue where final_message = 'o refused'),
  '(failed,)', 'it fails and its unit is given back');
select is(complete_messages('[]'), '{}', 'an empty group records nothing');
select throws_ok($$select complete_messages('{"id": "x"}')$$, '22023', null,
  'results that are not an array are refused');

select * from finish();
rollback;
