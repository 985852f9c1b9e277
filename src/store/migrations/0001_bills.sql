-- Imported Cloudmore bills. A bill is every line of one organization on one Billing Date;
-- a later export of the same key replaces its lines (a restatement) and bumps `revision`.
-- Money and quantities are TEXT decimal strings (rust_decimal), never REAL; dates are ISO TEXT;
-- timestamps RFC 3339 UTC.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE bills (
    id                INTEGER PRIMARY KEY,
    organization_name TEXT NOT NULL,
    billing_date      TEXT NOT NULL,
    -- "sha256:…" over the bill's lines, independent of their order and row numbers.
    content_sha256    TEXT NOT NULL,
    revision          INTEGER NOT NULL,
    line_count        INTEGER NOT NULL,
    imported_at       TEXT NOT NULL,
    source_file       TEXT NOT NULL,
    UNIQUE (organization_name, billing_date)
) STRICT;

-- The organization name and billing date of a line are its bill's; the file is the bill's
-- source_file (a restatement replaces every line, so they all share one source).
CREATE TABLE bill_lines (
    id                  INTEGER PRIMARY KEY,
    bill_id             INTEGER NOT NULL REFERENCES bills (id) ON DELETE CASCADE,
    source_row          INTEGER NOT NULL,
    service_name        TEXT NOT NULL,
    broker_name         TEXT NOT NULL,
    customer_number     TEXT NOT NULL,
    product_name        TEXT NOT NULL,
    item_code           TEXT NOT NULL,
    quantity            TEXT NOT NULL,
    unit_cost_price     TEXT NOT NULL,
    unit_sales_price    TEXT NOT NULL,
    total_cost          TEXT NOT NULL,
    total_sales         TEXT NOT NULL,
    currency_code       TEXT NOT NULL,
    product_id          TEXT NOT NULL,
    subscription_id     TEXT NOT NULL,
    subscription_name   TEXT NOT NULL,
    autotask_company_id INTEGER
) STRICT;

CREATE INDEX bill_lines_by_bill ON bill_lines (bill_id);
