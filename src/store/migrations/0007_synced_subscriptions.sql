-- Issue 15: a steady day's reads scale with what changed.
-- At the end of each successful `sync`, one row per subscription on the current bills: the
-- digest of its lines as that sync applied them. The next sync compares them with the current
-- bills' to know which subscriptions changed (new, restated or gone), and reads the contract
-- services and unit periods of those subscriptions' contracts only (`autotask::pull`, Focus).
-- Replaced whole by each successful sync; empty (never synced) means read everything.

CREATE TABLE synced_subscriptions (
    subscription_id TEXT PRIMARY KEY,
    -- "sha256:…" over the subscription's current lines (`store::subscription_digests`).
    digest          TEXT NOT NULL
) STRICT;
