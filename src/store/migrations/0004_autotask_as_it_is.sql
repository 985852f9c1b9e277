-- Autotask as it really is (issue 11).
-- A contract service's price is the contract's adjusted price (`internalCurrencyAdjustedPrice`),
-- not the Service's catalogue `unitPrice`, which 0002 stored: the old column is not the new
-- value, so it is left behind and the adjusted price is unknown until the next pull.
-- Costs may be hidden from the API user: a charge's cost may be unknown (NULL), never 0.
-- The tenant's picklists are kept beside the records they number.

CREATE TABLE contract_services_v2 (
    id                  INTEGER PRIMARY KEY,
    contract_id         INTEGER NOT NULL,
    service_id          INTEGER NOT NULL,
    -- NULL: Autotask sent no adjusted price (or it was never read).
    adjusted_price      TEXT,
    unit_cost           TEXT,
    -- 1 when the contract bills in another currency than the tenant's.
    foreign_currency    INTEGER NOT NULL,
    invoice_description TEXT
) STRICT;
INSERT INTO contract_services_v2 (id, contract_id, service_id, adjusted_price, unit_cost,
                                  foreign_currency, invoice_description)
    SELECT id, contract_id, service_id, NULL, unit_cost, 0, invoice_description
    FROM contract_services;
DROP TABLE contract_services;
ALTER TABLE contract_services_v2 RENAME TO contract_services;

CREATE TABLE charges_v2 (
    id              INTEGER PRIMARY KEY,
    contract_id     INTEGER NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT,
    date_purchased  TEXT NOT NULL,
    charge_type     INTEGER NOT NULL,
    unit_quantity   TEXT NOT NULL,
    unit_price      TEXT NOT NULL,
    -- NULL: the API user cannot see costs.
    unit_cost       TEXT,
    billing_code_id INTEGER,
    is_billed       INTEGER NOT NULL
) STRICT;
INSERT INTO charges_v2 SELECT * FROM charges;
DROP TABLE charges;
ALTER TABLE charges_v2 RENAME TO charges;

CREATE TABLE picklists (
    entity    TEXT NOT NULL,
    field     TEXT NOT NULL,
    value     INTEGER NOT NULL,
    label     TEXT NOT NULL,
    is_active INTEGER NOT NULL,
    -- The order Autotask lists them in.
    position  INTEGER NOT NULL,
    PRIMARY KEY (entity, field, value)
) STRICT;

-- With the multi-currency module, a company bills in its own currency.
ALTER TABLE companies ADD COLUMN currency_id INTEGER;
CREATE TABLE currencies (
    id          INTEGER PRIMARY KEY,
    -- The ISO code, as Autotask names the currency.
    name        TEXT NOT NULL,
    is_internal INTEGER NOT NULL
) STRICT;

-- The next pull reads everything in full, filling the adjusted prices and the picklists.
DELETE FROM meta WHERE key = 'snapshot.pull_marks';
