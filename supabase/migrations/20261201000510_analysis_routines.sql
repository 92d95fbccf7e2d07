-- The analysis may install, adjust or pause the user's built-in routines when they ask for it in a
-- conversation ("send me a plan every morning at 7"), through enable_builtin_routine and its
-- checks (the calls' RRULE guardrails among them), once per run.
create or replace function public.analysis_set_routine(
  p_claim_token uuid,
  p_interaction_id uuid,
  p_template text,
  p_enabled boolean,
  p_params jsonb,
  p_idempotency_key text
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_user uuid := public.analysis_claim_user(p_claim_token, p_interaction_id);
  v_prev jsonb := public.analysis_replay(v_user, p_idempotency_key);
  v_id uuid;
begin
  if v_prev is not null then
    return v_prev;
  end if;
  if p_enabled is null then
    raise exception 'p_enabled must be true or false' using errcode = '22023';
  end if;
  if p_enabled then
    v_id := public.enable_builtin_routine(v_user, p_template, coalesce(p_params, '{}'));
    -- Asked for again: a paused one carries on.
    update public.routines set status = 'active', status_reason = null, snoozed_until = null
     where id = v_id and status = 'paused';
  else
    perform public.builtin_routine_params(p_template, '{}');
    select id into v_id from public.routines
     where user_id = v_user and template = p_template and status <> 'ended';
    if found then
      perform public.pause_routine(v_id);
    end if;
  end if;
  return public.analysis_remember(v_user, p_idempotency_key, p_interaction_id, 'set_routine',
    coalesce((select pg_catalog.jsonb_build_object('routine_id', id, 'template', template,
                       'status', status, 'params', params)
                from public.routines where id = v_id),
             pg_catalog.jsonb_build_object('template', p_template, 'status', 'none')));
end
$$;

revoke execute on function public.analysis_set_routine(uuid, uuid, text, boolean, jsonb, text)
  from public, anon, authenticated;
grant execute on function public.analysis_set_routine(uuid, uuid, text, boolean, jsonb, text)
  to service_role;
