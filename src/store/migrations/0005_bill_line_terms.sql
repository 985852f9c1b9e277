-- Issue #16: Cloudmore's bills as they really come.
--
-- 1. The terms Cloudmore's General Billing Report carries with every line, kept so that rules
--    can scope by term and a currency that is not the company's can be warned about. Empty text
--    when the export (or an older import) did not carry them.
-- 2. A bill is one organization's lines of one Billing Date, the organization known by its
--    Customer Number when the lines carry one (names change, and two organizations may share
--    one), else by its name: `organization_key` is "number:…" or "name:…", and it, not the
--    name, is unique with the date. SQLite cannot drop a UNIQUE constraint in place, so both
--    tables are rebuilt. An older bill is keyed by its lines' Customer Number; when an earlier
--    rename left two bills of one number on one date, the later import is kept (the earlier
--    one was counted twice).
-- (0004 is reserved for another change; migrations are applied in the order of MIGRATIONS.)

CREATE TABLE bills_new (
    id                INTEGER PRIMARY KEY,
    organization_key  TEXT NOT NULL,
    organization_name TEXT NOT NULL,
    billing_date      TEXT NOT NULL,
    content_sha256    TEXT NOT NULL,
    revision          INTEGER NOT NULL,
    line_count        INTEGER NOT NULL,
    imported_at       TEXT NOT NULL,
    source_file       TEXT NOT NULL,
    UNIQUE (organization_key, billing_date)
) STRICT;

INSERT OR REPLACE INTO bills_new (id, organization_key, organization_name, billing_date,
                                  content_sha256, revision, line_count, imported_at, source_file)
SELECT b.id,
       COALESCE((SELECT 'number:' || l.customer_number FROM bill_lines l
                 WHERE l.bill_id = b.id AND l.customer_number != '' LIMIT 1),
                'name:' || b.organization_name),
       b.organization_name, b.billing_date, b.content_sha256, b.revision, b.line_count,
       b.imported_at, b.source_file
FROM bills b ORDER BY b.id;

CREATE TABLE bill_lines_new (
    id                         INTEGER PRIMARY KEY,
    bill_id                    INTEGER NOT NULL REFERENCES bills_new (id) ON DELETE CASCADE,
    source_row                 INTEGER NOT NULL,
    service_name               TEXT NOT NULL,
    broker_name                TEXT NOT NULL,
    customer_number            TEXT NOT NULL,
    product_name               TEXT NOT NULL,
    item_code                  TEXT NOT NULL,
    quantity                   TEXT NOT NULL,
    unit_cost_price            TEXT NOT NULL,
    unit_sales_price           TEXT NOT NULL,
    total_cost                 TEXT NOT NULL,
    total_sales                TEXT NOT NULL,
    currency_code              TEXT NOT NULL,
    product_id                 TEXT NOT NULL,
    subscription_id            TEXT NOT NULL,
    subscription_name          TEXT NOT NULL,
    autotask_company_id        INTEGER,
    payment_frequency          TEXT NOT NULL DEFAULT '',
    organization_currency_code TEXT NOT NULL DEFAULT ''
) STRICT;

INSERT INTO bill_lines_new (id, bill_id, source_row, service_name, broker_name, customer_number,
    product_name, item_code, quantity, unit_cost_price, unit_sales_price, total_cost,
    total_sales, currency_code, product_id, subscription_id, subscription_name,
    autotask_company_id)
SELECT id, bill_id, source_row, service_name, broker_name, customer_number, product_name,
       item_code, quantity, unit_cost_price, unit_sales_price, total_cost, total_sales,
       currency_code, product_id, subscription_id, subscription_name, autotask_company_id
FROM bill_lines WHERE bill_id IN (SELECT id FROM bills_new);

DROP TABLE bill_lines;
DROP TABLE bills;
ALTER TABLE bills_new RENAME TO bills;
ALTER TABLE bill_lines_new RENAME TO bill_lines;
CREATE INDEX bill_lines_by_bill ON bill_lines (bill_id);
