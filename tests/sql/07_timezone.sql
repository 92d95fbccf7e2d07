-- users_timezone_iana: exactly the zone names pg_timezone_names knows, minus
-- posix/ and right/, checked without reading the zone files on every write
-- (the cost itself is measured by npm run bench, not here).
begin;
create extension if not exists pgtap with schema extensions;
set search_path = public, extensions;
select plan(17);

select lives_ok(
  $$insert into users (phone_number, timezone) values
      ('+19995550171', 'Europe/Chisinau'), ('+19995550172', 'America/Santiago'),
      ('+19995550173', 'Australia/Lord_Howe'), ('+19995550174', 'UTC')$$,
  'zones with DST, half-hour DST and none are accepted'
);
select lives_ok(
  $$insert into users (phone_number, timezone) values ('+19995550175', 'EST5EDT')$$,
  'EST5EDT is a zone file pg_timezone_names lists, so it stays accepted as before'
);
select lives_ok(
  $$update users set timezone = 'Asia/Kolkata' where phone_number = '+19995550171'$$,
  'an update to a valid zone is accepted'
);

select throws_ok(
  $$insert into users (phone_number, timezone) values ('+19995550176', 'Mars/Base')$$,
  '23514', 'new row for relation "users" violates check constraint "users_timezone_iana"',
  'an unknown zone is refused, naming the time-zone constraint'
);
select throws_ok(
  $$insert into users (phone_number, timezone) values ('+19995550176', 'posix/Europe/Paris')$$,
  '23514', null, 'a posix/ zone is refused'
);
select throws_ok(
  $$insert into users (phone_number, timezone) values ('+19995550176', 'right/UTC')$$,
  '23514', null, 'a right/ (leap-second) zone is refused'
);
select throws_ok(
  $$insert into users (phone_number, timezone) values ('+19995550176', 'EST5EDT,M3.2.0,M11.1.0')$$,
  '23514', null, 'a POSIX rule string is refused'
);
select throws_ok(
  $$insert into users (phone_number, timezone) values ('+19995550176', 'europe/chisinau')$$,
  '23514', null, 'names are matched exactly, case included'
);
select throws_ok(
  $$insert into users (phone_number, timezone) values ('+19995550176', '')$$,
  '23514', null, 'an empty zone is refused'
);
select throws_ok(
  $$update users set timezone = 'Mars/Base' where phone_number = '+19995550172'$$,
  '23514', null, 'an update to an unknown zone is refused'
);
select is(
  (select timezone from users where phone_number = '+19995550172'),
  'America/Santiago', 'and leaves the zone as it was'
);

-- Same strictness as the old check, name for name.
select is(
  (select count(*) from pg_timezone_names
    where name !~ '^(posix|right)/' and not public.is_iana_timezone(name)),
  0::bigint, 'every IANA name pg_timezone_names lists is accepted'
);
select is(
  (select count(*) from pg_timezone_names
    where name ~ '^(posix|right)/' and public.is_iana_timezone(name)),
  0::bigint, 'no posix/ or right/ name is accepted'
);
select is(public.is_iana_timezone(null), false, 'null is not a zone');

-- A CHECK must be a pure function of the row: the old one read the zone files.
select is(
  (select provolatile from pg_proc where oid = 'public.is_iana_timezone(text)'::regprocedure),
  'i'::"char", 'the zone check is immutable: it reads nothing at write time'
);

select is(
  public.refresh_iana_timezones(),
  (select count(*)::int from pg_timezone_names where name !~ '^(posix|right)/'),
  'refresh_iana_timezones writes in every IANA name'
);
select lives_ok(
  $$insert into users (phone_number, timezone) values ('+19995550177', 'Pacific/Chatham')$$,
  'and the check still accepts zones after a refresh'
);

select * from finish();
rollback;
