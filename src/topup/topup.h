/* Auto top-up (docs/topup.md). */
#ifndef BILLING_TOPUP_H
#define BILLING_TOPUP_H

#include "ledger/ledger.h"

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
 * reverse_topup's disable_auto_topup: turns auto top-up off as
 * configure_auto_topup(..., false) does (a pending top-up is cancelled) and,
 * when it was on, says so (auto_topup_disabled, reason "reversal", naming
 * the reversed topup_id). Inside an SPI connection, the account row locked.
 */
extern void topup_disable_for_reversal(int64 account_id, int64 topup_id);

#endif
