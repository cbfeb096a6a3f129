/* Accounts, the ledger and the available amount kept in slices. */
#ifndef BILLING_LEDGER_H
#define BILLING_LEDGER_H

#include "postgres.h"

#include "storage/lockdefs.h"

typedef struct Account
{
	int64		account_id;
	bool		postpaid;
	char		currency[4];
	int64		credit_limit;
	bool		auto_topup_enabled;
	int64		auto_topup_threshold;
	int64		auto_topup_amount;
} Account;

/* Settings of the slices (slices_init, called by _PG_init). */
extern char *billing_low_balance_floor_micros;	/* micros, see money_setting() */
extern int	billing_low_balance_factor;
extern int	billing_low_balance_window;		/* seconds */
extern int	billing_balance_slices;
extern void slices_init(void);

/*
 * Loads an account; ERROR PB404 when unknown, or disabled and active_only.
 * Requests need an active account; money movements of the cold paths
 * (invoices of a disabled account, for one) do not.
 */
extern void account_load(int64 account_id, Account *acct, bool active_only);

/*
 * Whether the account has spend limits, or balance alerts: only accounts
 * that have them pay for them. Call under the account's gate. An Account
 * loaded before the gate does not carry them, because it may predate a
 * set_spend_limit or set_balance_alerts that committed while this
 * transaction waited: those change them under the exclusive gate, and
 * taking the gate takes in their invalidations (gate_lock), so that the
 * cache answers for every change committed before it. A lookup in the
 * account cache: no query unless the cache was dropped.
 */
extern bool account_has_limits(int64 account_id);
extern bool account_has_alerts(int64 account_id);

/*
 * Admission: takes amount (>= 0) out of the available amount, or raises
 * PB402 when it is not covered. Concurrent callers on one account usually
 * take from the fast budgets of different slices (the fast path); when no
 * budget covers the amount, every slice is locked and the exact total
 * decides (per-request validation), then the slices are laid out again
 * (slices.c): a new budget above the low-balance threshold, none below it.
 */
extern void available_take(const Account *acct, int64 amount);
/* The exact path alone, for a caller whose own fast attempt failed. */
extern void available_take_exact(const Account *acct, int64 amount);

/*
 * The fast path as SQL, for statements that fold it into more work: takes
 * amount (> 0) out of an unlocked slice of account acct whose fast budget
 * covers it, trying slice home first (one index probe; COALESCE runs the
 * scan of the others only when that one is locked or short); returns one
 * row when it did. The arguments are the SQL of the three values, e.g. "$1".
 */
#define SLICE_TAKE_SQL(acct, amount, home) \
	"UPDATE billing.account_slices SET available_micros = available_micros - " amount "," \
	"       fast_micros = fast_micros - " amount \
	" WHERE account_id = " acct " AND slice = COALESCE(" \
	"       (SELECT slice FROM billing.account_slices" \
	"         WHERE account_id = " acct " AND slice = " home \
	"           AND fast_micros >= " amount " FOR UPDATE SKIP LOCKED)," \
	"       (SELECT slice FROM billing.account_slices" \
	"         WHERE account_id = " acct " AND fast_micros >= " amount \
	"         ORDER BY slice LIMIT 1 FOR UPDATE SKIP LOCKED))" \
	" RETURNING slice"

/* The slice this backend tries first, so that backends spread over slices. */
extern int	slice_home(void);

/*
 * Waits for this backend's home slice and takes amount from it when its
 * fast budget covers it; true when it did. Only inside available_try_fast().
 */
extern bool slice_take_home(int64 account_id, int64 amount);

/*
 * A fast-path take of account_id's money: attempt(arg, false) takes from
 * any unlocked slice that covers it, attempt(arg, true) waits for the home
 * slice (slice_take_home). Each runs in a subtransaction of its own under
 * the account's share gate, so that a failed one leaves no row lock behind
 * (a waiter then holds no slice anyone could wait for). True when one took
 * the money; the gate is then held to commit. False, with nothing kept,
 * when an exact path holds the account or both failed: the caller goes exact.
 */
extern bool available_try_fast(int64 account_id, bool (*attempt) (void *arg, bool wait_home),
							   void *arg);

/*
 * The gates (heavyweight locks held to commit) of an account's slices and of
 * a spend limit's slices (limits.c): the fast path holds one in share mode,
 * the exact path in exclusive mode. gated_try_fast() is available_try_fast()
 * for any gate. A new hold of an account's gate takes in the invalidations
 * that transactions which held it before have sent (account_has_limits).
 */
#define GATE_ACCOUNT 0xB111
#define GATE_LIMIT 0xB112
extern void gate_lock(int64 key, uint16 kind, LOCKMODE mode);
extern bool gated_try_fast(int64 key, uint16 kind, bool (*attempt) (void *arg, bool wait_home),
						   void *arg);

/*
 * Moves delta into (> 0) or out of (< 0) the available amount without a
 * coverage check: releases, refunds, credits, and the overrun of an
 * effective cost past its estimate, which may leave the account below zero.
 */
extern void available_adjust(int64 account_id, int64 delta);

/*
 * Cold paths (funds, top-ups, invoices, credit limits): moves delta into or
 * out of the available amount with every slice locked, and lays the result
 * out as an exact validation would.
 */
extern void available_rebalance(int64 account_id, int64 delta);

/*
 * The fast path's budget for an account with this available amount,
 * threshold and holds of unfinished requests: what the fast path can take
 * before the next exact pass and still leave the account at or above its
 * threshold. Taking b leaves at least available - b (credits only add); the
 * spend still to come is at most b and the holds (their settlement), so the
 * threshold rises by at most factor x (b + holds): the budget is the largest
 * b with available - b >= threshold + factor x (b + holds). Exact while the
 * window's spend is summed; when it is extrapolated from a sample, each
 * exact pass follows the new estimate. 0 means every request validates
 * exactly ("per_request").
 */
extern int64 fast_budget(int64 available, int64 threshold, int64 holds);

/* Exact available amount as this transaction sees it (sum of slices). */
extern int64 available_total(int64 account_id);

/*
 * Low-balance threshold of the account right now (README.md, Admission): the
 * larger of the floor and factor x recent spend, saturated at PG_INT64_MAX
 * (never an error).
 */
extern int64 low_balance_threshold(int64 account_id);

/*
 * Appends a ledger entry; amount must be non-zero. request_id, topup_id and
 * invoice_id are 0 when not applicable, key and reference may be NULL.
 * Returns the entry id. Does not touch the available amount.
 */
extern int64 ledger_post(int64 account_id, const char *kind, int64 amount, bool postpaid,
						 int64 request_id, int64 topup_id, int64 invoice_id,
						 const char *key, const char *reference);

/*
 * Spend limits (limits.c, docs/limits.md). limits_admit takes amount (> 0)
 * from every limit that applies to a request of scope (NULL: none but the
 * account's), or raises PB402 "spend limit reached" naming the one with
 * the least left. limits_settle moves the request's hold - cost into them
 * without a check (an overrun may leave them below zero). request_id is the
 * request being admitted or settled. No-ops for accounts without limits.
 */
extern void limits_admit(const Account *acct, const char *scope, int64 request_id, int64 amount);
extern void limits_settle(const Account *acct, const char *scope, int64 request_id, int64 delta);

/*
 * Balance alerts (alerts.c): after the available amount moved by delta,
 * fires the alerts it crossed downwards (debits) or re-arms those it is at
 * or above again (credits). A no-op for accounts without alerts.
 */
extern void alerts_after_change(const Account *acct, int64 delta);

/* What request_id of account_id has had back in refunds (corrections.c). */
extern int64 request_refunded(int64 account_id, int64 request_id);

/* Refuses (22023) an idempotency key that is empty or over 256 characters. */
extern void check_idempotency_key(const char *key);
#endif
