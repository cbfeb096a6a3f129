/* Defining billing's settings (settings.h). */
#include "postgres.h"

#include "settings.h"

void
settings_define_int(const char *name, const char *short_desc, const char *long_desc,
					int *var, int boot, int min, int max, int flags)
{
	DefineCustomIntVariable(name, short_desc, long_desc, var, boot, min, max,
							PGC_SUSET, flags, NULL, NULL, NULL);
}

void
settings_define_string(const char *name, const char *short_desc, const char *long_desc,
					   char **var, const char *boot, GucStringCheckHook check)
{
	DefineCustomStringVariable(name, short_desc, long_desc, var, boot,
							   PGC_SUSET, 0, check, NULL, NULL);
}
