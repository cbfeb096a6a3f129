/* Invoicing's settings; its logic is SQL (invoice.sql, docs/invoices.md). */
#ifndef BILLING_INVOICE_H
#define BILLING_INVOICE_H

extern char *billing_timezone;
extern int	billing_invoice_due_days;
extern char *billing_credit_limit_floor_micros;	/* micros, see money_setting() */
extern char *billing_credit_limit_cap_micros;
extern void invoice_init(void);

#endif
