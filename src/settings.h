/*
 * Defining billing's settings. Each module defines its own in its *_init()
 * (called by _PG_init) through these helpers, so that every setting is
 * alike: superuser-settable (PGC_SUSET), and checked when set, by its range
 * or by a check hook, never later by the code that reads it.
 */
#ifndef BILLING_SETTINGS_H
#define BILLING_SETTINGS_H

#include "postgres.h"

#include "utils/guc.h"

/* An integer setting from min to max; flags as DefineCustomIntVariable's (units). */
extern void settings_define_int(const char *name, const char *short_desc, const char *long_desc,
								int *var, int boot, int min, int max, int flags);
/* A string setting that check refuses when it is not valid. */
extern void settings_define_string(const char *name, const char *short_desc,
								   const char *long_desc, char **var, const char *boot,
								   GucStringCheckHook check);

#endif
