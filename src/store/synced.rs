//! What the last successful `sync` applied, per subscription: the digests its next run
//! compares with the current bills' to know which subscriptions changed since (issue 15).

use std::collections::BTreeMap;

use rusqlite::params;
use sha2::{Digest, Sha256};

use super::bills::{hash_field, hex, line_digest};
use super::{Store, StoreError};
use cmat_engine::billing::BillLine;

/// "sha256:…" per subscription id over its lines in `lines` (the store's current bills): the
/// Billing Date, organization and content of each line, in no particular order (row numbers
/// and line order do not count). Changes exactly when what the rules see of that subscription
/// changes: a restated line, a new Billing Date, another organization.
pub fn subscription_digests(lines: &[BillLine]) -> BTreeMap<String, String> {
    let mut parts: BTreeMap<&str, Vec<[u8; 32]>> = BTreeMap::new();
    for line in lines {
        let mut hasher = Sha256::new();
        hash_field(&mut hasher, line.billing_date.to_string().as_bytes());
        hash_field(&mut hasher, line.organization_name.as_bytes());
        hasher.update(line_digest(line).0);
        parts.entry(line.subscription_id.as_str()).or_default().push(hasher.finalize().into());
    }
    parts
        .into_iter()
        .map(|(subscription, mut digests)| {
            digests.sort_unstable();
            let mut hasher = Sha256::new();
            hasher.update(b"cmat-subscription-v1");
            hasher.update((digests.len() as u64).to_le_bytes());
            for digest in &digests {
                hasher.update(digest);
            }
            (subscription.to_string(), format!("sha256:{}", hex(&hasher.finalize())))
        })
        .collect()
}

impl Store {
    /// The per-subscription digests the last successful sync stored; empty when none did.
    pub fn synced_subscriptions(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let read = || -> rusqlite::Result<BTreeMap<String, String>> {
            let mut statement =
                self.conn.prepare("SELECT subscription_id, digest FROM synced_subscriptions")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        };
        read().map_err(|e| self.wrap(e))
    }

    /// Replaces the stored per-subscription digests (at the end of a successful sync).
    pub fn replace_synced_subscriptions(
        &mut self,
        digests: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            tx.execute("DELETE FROM synced_subscriptions", [])?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO synced_subscriptions (subscription_id, digest) VALUES (?1, ?2)",
                )?;
                for (subscription, digest) in digests {
                    insert.execute(params![subscription, digest])?;
                }
            }
            tx.commit()
        })();
        result.map_err(|e| self.wrap(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmat_engine::testing::line;

    #[test]
    fn a_digest_moves_with_its_own_lines_only_and_not_with_their_order() {
        let at = |subscription: &str, item: &str, quantity: &str| {
            line("2026-11-01", "ACME", "Microsoft", subscription, item, quantity, "10")
        };
        let a = at("sub-a", "SKU1", "5");
        let b = at("sub-b", "SKU2", "3");
        let b2 = at("sub-b", "SKU3", "1");
        let before = subscription_digests(&[a.clone(), b.clone(), b2.clone()]);
        assert_eq!(before, subscription_digests(&[b2.clone(), a.clone(), b.clone()]));
        let mut moved = b.clone();
        moved.quantity += rust_decimal::Decimal::ONE;
        let after = subscription_digests(&[a.clone(), moved, b2]);
        assert_eq!(after["sub-a"], before["sub-a"]);
        assert_ne!(after["sub-b"], before["sub-b"]);
        let mut later = a.clone();
        later.billing_date = later.billing_date.succ_opt().unwrap();
        assert_ne!(subscription_digests(&[later])["sub-a"], before["sub-a"]);
    }

    #[test]
    fn the_stored_digests_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            Store::open(&dir.path().join("state.db"), crate::store::Access::Write).unwrap();
        assert!(store.synced_subscriptions().unwrap().is_empty());
        let first = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".into(), "2".into())]);
        store.replace_synced_subscriptions(&first).unwrap();
        assert_eq!(store.synced_subscriptions().unwrap(), first);
        let second = BTreeMap::from([("c".to_string(), "3".to_string())]);
        store.replace_synced_subscriptions(&second).unwrap();
        assert_eq!(store.synced_subscriptions().unwrap(), second);
    }
}
