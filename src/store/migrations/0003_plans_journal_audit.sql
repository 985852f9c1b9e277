-- Saved plans, the write-ahead journal of Autotask writes, and the append-only audit trail.

CREATE TABLE plans (
    id         TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    -- The plan as JSON (format_version 1).
    body       TEXT NOT NULL
) STRICT;

-- One row per write cmat is about to send, recorded before it is sent, so a crash or timeout
-- leaves a trace that is looked up before anything is resent.
CREATE TABLE journal (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL,
    change_ref   TEXT NOT NULL,
    action       TEXT NOT NULL,
    entity       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_body TEXT NOT NULL,
    -- 'pending', 'done', 'failed' or 'unknown'.
    state        TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed', 'unknown')),
    autotask_id  INTEGER,
    message      TEXT,
    recorded_at  TEXT NOT NULL,
    resolved_at  TEXT
) STRICT;

CREATE INDEX journal_unresolved ON journal (state) WHERE state IN ('pending', 'unknown');

-- One row per field written (or not) to Autotask, in SPEC.md's column order.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    at          TEXT NOT NULL,
    action      TEXT NOT NULL,
    entity      TEXT NOT NULL,
    autotask_id INTEGER,
    key         TEXT NOT NULL,
    field       TEXT NOT NULL,
    old_value   TEXT,
    new_value   TEXT,
    rule        TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'failed', 'skipped')),
    http_status INTEGER,
    message     TEXT NOT NULL
) STRICT;

CREATE INDEX audit_by_run ON audit (run_id);

-- The trail is append-only: no code path updates or deletes it, and the database refuses to.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
