//! What the operator granted one plugin, parsed once at load.

use std::collections::BTreeMap;

use crate::{Error, Quota, Result};

/// One bucket a plugin may open, with its quotas.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketGrant {
    /// Bucket name, as the guest passes it to `open`.
    pub name: String,
    /// Most keys the bucket may hold; unlimited if `None`.
    pub max_keys: Option<u64>,
    /// Most bytes (keys and values) the bucket may hold; unlimited if `None`.
    pub max_bytes: Option<u64>,
}

impl BucketGrant {
    /// A grant of `name` without quotas.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            max_keys: None,
            max_bytes: None,
        }
    }

    /// Limit the number of keys.
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: u64) -> Self {
        self.max_keys = Some(max_keys);
        self
    }

    /// Limit the bytes of keys and values.
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// The grant's quotas.
    pub fn quota(&self) -> Quota {
        Quota {
            max_keys: self.max_keys,
            max_bytes: self.max_bytes,
        }
    }
}

/// The buckets one plugin may open. Deny by default: an empty policy
/// (also [`StoragePolicy::default`]) opens nothing.
///
/// Bucket names are global to the database: two plugins granted the same
/// name share the bucket, which is how the operator lets plugins share data.
/// Quotas apply to the whole bucket, whichever plugin writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoragePolicy {
    buckets: BTreeMap<String, BucketGrant>,
}

impl StoragePolicy {
    /// A policy granting `grants`. If a name is granted twice, the later
    /// grant replaces the earlier one.
    pub fn new(grants: Vec<BucketGrant>) -> Self {
        Self {
            buckets: grants.into_iter().map(|g| (g.name.clone(), g)).collect(),
        }
    }

    /// The grant of `bucket`, if any.
    pub fn grant(&self, bucket: &str) -> Option<&BucketGrant> {
        self.buckets.get(bucket)
    }

    /// The granted buckets, by name.
    pub fn grants(&self) -> impl Iterator<Item = &BucketGrant> {
        self.buckets.values()
    }

    /// The quota of `bucket` if `plugin` may open it, otherwise
    /// [`Error::AccessDenied`] naming the bucket and the grant that would allow it.
    pub fn authorize(&self, plugin: &str, bucket: &str) -> Result<Quota> {
        self.grant(bucket)
            .map(BucketGrant::quota)
            .ok_or_else(|| Error::AccessDenied {
                plugin: plugin.to_string(),
                bucket: bucket.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_policy_denies_everything() {
        let policy = StoragePolicy::default();
        assert!(matches!(
            policy.authorize("p", ""),
            Err(Error::AccessDenied { .. })
        ));
        assert!(policy.authorize("p", "notes").is_err());
    }

    #[test]
    fn grants_carry_quotas() {
        let policy = StoragePolicy::new(vec![
            BucketGrant::new("notes").with_max_keys(3),
            BucketGrant::new("cache").with_max_bytes(10),
            BucketGrant::new("cache").with_max_bytes(20),
        ]);
        assert_eq!(
            policy.authorize("p", "notes").unwrap(),
            Quota {
                max_keys: Some(3),
                max_bytes: None
            }
        );
        // The later grant of a name wins.
        assert_eq!(policy.authorize("p", "cache").unwrap().max_bytes, Some(20));
        assert_eq!(policy.grants().count(), 2);
        // Names are exact: no prefixes, no case folding.
        assert!(policy.authorize("p", "Notes").is_err());
        assert!(policy.authorize("p", "notes/sub").is_err());
    }

    #[test]
    fn denial_names_bucket_and_fix() {
        let err = StoragePolicy::default()
            .authorize("tutor", "secrets")
            .unwrap_err()
            .to_string();
        assert!(err.contains("plugin `tutor`"), "{err}");
        assert!(err.contains("bucket `secrets`"), "{err}");
        assert!(
            err.contains("storage = [\"secrets\"] under [plugin.grants]"),
            "{err}"
        );
    }
}
