-- Issue #14: the billing review. Per bill, service and subscription, the sum of its lines'
-- Total Sales and Total Cost (TEXT decimals, summed exactly by cmat at import, never by
-- SQLite's float SUM): the review's trends over every imported period read these rows
-- instead of every line. A bill imported before this migration has none; the review sums its
-- lines then, and its next import writes them.
CREATE TABLE bill_totals (
    bill_id           INTEGER NOT NULL REFERENCES bills (id) ON DELETE CASCADE,
    service_name      TEXT NOT NULL,
    subscription_id   TEXT NOT NULL,
    subscription_name TEXT NOT NULL,
    total_sales       TEXT NOT NULL,
    total_cost        TEXT NOT NULL,
    PRIMARY KEY (bill_id, service_name, subscription_id)
) STRICT, WITHOUT ROWID;
