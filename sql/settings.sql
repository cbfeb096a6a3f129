-- Settings are checked when they are set: a bad billing.timezone or
-- billing.catalog_currency is refused by SET (22023), not later by the
-- function that reads it.
SET client_min_messages = warning;
SET TimeZone = 'UTC';

-- Until billing's library is loaded in a session, PostgreSQL keeps any
-- billing.* value as a placeholder; loading the library (the first call of a
-- billing function) checks it: a bad one is a warning and the default stays.
SET billing.timezone = 'Mars/Base';
SHOW billing.timezone;
SELECT regress.try($$SELECT billing.balance(-1)$$);
SHOW billing.timezone;

-- Once it is loaded, SET refuses a bad value and keeps the one before.
SELECT regress.try($$SET billing.timezone = 'Mars/Base'$$);
SELECT regress.try($$SET billing.timezone = ''$$);
SELECT regress.try($$SET billing.timezone = 'America/New_York; DROP TABLE x'$$);
SHOW billing.timezone;
-- any name PostgreSQL's own TimeZone accepts (pg_timezone_names, POSIX rules)
SELECT regress.try($$SET billing.timezone = 'America/New_York'$$);
SHOW billing.timezone;
SELECT regress.try($$SET billing.timezone = 'EST5EDT'$$);
SELECT regress.try($$SET billing.timezone = 'europe/berlin'$$);
-- the zone invoice months are cut in (Berlin is UTC+2 in July)
SELECT starts, ends FROM billing._period_bounds('2025-07-01', current_setting('billing.timezone'));
-- a stored setting is checked too, and so is one of a function's SET clause
SELECT regress.try(format($$ALTER DATABASE %I SET billing.timezone = 'Mars/Base'$$, current_database()));
SELECT regress.try($$CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET billing.timezone = 'Mars/Base' AS 'SELECT 1'$$);
RESET billing.timezone;
SHOW billing.timezone;

-- billing.catalog_currency: three upper-case letters, as accounts and prices
SELECT regress.try($$SET billing.catalog_currency = 'eur'$$);
SELECT regress.try($$SET billing.catalog_currency = 'EURO'$$);
SELECT regress.try($$SET billing.catalog_currency = ''$$);
SELECT regress.try($$SET billing.catalog_currency = 'E1R'$$);
SHOW billing.catalog_currency;
SELECT regress.try($$SET billing.catalog_currency = 'EUR'$$);
SHOW billing.catalog_currency;
-- new prices carry it
SELECT billing.set_model('set-img', 'image', 'acme', 'Acme');
SELECT billing.set_price('set-img', '[{"type":"output","metric":"image","unit_price_micros":50000}]') > 0 AS priced;
SELECT model, currency FROM billing.prices WHERE model = 'set-img';
RESET billing.catalog_currency;
SHOW billing.catalog_currency;

-- settings in micros hold any bigint amount: a credit limit cap of 50,000 USD
SELECT regress.try($$SET billing.credit_limit_cap_micros = '50000000000'$$);
SHOW billing.credit_limit_cap_micros;
SELECT regress.try($$SET billing.credit_limit_cap_micros = '9223372036854775807'$$);
SELECT regress.try($$SET billing.credit_limit_cap_micros = '9223372036854775808'$$);
SELECT regress.try($$SET billing.credit_limit_cap_micros = '-1'$$);
SELECT regress.try($$SET billing.credit_limit_cap_micros = '1.5'$$);
SELECT regress.try($$SET billing.low_balance_floor_micros = ''$$);
SELECT regress.try($$SET billing.low_balance_floor_micros = ' 5'$$);
RESET billing.credit_limit_cap_micros;
SHOW billing.credit_limit_cap_micros;
-- the threshold reads the floor: 5,000 USD
SET billing.low_balance_floor_micros = '5000000000';
SELECT billing.create_account('set-floor') AS fl \gset
SELECT billing.balance(:fl) ->> 'low_balance_threshold_micros' AS threshold;
RESET billing.low_balance_floor_micros;

SELECT * FROM billing.verify();
