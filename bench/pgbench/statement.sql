-- (5): billing.statement() of account :acct, its latest 100 entries
SELECT count(*) FROM plain.report_window w, billing.statement(:acct, w.page_from, 'infinity');
