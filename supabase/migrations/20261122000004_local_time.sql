-- Local wall-clock time in a user's IANA zone, with the DST rules of the spec:
-- a local time that does not exist (spring-forward gap) moves to the first
-- instant after the gap; an ambiguous one (fall-back) takes its first
-- occurrence. PostgreSQL's own `timestamp AT TIME ZONE` does neither (it reads
-- both as standard time), hence these functions.

create or replace function public.local_to_instant(p_local timestamp, p_tz text)
returns timestamptz
language plpgsql stable parallel safe set search_path = '' as $$
declare
  v_probe timestamptz := p_local at time zone 'UTC';
  -- Offsets a day either side; real zones never change offset twice in a day.
  v_off_before interval := ((v_probe - interval '1 day') at time zone p_tz)
                           - ((v_probe - interval '1 day') at time zone 'UTC');
  v_off_after interval := ((v_probe + interval '1 day') at time zone p_tz)
                          - ((v_probe + interval '1 day') at time zone 'UTC');
  v_a timestamptz := (p_local - v_off_before) at time zone 'UTC';
  v_b timestamptz := (p_local - v_off_after) at time zone 'UTC';
  v_a_ok boolean := (v_a at time zone p_tz) = p_local;
  v_b_ok boolean := (v_b at time zone p_tz) = p_local;
  v_lo timestamptz;
  v_hi timestamptz;
  v_mid timestamptz;
begin
  if v_a_ok and v_b_ok then
    return least(v_a, v_b);
  elsif v_a_ok then
    return v_a;
  elsif v_b_ok then
    return v_b;
  end if;
  -- In a gap: the first instant whose local time is at or past p_local.
  v_lo := least(v_a, v_b);
  v_hi := greatest(v_a, v_b);
  while v_hi - v_lo > interval '1 second' loop
    v_mid := v_lo + (v_hi - v_lo) / 2;
    if (v_mid at time zone p_tz) >= p_local then
      v_hi := v_mid;
    else
      v_lo := v_mid;
    end if;
  end loop;
  return date_trunc('second', v_hi);
end
$$;

-- The instant the user's quiet hours [start, end) end, when p_at falls inside
-- them; null otherwise. start = end means no quiet hours; start > end wraps
-- midnight.
create or replace function public.quiet_hours_end(
  p_at timestamptz,
  p_tz text,
  p_start time,
  p_end time
) returns timestamptz
language plpgsql stable parallel safe set search_path = '' as $$
declare
  v_local timestamp := p_at at time zone p_tz;
  v_time time := v_local::time;
  v_day date := v_local::date;
  v_end_day date;
  v_end timestamptz;
begin
  if p_start = p_end then
    return null;
  elsif p_start < p_end then
    if v_time < p_start or v_time >= p_end then
      return null;
    end if;
    v_end_day := v_day;
  elsif v_time >= p_start then
    v_end_day := v_day + 1;
  elsif v_time < p_end then
    v_end_day := v_day;
  else
    return null;
  end if;
  v_end := public.local_to_instant(v_end_day + p_end, p_tz);
  -- Inside the repeated hour of a fall-back, the first occurrence of the end
  -- time can already be past: then it is the second one.
  if v_end <= p_at then
    v_end := (v_end_day + p_end) at time zone p_tz;
  end if;
  return v_end;
end
$$;

-- The first instant at or after p_candidate that is outside quiet hours.
create or replace function public.outside_quiet_hours(
  p_candidate timestamptz,
  p_tz text,
  p_start time,
  p_end time
) returns timestamptz
language sql stable parallel safe set search_path = '' as $$
  select coalesce(public.quiet_hours_end(p_candidate, p_tz, p_start, p_end), p_candidate)
$$;

-- The start of the user's next local day.
create or replace function public.next_local_midnight(p_at timestamptz, p_tz text)
returns timestamptz
language sql stable parallel safe set search_path = '' as $$
  select public.local_to_instant(((p_at at time zone p_tz)::date + 1)::timestamp, p_tz)
$$;

revoke execute on function public.local_to_instant(timestamp, text) from public, anon, authenticated;
revoke execute on function public.quiet_hours_end(timestamptz, text, time, time) from public, anon, authenticated;
revoke execute on function public.outside_quiet_hours(timestamptz, text, time, time) from public, anon, authenticated;
revoke execute on function public.next_local_midnight(timestamptz, text) from public, anon, authenticated;
grant execute on function public.local_to_instant(timestamp, text) to service_role;
grant execute on function public.quiet_hours_end(timestamptz, text, time, time) to service_role;
grant execute on function public.outside_quiet_hours(timestamptz, text, time, time) to service_role;
grant execute on function public.next_local_midnight(timestamptz, text) to service_role;
