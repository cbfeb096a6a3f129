-- Reversals (docs/topup.md "Chargebacks"): reverse_topup,
-- reverse_funds and void_grant. Never refused for lack of funds (the
-- available amount goes below zero, requests are PB402 until money
-- arrives); at most what the source credited; a void takes the grant's
-- unused remainder first; idempotency keys; postpaid reversals billed on
-- the next invoice; refusals that write nothing; verify() finds damage.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
SET billing.timezone = 'UTC';
SELECT billing.set_model('rv-img', 'image', 'acme', 'Acme Imaging');
SELECT billing.set_price('rv-img', '[{"type":"output","metric":"image","unit_price_micros":1000000}]',
                         NULL, now() - interval '1 day') > 0 AS priced;
CREATE FUNCTION pg_temp.charge(acct bigint, n int) RETURNS text LANGUAGE sql AS $$
    SELECT billing.charge(acct, 'rv-img', pg_catalog.jsonb_build_object('n', n),
            pg_catalog.jsonb_build_object('images',
                (SELECT pg_catalog.jsonb_agg('{"width":1,"height":1}'::jsonb)
                   FROM pg_catalog.generate_series(1, n)))) ->> 'status' $$;
-- a reversal object without its ids
CREATE FUNCTION pg_temp.shown(j jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT j - 'reversal_id' - 'account_id' - 'source_id' - 'entry_id' $$;
-- regress.try with the detail, ids masked
CREATE FUNCTION pg_temp.refusal(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(regress.try_detail(sql), '(top-up|grant|entry|account|Reversal) -?\d+', '\1 N', 'g') $$;
CREATE FUNCTION pg_temp.money(acct bigint) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_catalog.jsonb_build_object('balance', b -> 'balance_micros', 'available', b -> 'available_micros',
               'credits', (SELECT pg_catalog.jsonb_agg(c -> 'remaining_micros') FROM jsonb_array_elements(b -> 'credits') c),
               'auto_topup', b -> 'auto_topup')
      FROM billing.balance(acct) b $$;
CREATE FUNCTION pg_temp.events(acct bigint, after bigint) RETURNS TABLE (type text, payload jsonb)
LANGUAGE sql AS $$
    SELECT e.type, e.payload - 'reversal_id' - 'account_id' - 'source_id' - 'entry_id' - 'topup_id'
      FROM billing.events e WHERE e.account_id = acct AND e.event_id > after ORDER BY e.event_id $$;

-- An account with funds of 100, a top-up of 20 and a grant of 30
SELECT billing.create_account('rv-a') AS a \gset
SELECT billing.add_funds(:a, 100000000) AS funds \gset
SELECT billing.configure_auto_topup(:a, 150000000, 20000000);
SELECT topup_id AS topup FROM billing.topups WHERE account_id = :a \gset
SELECT billing.complete_topup(:topup, true, 'pay-1') ->> 'status' AS completed;
SELECT billing.grant_credits(:a, 30000000, now() + interval '30 days') AS grant_id \gset
SELECT pg_temp.money(:a);
SELECT COALESCE(max(event_id), 0) AS ev0 FROM billing.events WHERE account_id = :a \gset

-- A chargeback of 5 of the top-up, with a key: auto top-up turned off;
-- the same key again returns the first reversal and moves nothing
SELECT pg_temp.shown(billing.reverse_topup(:topup, 5000000, idempotency_key => 'cb-1'));
SELECT pg_temp.shown(billing.reverse_topup(:topup, 5000000, idempotency_key => 'cb-1'));
SELECT pg_temp.money(:a);
SELECT * FROM pg_temp.events(:a, :ev0);
-- the key with other arguments, more than is left, nothing left
SELECT pg_temp.refusal(format('SELECT billing.reverse_topup(%s, 6000000, idempotency_key => ''cb-1'')', :topup));
SELECT pg_temp.refusal(format('SELECT billing.reverse_topup(%s, 5000000, ''fraud'', idempotency_key => ''cb-1'')', :topup));
SELECT pg_temp.refusal(format('SELECT billing.reverse_topup(%s, 15000001)', :topup));
SELECT pg_temp.shown(billing.reverse_topup(:topup));
SELECT pg_temp.refusal(format('SELECT billing.reverse_topup(%s, 1)', :topup));
SELECT pg_temp.refusal(format('SELECT billing.reverse_topup(%s)', :topup));

-- A void: the grant is used first (it expires), 4 of it spent; NULL takes
-- its unused remainder of 26; the rest, paid credit already spent, from
-- other money, never from the other grant (10, no expiry); then nothing is left
SELECT billing.grant_credits(:a, 10000000) AS other_grant \gset
SELECT pg_temp.charge(:a, 4);
SELECT pg_temp.money(:a);
SELECT pg_temp.shown(billing.void_grant(:grant_id));
SELECT pg_temp.refusal(format('SELECT billing.void_grant(%s)', :grant_id));
SELECT pg_temp.shown(billing.void_grant(:grant_id, 4000000, 'fraud'));
SELECT pg_temp.refusal(format('SELECT billing.void_grant(%s, 1)', :grant_id));
SELECT pg_temp.money(:a);
SELECT g.grant_id = :grant_id AS the_grant, g.remaining_micros FROM billing._grant_remainders(:a, true) g;

-- Funds taken back below zero: never refused; every request is PB402 with
-- the negative amount; an open request still settles; a payment ends it
SELECT pg_temp.shown(billing.void_grant(:other_grant, NULL, 'abuse')) ->> 'amount_micros' AS other_voided;
SELECT billing.begin_request(:a, 'rv-img', '{}') ->> 'request_id' AS open_req \gset
SELECT pg_temp.shown(billing.reverse_funds(:funds, NULL, 'chargeback'));
SELECT pg_temp.money(:a);
SELECT pg_temp.refusal(format('SELECT billing.charge(%s, ''rv-img'', ''{}'', ''{"images":[{}]}'')', :a));
SELECT billing.complete_request(:open_req, regress.images(1)) ->> 'status' AS settled;
SELECT billing.add_funds(:a, 50000000) > 0 AS paid, pg_temp.charge(:a, 1);

-- Refusals (22023, PB404, PB409) write nothing
SELECT billing.create_account('rv-b') AS b \gset
SELECT billing.add_funds(:b, 10000000) AS bfunds \gset
SELECT pg_temp.charge(:b, 1);
SELECT entry_id AS usage_entry FROM billing.ledger WHERE account_id = :b AND kind = 'usage' \gset
SELECT billing.configure_auto_topup(:b, 50000000, 20000000);
SELECT topup_id AS btopup FROM billing.topups WHERE account_id = :b AND status = 'pending' \gset
SELECT (SELECT count(*) FROM billing.ledger) AS entries, (SELECT count(*) FROM billing.events) AS events \gset
SELECT regexp_replace(call, '\(\d+', '(N') AS call, pg_temp.refusal(call) AS refused
  FROM unnest(ARRAY[
      'SELECT billing.reverse_topup(NULL)',
      'SELECT billing.reverse_funds(NULL)',
      'SELECT billing.void_grant(NULL)',
      'SELECT billing.reverse_topup(-1)',
      'SELECT billing.reverse_funds(-1)',
      'SELECT billing.void_grant(-1)',
      format('SELECT billing.reverse_topup(%s)', :btopup),
      format('SELECT billing.reverse_funds(%s)', :usage_entry),
      format('SELECT billing.reverse_funds(%s, 0)', :bfunds),
      format('SELECT billing.reverse_funds(%s, -1)', :bfunds),
      format('SELECT billing.reverse_funds(%s, 10000001)', :bfunds),
      format('SELECT billing.reverse_funds(%s, 1, NULL)', :bfunds),
      format('SELECT billing.reverse_funds(%s, 1, '''')', :bfunds),
      format('SELECT billing.reverse_funds(%s, 1, repeat(''x'', 1025))', :bfunds),
      format('SELECT billing.reverse_funds(%s, 1, ''cb'', '''')', :bfunds),
      format('SELECT billing.reverse_funds(%s, 1, ''cb'', repeat(''k'', 257))', :bfunds),
      format('SELECT billing.reverse_topup(%s, 1, ''cb'', NULL)', :btopup),
      format('SELECT billing.void_grant(%s, 1, '''')', :grant_id)]) call;
SELECT (SELECT count(*) FROM billing.ledger) = :entries AS no_entries,
       (SELECT count(*) FROM billing.events) = :events AS no_events;
-- a key is per account and a space of its own: an add_funds key does not collide
SELECT billing.add_funds(:b, 1000, 'k-b') > 0 AS keyed;
-- and a reversal fires a balance alert like any debit (9.001 -> 9.000, below 9.0005)
SELECT billing.set_balance_alerts(:b, '{9000500}');
SELECT COALESCE(max(event_id), 0) AS evb FROM billing.events WHERE account_id = :b \gset
SELECT pg_temp.shown(billing.reverse_funds(:bfunds, 1000, 'cb', 'k-b')) ->> 'amount_micros' AS reversed;
SELECT type, payload FROM billing.events WHERE account_id = :b AND event_id > :evb AND type = 'balance_alert';
-- in statement(), not in usage()
SELECT kind, amount_micros FROM billing.statement(:b, now() - interval '1 day', now() + interval '1 day')
 WHERE kind = 'reversal';
SELECT sum(cost_micros) AS usage_cost, sum(requests) AS requests
  FROM billing.usage(:b, now() - interval '1 day', now() + interval '1 day');
SELECT pg_temp.refusal(format('SELECT billing.reverse_funds(%s, 1000, ''cb'', ''cb-1'')', :bfunds)) AS other_account_key;
SELECT billing.configure_auto_topup(:b, 50000000, 20000000, false);

-- read-only (as on a standby): 25006, and the session goes on
BEGIN READ ONLY;
SELECT pg_temp.refusal(format('SELECT billing.reverse_funds(%s, 1000)', :bfunds));
ROLLBACK;
SELECT 'the session goes on' AS after;

-- Postpaid now: a postpaid debit correction, billed on the next invoice.
-- The reversal is dated into a closed month here (test only: the clock is
-- not controlled), as billing.reverse_funds posts it.
SELECT billing.create_account('rv-p') AS p \gset
SELECT billing.add_funds(:p, 7000000) AS pfunds \gset
SELECT billing.set_billing_type(:p, 'postpaid');
SELECT billing.set_credit_limit(:p, 100000000, 'regress');
SELECT date_trunc('month', now()) - interval '2 months' AS m0 \gset
SELECT regress.usage_at(:p, 'rv-img', 12000000, :'m0'::timestamptz + interval '3 days') > 0 AS used;
SELECT pg_temp.shown(billing.reverse_funds(:pfunds, 2000000)) ->> 'amount_micros' AS reversed_now;
SELECT postpaid FROM billing.ledger WHERE account_id = :p AND kind = 'reversal';
BEGIN;
-- the reversal of now, re-dated into the month the invoice closes (superuser, past the append-only trigger)
SET LOCAL session_replication_role = replica;
UPDATE billing.ledger SET created_at = :'m0'::timestamptz + interval '5 days' WHERE account_id = :p AND kind = 'reversal';
COMMIT;
SELECT billing.close_period(:'m0'::date) >= 1 AS closed;
SELECT i.subtotal_micros, i.corrections_micros, i.credit_micros, i.total_micros,
       (SELECT count(*) FROM billing.reversals v WHERE v.account_id = :p AND v.invoice_id = i.invoice_id) AS billed
  FROM billing.invoices i WHERE i.account_id = :p;

-- verify() finds damage: a reversal row without its entry, an entry
-- without its row, more taken back than credited, a source of another kind
BEGIN;
UPDATE billing.reversals SET amount_micros = amount_micros + 1 WHERE account_id = :a AND source = 'topup' AND requested_micros IS NULL;
SELECT regexp_replace(problem, '\d+', 'N', 'g') AS problem FROM billing.verify(:a) ORDER BY 1;
ROLLBACK;
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO billing.ledger (account_id, kind, amount_micros) VALUES (:a, 'reversal', -5);
SELECT regexp_replace(problem, '\d+', 'N', 'g') AS problem FROM billing.verify(:a) ORDER BY 1;
ROLLBACK;
BEGIN;
UPDATE billing.reversals SET source = 'funds', topup_id = NULL, funds_entry_id = :usage_entry
 WHERE account_id = :a AND source = 'topup';
SELECT regexp_replace(problem, '\d+', 'N', 'g') AS problem FROM billing.verify(:a) ORDER BY 1;
ROLLBACK;
SELECT * FROM billing.verify();
