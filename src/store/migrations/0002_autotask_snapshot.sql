-- What cmat last read from Autotask (`pull autotask`). Ids are Autotask's.
-- When it was read lives in meta ("snapshot.refreshed_at").

CREATE TABLE companies (
    id           INTEGER PRIMARY KEY,
    company_name TEXT NOT NULL,
    is_active    INTEGER NOT NULL
) STRICT;

CREATE TABLE contracts (
    id                         INTEGER PRIMARY KEY,
    company_id                 INTEGER NOT NULL,
    contract_name              TEXT NOT NULL,
    contract_type              INTEGER NOT NULL,
    status                     INTEGER NOT NULL,
    start_date                 TEXT NOT NULL,
    end_date                   TEXT NOT NULL,
    service_level_agreement_id INTEGER,
    contract_category          INTEGER,
    -- The "Subscription ID" user-defined field.
    subscription_id            TEXT
) STRICT;

CREATE INDEX contracts_by_subscription ON contracts (subscription_id);

CREATE TABLE services (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    sku             TEXT,
    billing_code_id INTEGER NOT NULL,
    period_type     INTEGER NOT NULL,
    unit_price      TEXT NOT NULL,
    unit_cost       TEXT,
    is_active       INTEGER NOT NULL
) STRICT;

CREATE TABLE contract_services (
    id                  INTEGER PRIMARY KEY,
    contract_id         INTEGER NOT NULL,
    service_id          INTEGER NOT NULL,
    unit_price          TEXT NOT NULL,
    unit_cost           TEXT,
    invoice_description TEXT
) STRICT;

CREATE TABLE contract_service_units (
    id                  INTEGER PRIMARY KEY,
    contract_id         INTEGER NOT NULL,
    contract_service_id INTEGER NOT NULL,
    service_id          INTEGER NOT NULL,
    start_date          TEXT NOT NULL,
    end_date            TEXT NOT NULL,
    units               INTEGER NOT NULL,
    price               TEXT,
    cost                TEXT
) STRICT;

CREATE TABLE charges (
    id              INTEGER PRIMARY KEY,
    contract_id     INTEGER NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT,
    date_purchased  TEXT NOT NULL,
    charge_type     INTEGER NOT NULL,
    unit_quantity   TEXT NOT NULL,
    unit_price      TEXT NOT NULL,
    unit_cost       TEXT NOT NULL,
    billing_code_id INTEGER,
    is_billed       INTEGER NOT NULL
) STRICT;

CREATE TABLE billing_codes (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    use_type  INTEGER NOT NULL,
    is_active INTEGER NOT NULL
) STRICT;
