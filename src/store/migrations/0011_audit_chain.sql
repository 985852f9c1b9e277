-- Issue #29: the audit trail becomes a hash chain. Each row carries the digest of the row
-- before and its own (`audit.rs` says what is hashed); the step in Rust after this file chains
-- the rows an older cmat wrote, from the first, and puts the append-only trigger back.

ALTER TABLE audit ADD COLUMN prev_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN digest TEXT NOT NULL DEFAULT '';

-- Dropped only for the step in Rust, which recreates it in the same transaction.
DROP TRIGGER audit_no_update;
