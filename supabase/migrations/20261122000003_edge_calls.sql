-- How the database reaches the edge functions: pg_net requests whose URL and
-- bearer secret come from Vault (secrets `project_url`, `orchestrator_secret`).
-- pg_net sends only after commit, so a rolled-back insert never calls out.

create or replace function public.invoke_edge_function(
  p_function text,
  p_body jsonb,
  p_timeout_ms integer default 5000
) returns bigint
language plpgsql security definer set search_path = '' as $$
declare
  v_url text;
  v_secret text;
begin
  select decrypted_secret into v_url from vault.decrypted_secrets where name = 'project_url';
  select decrypted_secret into v_secret from vault.decrypted_secrets where name = 'orchestrator_secret';
  if v_url is null or v_secret is null then
    -- Never fail the caller's transaction: the per-minute run picks the work up
    -- once the secrets are in place.
    raise warning 'invoke_edge_function(%): Vault secrets project_url and orchestrator_secret must be set', p_function;
    return null;
  end if;
  return net.http_post(
    url := rtrim(v_url, '/') || '/functions/v1/' || p_function,
    body := p_body,
    headers := jsonb_build_object(
      'Content-Type', 'application/json',
      'Authorization', 'Bearer ' || v_secret
    ),
    timeout_milliseconds := p_timeout_ms
  );
end
$$;

-- A new interaction gets a durable analysis job, then the Database Webhook
-- payload goes to analyze-interaction after commit. A blank transcript has
-- nothing to learn from: it is skipped, with no job and no webhook. The job's
-- first re-dispatch waits two minutes, since this webhook is its first dispatch.
create or replace function public.on_interaction_inserted() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  v_request_id bigint;
begin
  if new.analysis_status <> 'pending' then
    return null;
  end if;
  if new.transcript ~ '^[[:space:]]*$' then
    update public.interactions set analysis_status = 'skipped' where id = new.id;
    return null;
  end if;
  insert into public.analysis_jobs (interaction_id, user_id, next_attempt_at)
  values (new.id, new.user_id, now() + interval '2 minutes')
  on conflict (interaction_id) do nothing;

  v_request_id := public.invoke_edge_function(
    'analyze-interaction',
    jsonb_build_object(
      'type', 'INSERT',
      'table', tg_table_name,
      'schema', tg_table_schema,
      'record', to_jsonb(new),
      'old_record', null
    ),
    120000
  );
  -- Without the Vault secrets nothing was sent: the per-minute run sends it.
  update public.analysis_jobs
     set last_request_id = v_request_id,
         dispatches = case when v_request_id is null then 0 else 1 end,
         next_attempt_at = case when v_request_id is null then now() else next_attempt_at end
   where interaction_id = new.id;
  return null;
end
$$;

create trigger interactions_analyze after insert on public.interactions
  for each row execute function public.on_interaction_inserted();

revoke execute on function public.invoke_edge_function(text, jsonb, integer) from public, anon, authenticated;
revoke execute on function public.on_interaction_inserted() from public, anon, authenticated;

-- The per-minute processor. cron.schedule upserts by job name.
select cron.schedule(
  'process-queue',
  '* * * * *',
  $$select public.invoke_edge_function('process-queue', '{"source":"pg_cron"}'::jsonb, 150000)$$
);
