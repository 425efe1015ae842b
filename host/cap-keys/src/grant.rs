//! Which keys a plugin may name: its `keys = [...]` grant, parsed once at load.

use std::fmt;

/// One entry of a plugin's `keys` grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyGrant {
    /// `provider`: every key of that provider.
    Provider(String),
    /// `provider/name`: that one key.
    Key {
        /// The provider.
        provider: String,
        /// The key's name.
        name: String,
    },
}

impl KeyGrant {
    /// Parse one grant: `provider` or `provider/name`.
    pub fn parse(text: &str) -> Self {
        match text.split_once('/') {
            Some((provider, name)) => Self::Key {
                provider: provider.to_owned(),
                name: name.to_owned(),
            },
            None => Self::Provider(text.to_owned()),
        }
    }

    /// Whether this grant names the key `provider/name`.
    pub fn allows(&self, provider: &str, name: &str) -> bool {
        match self {
            Self::Provider(p) => p == provider,
            Self::Key {
                provider: p,
                name: n,
            } => p == provider && n == name,
        }
    }

    /// The provider this grant is about.
    pub fn provider(&self) -> &str {
        match self {
            Self::Provider(p) | Self::Key { provider: p, .. } => p,
        }
    }
}

impl fmt::Display for KeyGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Provider(p) => f.write_str(p),
            Self::Key { provider, name } => write!(f, "{provider}/{name}"),
        }
    }
}

/// A plugin's whole `keys` grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyGrants(Vec<KeyGrant>);

impl KeyGrants {
    /// Parse every entry of a `keys = [...]` grant.
    pub fn parse<S: AsRef<str>>(grants: &[S]) -> Self {
        Self(grants.iter().map(|g| KeyGrant::parse(g.as_ref())).collect())
    }

    /// Whether some entry names the key `provider/name`.
    pub fn allows(&self, provider: &str, name: &str) -> bool {
        self.0.iter().any(|g| g.allows(provider, name))
    }

    /// Whether the grant names no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries.
    pub fn iter(&self) -> impl Iterator<Item = &KeyGrant> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_and_key_grants() {
        let grants = KeyGrants::parse(&["openai", "anthropic/team"]);
        assert!(grants.allows("openai", "default"));
        assert!(grants.allows("openai", "other"));
        assert!(grants.allows("anthropic", "team"));
        assert!(!grants.allows("anthropic", "default"));
        assert!(!grants.allows("gemini", "default"));
        assert!(!KeyGrants::default().allows("openai", "default"));
        assert_eq!(
            KeyGrant::parse("anthropic/team").to_string(),
            "anthropic/team"
        );
    }
}
