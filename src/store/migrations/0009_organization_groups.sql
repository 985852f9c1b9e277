-- Issue #13: the rules scope by organization group. The General Billing Report lists an
-- organization's groups in "Organization Groups", separated by `;`; kept with every line,
-- empty text when the export (or an older import) did not carry them.

ALTER TABLE bill_lines ADD COLUMN organization_groups TEXT NOT NULL DEFAULT '';
