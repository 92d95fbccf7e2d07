-- The analysis may set the user's preferred hours when they state them ("text
-- me after 6 pm"), through set_preferred_hours and its bounds, once per run.
create or replace function public.analysis_set_preferred_hours(
  p_claim_token uuid,
  p_interaction_id uuid,
  p_start time,
  p_end time,
  p_idempotency_key text
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_user uuid := public.analysis_claim_user(p_claim_token, p_interaction_id);
  v_prev jsonb := public.analysis_replay(v_user, p_idempotency_key);
begin
  if v_prev is not null then
    return v_prev;
  end if;
  return public.analysis_remember(v_user, p_idempotency_key, p_interaction_id,
                                  'set_contact_preferences',
                                  public.set_preferred_hours(v_user, p_start, p_end));
end
$$;

revoke execute on function public.analysis_set_preferred_hours(uuid, uuid, time, time, text)
  from public, anon, authenticated;
grant execute on function public.analysis_set_preferred_hours(uuid, uuid, time, time, text)
  to service_role;
