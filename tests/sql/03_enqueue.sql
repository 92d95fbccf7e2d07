-- enqueue_message: the agents' way in. Every bad value is refused with a clear
-- SQLSTATE and writes nothing.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(28);

insert into users (id, phone_number) values
  ('00000000-0000-4000-8000-0000000000e1', '+19995550121'),
  ('00000000-0000-4000-8000-0000000000e2', '+19995550122');
create temp table counts as select count(*) as n from message_queue;

select throws_ok($$select enqueue_message(null, 'a', p_final_message := 'x')$$,
  '22023', 'p_user_id is required', 'a missing user id');
select throws_ok($$select enqueue_message(gen_random_uuid(), 'a', p_final_message := 'x')$$,
  'P0002', null, 'an unknown user');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', '', p_final_message := 'x')$$,
  '22023', 'p_agent_id must be 1 to 128 characters', 'an empty agent id');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', 'asap', p_final_message := 'x')$$,
  '22023', 'p_priority must be urgent, high, medium or low (got asap)', 'an unknown priority');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a')$$,
  '22023', 'exactly one of p_message_data and p_final_message is required', 'no body');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a',
    p_message_data := '{"a":1}', p_final_message := 'x')$$,
  '22023', 'exactly one of p_message_data and p_final_message is required', 'two bodies');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_message_data := '[1]')$$,
  '22023', 'p_message_data must be a non-empty JSON object', 'message_data that is not an object');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_message_data := '{}')$$,
  '22023', 'p_message_data must be a non-empty JSON object', 'empty message_data');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_final_message := '   ')$$,
  '22023', 'p_final_message must be 1 to 1600 characters', 'a blank final message');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_final_message := repeat('x', 1601))$$,
  '22023', 'p_final_message must be 1 to 1600 characters', 'an over-long final message');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_final_message := 'x',
    p_can_delay := null)$$,
  '22023', null, 'a null can_delay');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_final_message := 'x',
    p_scheduled_for := null)$$,
  '22023', 'p_scheduled_for must not be null', 'a null schedule');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_final_message := 'x',
    p_expires_at := now() - interval '1 minute')$$,
  '22023', 'p_expires_at must be after p_scheduled_for and in the future', 'already expired');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_final_message := 'x',
    p_sequence_id := gen_random_uuid(), p_sequence_position := 1)$$,
  '22023', 'p_sequence_id, p_sequence_position and p_sequence_total go together', 'half a sequence');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_final_message := 'x',
    p_sequence_id := gen_random_uuid(), p_sequence_position := 3, p_sequence_total := 2)$$,
  '22023', null, 'a position past the total');
select throws_ok($$select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_final_message := 'x',
    p_idempotency_key := '')$$,
  '22023', 'p_idempotency_key must be 1 to 200 characters', 'an empty idempotency key');
select is((select count(*) from message_queue), (select n from counts), 'none of that wrote a row');

-- Idempotency: the same key returns the first message.
select is(
  enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_final_message := 'first', p_idempotency_key := 'k1'),
  enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_final_message := 'second', p_idempotency_key := 'k1'),
  'the same idempotency key returns the same message'
);
select is((select count(*)::int from message_queue where idempotency_key = 'k1'), 1, 'and makes one row');
select is((select final_message from message_queue where idempotency_key = 'k1'), 'first', 'the first one');
select isnt(
  enqueue_message('00000000-0000-4000-8000-0000000000e2', 'a', p_final_message := 'x', p_idempotency_key := 'k1'),
  (select id from message_queue where idempotency_key = 'k1' and user_id = '00000000-0000-4000-8000-0000000000e1'),
  'idempotency keys are per user'
);

-- Supersession.
select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a', p_final_message := 'old weather',
  p_supersede_key := 'weather');
select enqueue_message('00000000-0000-4000-8000-0000000000e2', 'a', p_final_message := 'their weather',
  p_supersede_key := 'weather');
create temp table newer as select enqueue_message('00000000-0000-4000-8000-0000000000e1', 'a',
  p_final_message := 'new weather', p_supersede_key := 'weather') as id;
select is((select status from message_queue where final_message = 'old weather'), 'superseded',
  'a newer message with the same supersede key supersedes the queued older one');
select matches((select status_reason from message_queue where final_message = 'old weather'),
  '^superseded by ', 'saying by which');
select is((select status from message_queue where final_message = 'their weather'), 'queued',
  'another user''s message with that key is untouched');
select is((select status from message_queue where id = (select id from newer)), 'queued', 'the new one is queued');

-- Opted-out users get nothing queued.
update users set sms_opted_out_at = now() where id = '00000000-0000-4000-8000-0000000000e2';
create temp table after_opt_out as
  select enqueue_message('00000000-0000-4000-8000-0000000000e2', 'a', p_final_message := 'hello?') as id;
select is(
  (select status from message_queue where id = (select id from after_opt_out)),
  'cancelled',
  'a message for an opted-out user is recorded as cancelled, never queued'
);

-- Access.
select ok(not has_function_privilege('anon',
  'enqueue_message(uuid, text, text, jsonb, text, boolean, boolean, timestamptz, timestamptz, uuid, integer, integer, text, text)',
  'execute'), 'anon cannot enqueue');
select ok(has_function_privilege('service_role',
  'enqueue_message(uuid, text, text, jsonb, text, boolean, boolean, timestamptz, timestamptz, uuid, integer, integer, text, text)',
  'execute'), 'service_role can');

select * from finish();
rollback;
