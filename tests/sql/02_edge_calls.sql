-- How the database calls the edge functions: the webhook trigger and pg_cron.
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(8);

select is(
  (select schedule from cron.job where jobname = 'process-queue'),
  '* * * * *',
  'pg_cron runs process-queue every minute'
);
select has_trigger('public', 'interactions', 'interactions_analyze', 'interactions has the analysis trigger');

insert into users (id, phone_number) values ('00000000-0000-4000-8000-000000000001', '+19995550111');
insert into interactions (id, user_id, channel, transcript)
values ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000001', 'voice', 'hello');

select is(
  (select count(*)::int from analysis_jobs where interaction_id = '00000000-0000-4000-8000-0000000000a1'),
  1,
  'an insert records one durable analysis job'
);
select isnt(
  (select last_request_id from analysis_jobs where interaction_id = '00000000-0000-4000-8000-0000000000a1'),
  null,
  'and queues the webhook request'
);
select is(
  (select q.url from net.http_request_queue q
     join analysis_jobs j on j.last_request_id = q.id
    where j.interaction_id = '00000000-0000-4000-8000-0000000000a1'),
  (select rtrim(decrypted_secret, '/') from vault.decrypted_secrets where name = 'project_url')
    || '/functions/v1/analyze-interaction',
  'to analyze-interaction at the project URL from Vault'
);
select is(
  (select convert_from(q.body, 'UTF8')::jsonb - 'record'
     from net.http_request_queue q join analysis_jobs j on j.last_request_id = q.id
    where j.interaction_id = '00000000-0000-4000-8000-0000000000a1'),
  '{"type": "INSERT", "table": "interactions", "schema": "public", "old_record": null}'::jsonb,
  'with the Database Webhook payload'
);

delete from vault.secrets where name in ('project_url', 'orchestrator_secret');
select lives_ok(
  $$insert into interactions (user_id, channel, transcript)
    values ('00000000-0000-4000-8000-000000000001', 'sms', 'no secrets yet')$$,
  'without the Vault secrets an insert still succeeds'
);
select is(
  (select count(*)::int from analysis_jobs where last_request_id is null
      and user_id = '00000000-0000-4000-8000-000000000001'),
  1,
  'and leaves its job for the per-minute run'
);

select * from finish();
rollback;
