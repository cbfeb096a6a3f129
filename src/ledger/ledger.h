/*
 * Accounts (accounts.c) and the ledger's entries (ledger.c, kinds.c), and
 * what hangs off them: spend limits, balance alerts, refunds. The available
 * amount is slices.h.
 */
#ifndef BILLING_LEDGER_H
#define BILLING_LEDGER_H

#include "postgres.h"

#include "utils/timestamp.h"

typedef struct Account
{
	int64		account_id;
	bool		postpaid;
	char		currency[4];
	int64		credit_limit;
	bool		auto_topup_enabled;
	int64		auto_topup_threshold;
	int64		auto_topup_amount;
	bool		overdue;		/* accounts.overdue_since is set (mark_overdue) */
	TimestampTz overdue_since;	/* when overdue */
} Account;

/*
 * Loads an account; ERROR PB404 when unknown, or disabled and active_only.
 * Requests need an active account; money movements of the cold paths
 * (invoices of a disabled account, for one) do not.
 */
extern void account_load(int64 account_id, Account *acct, bool active_only);

/*
 * The price book of the account at "at" (docs/pricing.md, "Price books and
 * discounts"): its latest assignment on or before then (billing._book_at),
 * palloc'd, or NULL for the list. From the account cache, which keeps the
 * span the answer holds for; inside SPI.
 */
extern char *account_price_book(int64 account_id, TimestampTz at);

/*
 * Refuses (PB409 "account N is postpaid") to credit a postpaid account with
 * a payment or a grant; detail and hint (NULL: none) say what the caller's
 * payment is for instead. SQL calls it as billing._require_prepaid.
 */
extern void account_require_prepaid(const Account *acct, const char *detail, const char *hint);

/*
 * Refuses (PB402 "payment overdue") a new request of an overdue account:
 * begin_request and charge call it before any other PB402. The flag is the
 * cached row's; only the refusal queries, for its detail.
 */
extern void account_require_not_overdue(const Account *acct);

/*
 * Whether the account has spend limits, or balance alerts: only accounts
 * that have them pay for them. Call under the account's gate. An Account
 * loaded before the gate does not carry them, because it may predate a
 * set_spend_limit or set_balance_alerts that committed while this
 * transaction waited: those change them under the exclusive gate, and
 * taking the gate takes in their invalidations (slices_gate_lock), so that the
 * cache answers for every change committed before it. A lookup in the
 * account cache: no query unless the cache was dropped.
 */
extern bool account_has_limits(int64 account_id);
extern bool account_has_alerts(int64 account_id);

/*
 * Whether billing's tables are distributed by Citus (billing.citus_setup()
 * ran): statements that Citus would not route to one shard take another
 * form there. Known per backend, with the account cache.
 */
extern bool accounts_distributed(void);

/*
 * Refuses (22023) an entry that ledger_post() does not write: a kind not in
 * the list of kinds.c, or a zero amount.
 */
extern void ledger_check_entry(const char *kind, int64 amount);

/*
 * Appends a ledger entry; amount must be non-zero. request_id, topup_id and
 * invoice_id are 0 when not applicable, key and reference may be NULL.
 * Returns the entry id. Does not touch the available amount.
 */
extern int64 ledger_post(int64 account_id, const char *kind, int64 amount, bool postpaid,
						 int64 request_id, int64 topup_id, int64 invoice_id,
						 const char *key, const char *reference);

/* ledger_post() of an entry that names a grant (grant_id not 0): a void's reversal */
extern int64 ledger_post_grant(int64 account_id, const char *kind, int64 amount, bool postpaid,
							   int64 request_id, int64 topup_id, int64 invoice_id, int64 grant_id,
							   const char *key, const char *reference);

/*
 * ledger_post() of an entry of a request without a key, topup or invoice,
 * written without the executor while direct_open() holds (direct.h).
 */
extern int64 ledger_post_direct(int64 account_id, const char *kind, int64 amount, bool postpaid,
								int64 request_id);

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
 * Balance alerts (alerts.c): after the available amount moved by delta
 * (non-zero) to available, fires the alerts it crossed downwards (debits)
 * or re-arms those it is at or above again (credits). Only for accounts
 * with alerts (account_has_alerts): slices.c calls it.
 */
extern void alerts_after_change(const Account *acct, int64 delta, int64 available);

/*
 * Moves the prepaid credit an account keeps for its invoices
 * (accounts.prepaid_credit_micros) by delta; the money itself stays in the
 * ledger. With if_postpaid, only while the account is postpaid. The one
 * writer of the column: SQL reaches it through billing._keep_credit.
 */
extern void ledger_keep_credit(int64 account_id, int64 delta, bool if_postpaid);

#endif
