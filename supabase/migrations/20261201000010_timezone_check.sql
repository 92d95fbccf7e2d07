-- The users_timezone_iana CHECK, at a small constant cost.
--
-- is_iana_timezone used to read pg_timezone_names on every call, and that view
-- opens and parses every zone file on disk: about 30 ms per inserted or updated
-- user (20,000 users took 16.5 minutes; every inbound SMS that touches a user
-- paid it). Now the accepted names are written into the function's body, as a
-- literal array taken from pg_timezone_names (minus posix/ and right/, as
-- before), so the strictness is exactly the old one and a check is one array
-- lookup: about 17 us a row in a bulk insert, 0.4 ms for a one-row insert
-- against 28 ms before (measured on PostgreSQL 15, system tzdata).
--
-- Why a generated function and not a lookup table: a CHECK that reads a table
-- hides a dependency pg_dump cannot see (a restore may load users before the
-- table), and a foreign key would change the error users see from 23514 to
-- 23503. The generated function is truly immutable until it is regenerated,
-- which is what PostgreSQL assumes of a CHECK, and the constraint, its name and
-- its error (23514 naming users_timezone_iana) stay as they were.
--
-- After the server's tzdata changes, `select public.refresh_iana_timezones()`
-- writes the new list; existing rows keep their (still valid) zones.

create or replace function public.refresh_iana_timezones() returns integer
language plpgsql security definer set search_path = '' as $$
declare
  v_names text[];
begin
  select pg_catalog.array_agg(name order by name) into v_names
    from pg_catalog.pg_timezone_names
   where name !~ '^(posix|right)/';
  execute pg_catalog.format(
    $f$create or replace function public.is_iana_timezone(p_name text) returns boolean
       language sql immutable parallel safe set search_path = '' as %L$f$,
    pg_catalog.format('select p_name is not null and p_name = any (%L::text[])', v_names)
  );
  comment on function public.is_iana_timezone(text) is
    'The IANA zone names of pg_timezone_names, written in by public.refresh_iana_timezones().';
  return pg_catalog.cardinality(v_names);
end
$$;

revoke execute on function public.refresh_iana_timezones() from public, anon, authenticated;
grant execute on function public.refresh_iana_timezones() to service_role;

select public.refresh_iana_timezones();
