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

	const char *name;
	const char *end;
	Oid			logical;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "billing._cache_changed() must be called as a trigger");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));

	/*
	 * On Citus the trigger fires on a shard, billing.<table>_<shard id>,
	 * while the caches watch the table: invalidate that too.
	 */
	name = RelationGetRelationName(td->tg_relation);
	end = strrchr(name, '_');
	if (end != NULL && end[1] != '\0' && strspn(end + 1, "0123456789") == strlen(end + 1))
	{
		logical = cache_relid(pnstrdup(name, end - name));
		if (OidIsValid(logical))
			CacheInvalidateRelcacheByRelid(logical);
	}
	return PointerGetDatum(NULL);
}
