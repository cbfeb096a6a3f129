-- Accounts, funds, idempotent credits, balances, the append-only ledger.
SET client_min_messages = warning;

SELECT billing.create_account('acct-alice') AS alice \gset
SELECT billing.create_account('acct-bob', 'postpaid') AS bob \gset
SELECT billing.create_account('acct-eur', 'prepaid', 'EUR') AS eur \gset
SELECT external_id, billing_type, currency, credit_limit_micros
  FROM billing.accounts WHERE account_id IN (:alice, :bob, :eur) ORDER BY account_id;
SELECT count(*) AS slices FROM billing.account_slices WHERE account_id = :alice;

-- refusals
SELECT regress.try($$SELECT billing.create_account('acct-alice')$$);
SELECT regress.try($$SELECT billing.create_account('')$$);
SELECT regress.try($$SELECT billing.create_account(repeat('x', 257))$$);
SELECT regress.try($$SELECT billing.create_account('acct-x', 'credit')$$);
SELECT regress.try($$SELECT billing.create_account('acct-x', 'prepaid', 'usd')$$);
SELECT regress.try($$SELECT billing.create_account('acct-x', 'prepaid', 'DOLLARS')$$);
SELECT regress.try($$SELECT billing.create_account(NULL)$$);
SELECT count(*) AS no_acct_x FROM billing.accounts WHERE external_id = 'acct-x';

-- a fresh balance
SELECT billing.balance(:alice) - 'account_id' AS balance;

-- funds, with and without an idempotency key
SELECT billing.add_funds(:alice, 5000000, NULL, 'card ch_1') > 0 AS credited;
SELECT billing.add_funds(:alice, 2500000, 'topup-7') AS first_entry \gset
SELECT billing.add_funds(:alice, 2500000, 'topup-7') = :first_entry AS same_entry;
SELECT regress.try(format($$SELECT billing.add_funds(%s, 2600000, 'topup-7')$$, :alice));
SELECT regress.try(format($$SELECT billing.add_funds(%s, 1, '')$$, :alice));
SELECT regress.try(format($$SELECT billing.add_funds(%s, 1, repeat('k', 257))$$, :alice));
SELECT billing.add_funds(:alice, 1, repeat('k', 256)) > 0 AS key_256_ok;
SELECT kind, amount_micros, idempotency_key IS NOT NULL AS keyed, reference
  FROM billing.ledger WHERE account_id = :alice ORDER BY entry_id;
SELECT billing.balance(:alice) - 'low_balance_threshold_micros' - 'account_id' AS balance;

-- unknown and postpaid accounts
SELECT regress.try('SELECT billing.add_funds(999999, 100)');
SELECT regress.try('SELECT billing.balance(999999)');
SELECT regexp_replace(regress.try(format('SELECT billing.add_funds(%s, 100)', :bob)), 'account \d+', 'account N') AS try;
UPDATE billing.accounts SET active = false WHERE account_id = :eur;
SELECT regexp_replace(regress.try(format('SELECT billing.add_funds(%s, 100)', :eur)), 'account \d+', 'account N') AS try;

-- the ledger is append-only
SELECT regress.try(format('UPDATE billing.ledger SET amount_micros = 1 WHERE account_id = %s', :alice));
SELECT regress.try(format('DELETE FROM billing.ledger WHERE account_id = %s', :alice));
SELECT regress.try('TRUNCATE billing.ledger');

-- verify() notices a balance changed behind the ledger's back
BEGIN;
UPDATE billing.account_slices SET available_micros = available_micros + 1
 WHERE account_id = :alice AND slice = 3;
SELECT problem FROM billing.verify(:alice);
ROLLBACK;
SELECT * FROM billing.verify();
