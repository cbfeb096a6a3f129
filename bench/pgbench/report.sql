-- (5): billing.usage() of account :acct by day and model over plain.report_window
SELECT count(*) FROM plain.report_window w, billing.usage(:acct, w.from_ts, w.to_ts, '{day,model}');
