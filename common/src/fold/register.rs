//! Last-writer-wins registers keyed by entity version.
//!
//! Each field of the fold state remembers the stamp of the event that set it.
//! A write applies only when its stamp is greater, so applying the same set of
//! events in any order, with duplicates, leaves the same value (the merge is
//! commutative, associative and idempotent).

use serde::{Deserialize, Serialize};

/// Orders writes to one field: the entity version first, then a hash of the
/// event id. The hash only breaks ties between two different events that
/// claim the same version (a producer bug); it makes the winner the same on
/// every projector instance and in every replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    #[serde(rename = "v")]
    pub version: u64,
    #[serde(rename = "t")]
    pub tiebreak: u64,
}

impl Stamp {
    pub fn new(version: u64, event_id: &str) -> Self {
        Self {
            version,
            tiebreak: stable_hash(event_id),
        }
    }
}

/// FNV-1a (64-bit). The hash is persisted in fold state, so it must never
/// change between builds or platforms, which rules out `std`'s hashers.
fn stable_hash(text: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    text.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// The outcome of a register write. The fold aggregates these into its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// The write carried a newer stamp and replaced the value.
    Applied,
    /// The register already held a newer stamp, or this exact write.
    Stale,
    /// Same entity version as the current value but from another event: the
    /// tie was broken by the event id hash. Counted as a producer bug.
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register<T> {
    #[serde(rename = "s")]
    pub stamp: Stamp,
    #[serde(rename = "x")]
    pub value: T,
}

/// Writes `value` into `slot` if `stamp` is newer than what the slot holds.
pub fn merge<T>(slot: &mut Option<Register<T>>, stamp: Stamp, value: T) -> Merge {
    let outcome = match slot {
        None => Merge::Applied,
        Some(current) if current.stamp == stamp => Merge::Stale,
        Some(current) if current.stamp.version == stamp.version => Merge::Conflict,
        Some(current) if current.stamp > stamp => Merge::Stale,
        Some(_) => Merge::Applied,
    };
    let wins = match slot {
        None => true,
        Some(current) => stamp > current.stamp,
    };
    if wins {
        *slot = Some(Register { stamp, value });
    }
    outcome
}

/// Reads the value of a register, if it was ever written.
pub fn value<T>(slot: &Option<Register<T>>) -> Option<&T> {
    slot.as_ref().map(|register| &register.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_version_replaces_older() {
        let mut slot = None;
        assert_eq!(merge(&mut slot, Stamp::new(1, "a"), "one"), Merge::Applied);
        assert_eq!(merge(&mut slot, Stamp::new(2, "b"), "two"), Merge::Applied);
        assert_eq!(value(&slot), Some(&"two"));
    }

    #[test]
    fn older_version_is_stale() {
        let mut slot = None;
        merge(&mut slot, Stamp::new(5, "b"), "five");
        assert_eq!(merge(&mut slot, Stamp::new(4, "a"), "four"), Merge::Stale);
        assert_eq!(value(&slot), Some(&"five"));
    }

    #[test]
    fn duplicate_write_is_stale() {
        let mut slot = None;
        merge(&mut slot, Stamp::new(3, "a"), "x");
        assert_eq!(merge(&mut slot, Stamp::new(3, "a"), "x"), Merge::Stale);
    }

    #[test]
    fn same_version_conflict_resolves_by_event_id_in_any_order() {
        let first = Stamp::new(7, "event-a");
        let second = Stamp::new(7, "event-b");

        let mut forward = None;
        merge(&mut forward, first, "a");
        assert_eq!(merge(&mut forward, second, "b"), Merge::Conflict);

        let mut backward = None;
        merge(&mut backward, second, "b");
        assert_eq!(merge(&mut backward, first, "a"), Merge::Conflict);

        assert_eq!(forward, backward);
    }

    #[test]
    fn stable_hash_is_fixed() {
        // Persisted in Redis: a change here would reorder ties after an upgrade.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
