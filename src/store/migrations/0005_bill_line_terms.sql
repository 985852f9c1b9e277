-- Issue #16: the terms Cloudmore's General Billing Report carries with every line, kept so that
-- rules can scope by term and a currency that is not the company's can be warned about.
-- Empty text when the export (or an older import) did not carry them.
-- (0004 is reserved for another change; migrations are applied in the order of MIGRATIONS.)

ALTER TABLE bill_lines ADD COLUMN payment_frequency TEXT NOT NULL DEFAULT '';
ALTER TABLE bill_lines ADD COLUMN organization_currency_code TEXT NOT NULL DEFAULT '';
