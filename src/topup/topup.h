/* Auto top-up (docs/topup.md). */
#ifndef BILLING_TOPUP_H
#define BILLING_TOPUP_H

#include "ledger/ledger.h"
#include "utils/timestamp.h"

/* Settings of auto top-up (topup_init, called by _PG_init). */
extern int	billing_auto_topup_max_failures;
extern int	billing_auto_topup_max_per_day;
extern void topup_init(void);

/*
 * Called after a charge or hold took money from the available amount.
 * When auto top-up is on and the available amount is now below the
 * threshold, requests one top-up (never a second while one is pending) and
 * announces it with NOTIFY billing_topup, delivered at commit, and an
 * auto_topup_requested event in billing.events.
 */
extern void topup_after_debit(const Account *acct);

/*
 * The amount of a top-up requested at available (cap.c): amount, or with a
 * target (0: none) max(amount, target - available) rounded up to whole
 * units of unit micros; with a cap (0: none) cut to what this month of
 * billing.timezone leaves, rounded down, when that is at least amount
 * (*clamped). 0 when the cap refuses it: said with a WARNING and a LOG line,
 * and the first refusal of the month (capped_month, the account's last one,
 * NULL: none) writes an auto_topup_capped event. Inside an SPI connection,
 * under the account's top-up lock.
 */
extern int64 topup_amount(int64 account_id, int64 amount, int64 target, int64 cap, int64 available,
						  int64 unit, const Datum *capped_month, TimestampTz now, bool *clamped);

/*
 * Waits for the account's top-up lock (held to commit), under which top-ups
 * are requested: taken before the account row, as configure_auto_topup does.
 */
extern void topup_lock(int64 account_id);

/*
 * reverse_topup's disable_auto_topup: turns auto top-up off as
 * configure_auto_topup(..., false) does (a pending top-up is cancelled) and,
 * when it was on, says so (auto_topup_disabled, reason "reversal", naming
 * the reversed topup_id). Inside an SPI connection, under topup_lock().
 */
extern void topup_disable_for_reversal(int64 account_id, int64 topup_id);

#endif
