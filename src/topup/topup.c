/* Auto top-up: placeholder until the top-up work lands (see topup.h). */
#include "postgres.h"

#include "topup/topup.h"

void
topup_after_debit(const Account *acct)
{
	if (!acct->auto_topup_enabled)
		return;
}
