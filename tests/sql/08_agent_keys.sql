-- Agent keys: created once and stored as a hash, scoped, revocable, counted per
-- minute; quiet hours within bounds; every interaction indexed for search.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(27);

insert into users (id, phone_number) values
  ('00000000-0000-4000-8000-00000000a6e1', '+19995550181'),
  ('00000000-0000-4000-8000-00000000a6e2', '+19995550182');
create temp table counts as select count(*) as n from agent_keys;

-- Creating ------------------------------------------------------------------------
select throws_ok($$select create_agent_key('')$$, '22023', null, 'an empty agent id');
select throws_ok($$select create_agent_key('has space')$$, '22023', null, 'an agent id with a space');
select throws_ok($$select create_agent_key('a', array[]::text[])$$, '22023',
  'p_tools must name at least one tool (null means every tool)', 'an empty tool list');
select throws_ok($$select create_agent_key('a', array['drop_tables'])$$, '22023', null, 'an unknown tool');
select throws_ok($$select create_agent_key('a', null, array[gen_random_uuid()])$$, 'P0002', null,
  'an unknown user');
select throws_ok($$select create_agent_key('a', null, null, 0)$$, '22023',
  'p_requests_per_minute must be between 1 and 10000', 'a zero rate');
select is((select count(*) from agent_keys), (select n from counts), 'no refused key was stored');

create temp table k as select create_agent_key('sqltest', array['queue_message'],
  array['00000000-0000-4000-8000-00000000a6e1'::uuid], 2) as secret;
select matches((select secret from k), '^oak_[0-9a-f]{64}$', 'the key is oak_ and 64 hex digits');
select is((select count(*) from agent_keys where agent_id = 'sqltest'), 1::bigint, 'one key stored');
select ok(not exists (
  select 1 from agent_keys a, k
   where position(convert_to(k.secret, 'UTF8') in a.key_hash) > 0
      or position(convert_to(substr(k.secret, 5, 16), 'UTF8') in a.key_hash) > 0),
  'the stored row holds no part of the secret');
select is((select key_hash from agent_keys where agent_id = 'sqltest'),
  (select sha256(convert_to(secret, 'UTF8')) from k), 'only its SHA-256 is stored');
select isnt((select create_agent_key('sqltest')), (select secret from k), 'each key is new');

-- Authenticating and counting -------------------------------------------------------
select is((select agent_authenticate(secret) ->> 'agent_id' from k), 'sqltest', 'the key authenticates');
select is((select agent_authenticate(secret) -> 'tools' from k), '["queue_message"]'::jsonb,
  'with its tools');
select is((select (agent_authenticate(secret) ->> 'allowed')::boolean from k), false,
  'the third request in a minute at 2 a minute is refused');
select ok((select (agent_authenticate(secret) ->> 'retry_after_seconds')::int between 1 and 60 from k),
  'with a retry after within the minute');
select is((select (agent_authenticate(secret, false) ->> 'allowed')::boolean from k), true,
  'a lookup that is not counted (an MCP handshake) is never refused');
update agent_rate_windows set window_start = window_start - interval '1 minute'
 where key_id = (select id from agent_keys where agent_id = 'sqltest' and tools is not null);
select is((select (agent_authenticate(secret) ->> 'allowed')::boolean from k), true,
  'the next window admits again');
select is(agent_authenticate('oak_' || repeat('0', 64)), null, 'an unknown key is null');
select is(agent_authenticate('not a key'), null, 'a malformed key is null');

-- Revoking ----------------------------------------------------------------------------
select is(revoke_agent_key('sqltest'), 2, 'both keys of the agent are revoked');
select is((select agent_authenticate(secret) from k), null, 'a revoked key no longer authenticates');
select is(revoke_agent_key('sqltest'), 0, 'revoking again revokes nothing');

-- Quiet hours ---------------------------------------------------------------------------
select throws_ok($$select set_quiet_hours('00000000-0000-4000-8000-00000000a6e1', '08:00', '08:00')$$,
  '22023', null, 'quiet hours cannot be switched off');
select throws_ok($$select set_quiet_hours('00000000-0000-4000-8000-00000000a6e1', '20:00', '18:00')$$,
  '22023', null, 'nor cover most of the day');
select is(set_quiet_hours('00000000-0000-4000-8000-00000000a6e1', '23:30', '07:00'),
  '{"quiet_hours_start": "23:30", "quiet_hours_end": "07:00"}'::jsonb, 'a 7.5 hour night is stored');

-- Search ----------------------------------------------------------------------------------
insert into interactions (user_id, channel, transcript)
values ('00000000-0000-4000-8000-00000000a6e2', 'voice', 'We talked about the dentist appointment');
select is((select count(*) from interaction_search
            where user_id = '00000000-0000-4000-8000-00000000a6e2'
              and document @@ websearch_to_tsquery('english', 'dentist')), 1::bigint,
  'a new interaction is searchable');

select * from finish();
rollback;
