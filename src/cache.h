/* Backend-local caches of rarely changing rows, dropped on writes. */
#ifndef BILLING_CACHE_H
#define BILLING_CACHE_H

#include "postgres.h"

/*
 * OID of billing.<relname>, looked up by name; a cache calls it when it is
 * (re)built, not per call.
 */
extern Oid	cache_relid(const char *relname);

#endif
