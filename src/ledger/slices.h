/*
 * The available amount of an account, kept in slices (slices.c): every
 * operation on it, its gates and its settings. Slices call no other file of
 * the ledger but accounts.c and alerts.c; the ledger, requests, top-ups and
 * corrections call them.
 */
#ifndef BILLING_SLICES_H
#define BILLING_SLICES_H

#include "postgres.h"

#include "storage/lockdefs.h"
#include "utils/timestamp.h"

#include "ledger/ledger.h"

/* Settings of the slices (slices_init, called by _PG_init). */
extern char *billing_low_balance_floor_micros;	/* micros, see money_setting() */
extern int	billing_low_balance_factor;
extern int	billing_low_balance_window;		/* seconds */
extern int	billing_balance_slices;
extern void slices_init(void);

/*
 * Admission: takes amount (>= 0) out of the available amount, or raises
 * PB402 when it is not covered. Concurrent callers on one account usually
 * take from the fast budgets of different slices (the fast path); when no
 * budget covers the amount, every slice is locked and the exact total
 * decides (per-request validation), then the slices are laid out again
 * (slices.c): a new budget above the low-balance threshold, none below it.
 */
extern void available_take(const Account *acct, int64 amount);
/* The exact path alone. */
extern void available_take_exact(const Account *acct, int64 amount);

/*
 * The fast path without the executor, while direct_open() (direct.h) holds:
 * takes amount (> 0) out of an unlocked slice whose fast budget covers it,
 * home slice first, as the SPI fast path does, and fires the alerts it
 * crosses. A slice is locked only once its budget was seen to cover amount,
 * so a failed attempt leaves no lock behind and needs no subtransaction.
 * False, with nothing taken, when no unlocked slice covers amount: the
 * caller then takes the SPI path (available_take), which waits for the home
 * slice or goes exact.
 */
extern bool available_take_direct(const Account *acct, int64 amount);

/*
 * Moves delta into (> 0) or out of (< 0) the available amount without a
 * coverage check: releases, refunds, credits, and the overrun of an
 * effective cost past its estimate, which may leave the account below zero.
 */
extern void available_adjust(const Account *acct, int64 delta);

/*
 * Cold paths (funds, top-ups, invoices, credit limits): moves delta into or
 * out of the available amount with every slice locked, and lays the result
 * out as an exact validation would.
 */
extern void available_rebalance(const Account *acct, int64 delta);

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
extern int64 available_fast_budget(int64 available, int64 threshold, int64 holds);

/* Exact available amount as this transaction sees it (sum of slices). */
extern int64 available_total(int64 account_id);

/*
 * Low-balance threshold of the account right now (README.md, Admission): the
 * larger of the floor and factor x recent spend, saturated at PG_INT64_MAX
 * (never an error).
 */
extern int64 available_threshold(int64 account_id);

/*
 * The gates (heavyweight locks held to commit) of an account's slices and of
 * a spend limit's slices (limits.c, which keeps slices of its own in the
 * same discipline): the fast path holds one in share mode, the exact path in
 * exclusive mode. A new hold of an account's gate takes in the invalidations
 * that transactions which held it before have sent (account_has_limits).
 */
#define GATE_ACCOUNT 0xB111
#define GATE_LIMIT 0xB112
extern void slices_gate_lock(int64 key, uint16 kind, LOCKMODE mode);
/* the share mode without waiting: false when an exact path holds or waits */
extern bool slices_gate_try_share(int64 key, uint16 kind);
/* gives back the share a failed fast path took (only that one acquisition) */
extern void slices_gate_release_share(int64 key, uint16 kind);

/* The slice this backend tries first, so that backends spread over slices. */
extern int	slices_home(void);

/*
 * The one layout of a set of slices (an account's, or a spend limit's in
 * limits.c) after an exact pass, with every slice locked: of rest, budget is
 * fast budget, spread evenly over as many slices as hold one request of the
 * size that came (all of them for 0), so that concurrent requests like it
 * take different slices; slice 0, where a debt must be, keeps the rest.
 * SLICES_LAYOUT_SET is the SET clause that writes it: $2 is slice 0's
 * amount, $3 each other budgeted slice's, $4 how many are budgeted.
 */
typedef struct SliceLayout
{
	int64		home;
	int64		each;
	int64		budgeted;
} SliceLayout;

extern SliceLayout slices_layout(int64 rest, int64 budget, int nslices, int64 request);

#define SLICES_LAYOUT_SET \
	" available_micros = CASE WHEN slice = 0 THEN $2 WHEN slice < $4 THEN $3 ELSE 0 END," \
	" fast_micros = CASE WHEN slice < $4 THEN $3 ELSE 0 END"

/*
 * slices_try_fast() of a take from a spend limit's slices without the
 * executor, while direct_open() holds: takes amount (> 0) from an unlocked
 * slice of limit_id whose budget covers it and whose period ends after now,
 * under the limit's gate, as available_take_direct() does. False, with
 * nothing taken, when none could: the caller takes the SPI path.
 */
extern bool slices_take_limit_direct(int64 account_id, int64 limit_id, int64 amount,
									 TimestampTz now);

/*
 * A fast-path take under gate key of kind: attempt(arg, false) takes from
 * any unlocked slice that covers it, attempt(arg, true) waits for the home
 * slice. Each runs in a subtransaction of its own under the share gate, so
 * that a failed one leaves no row lock behind (a waiter then holds no slice
 * anyone could wait for). True when one took; the gate is then held to
 * commit. False, with nothing kept, when an exact path holds the gate or
 * both failed: the caller goes exact.
 */
extern bool slices_try_fast(int64 key, uint16 kind, bool (*attempt) (void *arg, bool wait_home),
							void *arg);

#endif
