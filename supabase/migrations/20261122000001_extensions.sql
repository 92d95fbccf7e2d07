-- Extensions the orchestrator stands on. pg_cron and pg_net ship with every
-- hosted Supabase project; Vault is preinstalled there. The local stack puts
-- stand-ins for pg_net and Vault in place before migrations run, so each one is
-- only created here when the real extension is available.
create extension if not exists pg_cron with schema pg_catalog;

do $$
begin
  if exists (select from pg_available_extensions where name = 'pg_net') then
    create extension if not exists pg_net with schema extensions;
  end if;
  if to_regprocedure('net.http_post(text, jsonb, jsonb, jsonb, integer)') is null then
    raise exception 'pg_net is required: enable it under Database > Extensions, or run the local stack (npm start)';
  end if;

  if exists (select from pg_available_extensions where name = 'supabase_vault') then
    create extension if not exists supabase_vault with schema vault;
  end if;
  if to_regclass('vault.decrypted_secrets') is null then
    raise exception 'Supabase Vault is required (vault.decrypted_secrets is missing)';
  end if;
end
$$;
