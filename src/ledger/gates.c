/*
 * The gates of the slices (slices.h): a heavyweight lock per account, or per
 * spend limit, held to commit, in share mode by whoever touches a slice and
 * in exclusive mode by an exact path; and the fast path's attempts, each in
 * a subtransaction of its own under the share gate. Called by slices.c and
 * limits.c; calls nothing of the ledger.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/inval.h"
#include "utils/resowner.h"

#include "ledger/ledger.h"
#include "ledger/slices.h"

/*
 * The advisory lock tag of a gate: an account's (GATE_ACCOUNT) or a spend
 * limit's (GATE_LIMIT, limits.c); field 4 keeps them apart from each other
 * and from pg_advisory_lock()'s keys (1 and 2).
 */
static void
gate_tag(LOCKTAG *tag, int64 key, uint16 kind)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) ((uint64) key >> 32),
						 (uint32) key, kind);
}

/*
 * Takes the gate in mode, held to commit; false when dont_wait and busy.
 * Whoever held an account's gate before has sent its invalidations (they go
 * out before its locks are released): taking them in now refreshes the
 * account cache's has_limits and has_alerts (account_has_limits), which
 * set_spend_limit and set_balance_alerts change under the exclusive gate.
 * Cheap when nothing was sent.
 */
static bool
gate_take(int64 key, uint16 kind, LOCKMODE mode, bool dont_wait)
{
	LOCKTAG		tag;
	LockAcquireResult res;

	gate_tag(&tag, key, kind);
	res = LockAcquire(&tag, mode, false, dont_wait);
	if (res == LOCKACQUIRE_NOT_AVAIL)
		return false;
	if (res == LOCKACQUIRE_OK && kind == GATE_ACCOUNT)
		AcceptInvalidationMessages();
	return true;
}

void
slices_gate_lock(int64 key, uint16 kind, LOCKMODE mode)
{
	gate_take(key, kind, mode, false);
}

bool
slices_gate_try_share(int64 key, uint16 kind)
{
	return gate_take(key, kind, ShareLock, true);
}

void
slices_gate_release_share(int64 key, uint16 kind)
{
	LOCKTAG		tag;

	gate_tag(&tag, key, kind);
	LockRelease(&tag, ShareLock, false);
}

/*
 * Runs one attempt in a subtransaction; keeps what it did only on success.
 * An error inside (a cancel or timeout while it waits for its slice, a
 * deadlock, a read-only transaction) rolls the subtransaction back before
 * it is re-thrown, as a PL/pgSQL exception block does: the caller's
 * statement then fails like any other, and its session goes on.
 */
static bool
attempt_in_subxact(bool (*attempt) (void *arg, bool wait_home), void *arg, bool wait_home)
{
	MemoryContext mcxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		taken = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(mcxt);
	PG_TRY();
	{
		taken = attempt(arg, wait_home);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(mcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(mcxt);
		CurrentResourceOwner = owner;
		ReThrowError(edata);
	}
	PG_END_TRY();
	if (taken)
		ReleaseCurrentSubTransaction();
	else
		RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(mcxt);
	CurrentResourceOwner = owner;
	return taken;
}

bool
slices_try_fast(int64 key, uint16 kind, bool (*attempt) (void *arg, bool wait_home), void *arg)
{
	if (!slices_gate_try_share(key, kind))
		return false;			/* an exact path runs or waits: queue behind it */
	if (attempt_in_subxact(attempt, arg, false) || attempt_in_subxact(attempt, arg, true))
		return true;
	slices_gate_release_share(key, kind);
	return false;
}
