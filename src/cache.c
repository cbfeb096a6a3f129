/*
 * Backend-local caches of rarely changing rows (accounts, price routes).
 *
 * A cache registers a relcache callback and drops itself when one of its
 * tables is invalidated. Every write to those tables sends that
 * invalidation to all backends at commit, from the statement trigger
 * billing._cache_changed(); a backend takes it in at its next transaction
 * start at the latest, so a transaction sees every change committed before
 * it began, as if it had read the row then.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "cache.h"

Oid
cache_relid(const char *relname)
{
	return get_relname_relid(relname, get_namespace_oid("billing", false));
}

PG_FUNCTION_INFO_V1(billing_cache_changed);
Datum
billing_cache_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "billing._cache_changed() must be called as a trigger");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));
	return PointerGetDatum(NULL);
}
