/* billing: helpers shared by the modules (each module defines its own settings). */
#ifndef BILLING_H
#define BILLING_H

#include "postgres.h"

#include "fmgr.h"

/* Refuses (22023) a NULL in any of the first nargs arguments. */
extern void require_args(FunctionCallInfo fcinfo, int nargs);

#endif
