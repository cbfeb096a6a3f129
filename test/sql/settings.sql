-- Settings are checked when they are set: a bad billing.timezone or
-- billing.catalog_currency is refused by SET (22023), not later by the
-- function that reads it.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
-- SET name to each of vals in turn: what each answered, and the value in force after it
CREATE FUNCTION pg_temp.try_set(name text, VARIADIC vals text[])
RETURNS TABLE(value text, result text, in_force text) LANGUAGE plpgsql AS $$
BEGIN
    FOREACH value IN ARRAY vals LOOP
        result := regress.try(format('SET %s = %L', name, value));
        in_force := current_setting(name);
        RETURN NEXT;
    END LOOP;
END $$;

-- Until billing's library is loaded in a session, PostgreSQL keeps any
-- billing.* value as a placeholder; loading the library (the first call of a
-- billing function) checks it: a bad one is a warning and the default stays.
SET billing.timezone = 'Mars/Base';
SHOW billing.timezone;
SELECT regress.try($$SELECT billing.balance(-1)$$);
SHOW billing.timezone;

-- Once it is loaded, SET refuses a bad value and keeps the one before.
SELECT * FROM pg_temp.try_set('billing.timezone', 'Mars/Base', '', 'America/New_York; DROP TABLE x');
-- any name PostgreSQL's own TimeZone accepts (pg_timezone_names, POSIX rules)
SELECT * FROM pg_temp.try_set('billing.timezone', 'America/New_York', 'EST5EDT', 'europe/berlin');
-- the zone invoice months are cut in (Berlin is UTC+2 in July)
SELECT starts, ends FROM billing._period_bounds('2025-07-01', current_setting('billing.timezone'));
-- a stored setting is checked too, and so is one of a function's SET clause
SELECT regress.try(format($$ALTER DATABASE %I SET billing.timezone = 'Mars/Base'$$, current_database()));
SELECT regress.try($$CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET billing.timezone = 'Mars/Base' AS 'SELECT 1'$$);
RESET billing.timezone;
SHOW billing.timezone;

-- billing.catalog_currency: three upper-case letters, as accounts and prices
SELECT * FROM pg_temp.try_set('billing.catalog_currency', 'eur', 'EURO', '', 'E1R', 'EUR');
-- new prices carry it
SELECT billing.set_model('set-img', 'image', 'acme', 'Acme');
SELECT billing.set_price('set-img', '[{"type":"output","metric":"image","unit_price_micros":50000}]') > 0 AS priced;
SELECT model, currency FROM billing.prices WHERE model = 'set-img';
RESET billing.catalog_currency;
SHOW billing.catalog_currency;

-- settings in micros hold any bigint amount: a credit limit cap of 50,000 USD
SELECT * FROM pg_temp.try_set('billing.credit_limit_cap_micros', '50000000000', '9223372036854775807',
                              '9223372036854775808', '-1', '1.5');
SELECT * FROM pg_temp.try_set('billing.low_balance_floor_micros', '', ' 5');
RESET billing.credit_limit_cap_micros;
SHOW billing.credit_limit_cap_micros;
-- the threshold reads the floor: 5,000 USD
SET billing.low_balance_floor_micros = '5000000000';
SELECT billing.create_account('set-floor') AS fl \gset
SELECT billing.balance(:fl) ->> 'low_balance_threshold_micros' AS threshold;
RESET billing.low_balance_floor_micros;

SELECT * FROM billing.verify();
