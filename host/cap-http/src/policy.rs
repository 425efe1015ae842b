//! The outbound destinations the operator granted one plugin, parsed once at load.

use std::fmt;
use std::net::IpAddr;

use crate::{Error, Result};

/// A URL scheme a plugin may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP (only sensible for local and test servers).
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// 80 or 443.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// Parse `http` or `https` (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("http") {
            Some(Scheme::Http)
        } else if text.eq_ignore_ascii_case("https") {
            Some(Scheme::Https)
        } else {
            None
        }
    }
}

/// The host part of a granted destination: a name, `*.domain` or an
/// address literal (the one way to allow a loopback, private or link-local
/// destination). Parsed and matched as the key vault's bound origins are.
pub use convergio_cap_keys::OriginHost as HostPattern;

/// The port part of a granted destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortPattern {
    /// Exactly this port (the scheme's default when the grant names none).
    Exact(u16),
    /// Any port (`:*`).
    Any,
}

/// One granted destination: `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// Scheme.
    pub scheme: Scheme,
    /// Host name, wildcard or address.
    pub host: HostPattern,
    /// Port.
    pub port: PortPattern,
}

impl Destination {
    /// Parse a grant such as `https://api.openai.com`, `https://*.openai.azure.com`,
    /// `http://127.0.0.1:8080`, `http://[::1]:*`. A trailing `/` is accepted;
    /// paths, queries, user names and other schemes are not.
    pub fn parse(grant: &str) -> Result<Self> {
        let bad = |why: &str| Error::Grant {
            grant: grant.to_owned(),
            message: format!(
                "{why}; write it as scheme://host[:port], e.g. \"https://api.openai.com\", \"https://*.example.com\" or \"http://127.0.0.1:8080\""
            ),
        };
        let (scheme, rest) = grant
            .trim()
            .split_once("://")
            .ok_or_else(|| bad("no scheme"))?;
        let scheme =
            Scheme::parse(scheme).ok_or_else(|| bad("the scheme must be http or https"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("a grant names a host, not a path"));
        }
        if rest.contains('@') {
            return Err(bad("a grant cannot carry a user name or password"));
        }
        let (host, port) = convergio_cap_keys::split_host_port(rest).map_err(|why| bad(&why))?;
        let port = match port {
            None => PortPattern::Exact(scheme.default_port()),
            Some("*") => PortPattern::Any,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => PortPattern::Exact(n),
                _ => return Err(bad(&format!("`{p}` is not a port"))),
            },
        };
        let host = HostPattern::parse(host).map_err(|why| bad(&why))?;
        Ok(Self { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` is allowed by this grant.
    /// `host` is lowercase without brackets or a trailing dot.
    pub fn allows(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        if scheme != self.scheme {
            return false;
        }
        if let PortPattern::Exact(p) = self.port
            && p != port
        {
            return false;
        }
        self.host.matches(host)
    }

    /// The granted address, if this grant is an address literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.host {
            HostPattern::Ip(ip) => Some(ip),
            _ => None,
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        match self.port {
            PortPattern::Exact(p) if p == self.scheme.default_port() => Ok(()),
            PortPattern::Exact(p) => write!(f, ":{p}"),
            PortPattern::Any => f.write_str(":*"),
        }
    }
}

/// Limits on one plugin's outgoing requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time to resolve, connect and finish the TLS handshake.
    pub connect_timeout: std::time::Duration,
    /// Time for the whole exchange, from sending to the last byte of the body.
    pub total_timeout: std::time::Duration,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: u64,
    /// Requests of the plugin in flight at once (across all its instances).
    pub max_concurrent: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: std::time::Duration::from_secs(10),
            total_timeout: std::time::Duration::from_secs(300),
            max_response_bytes: 32 << 20,
            max_concurrent: 16,
        }
    }
}

/// Everything one plugin may do over HTTP, parsed once at load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpPolicy {
    /// Granted destinations; empty allows nothing.
    pub destinations: Vec<Destination>,
    /// Key grants (`provider` or `provider/name`) the plugin may attach.
    pub key_grants: convergio_cap_keys::KeyGrants,
    /// Limits.
    pub limits: HttpLimits,
}

impl HttpPolicy {
    /// Parse `grants` (as written in `platform.toml`); every bad grant is
    /// reported, one message each.
    pub fn parse(
        grants: &[String],
        key_grants: &[String],
        limits: HttpLimits,
    ) -> std::result::Result<Self, Vec<Error>> {
        let mut destinations = Vec::new();
        let mut problems = Vec::new();
        for grant in grants {
            match Destination::parse(grant) {
                Ok(d) => destinations.push(d),
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(Self {
                destinations,
                key_grants: convergio_cap_keys::KeyGrants::parse(key_grants),
                limits,
            })
        } else {
            Err(problems)
        }
    }

    /// The first grant that allows `scheme://host:port`.
    pub fn allowing(&self, scheme: Scheme, host: &str, port: u16) -> Option<&Destination> {
        self.destinations
            .iter()
            .find(|d| d.allows(scheme, host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(grant: &str, scheme: Scheme, host: &str, port: u16) -> bool {
        Destination::parse(grant)
            .unwrap_or_else(|e| panic!("{grant}: {e}"))
            .allows(scheme, host, port)
    }

    #[test]
    fn exact_names_and_default_ports() {
        assert!(allows(
            "https://api.openai.com",
            Scheme::Https,
            "api.openai.com",
            443
        ));
        assert!(allows(
            "https://API.OpenAI.com/",
            Scheme::Https,
            "api.openai.com",
            443
        ));
        assert!(!allows(
            "https://api.openai.com",
            Scheme::Http,
            "api.openai.com",
            80
        ));
        assert!(!allows(
            "https://api.openai.com",
            Scheme::Https,
            "api.openai.com",
            8443
        ));
        assert!(!allows(
            "https://api.openai.com",
            Scheme::Https,
            "evil-api.openai.com",
            443
        ));
        assert!(!allows(
            "https://api.openai.com",
            Scheme::Https,
            "api.openai.com.evil.io",
            443
        ));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let grant = "https://*.openai.azure.com";
        assert!(allows(grant, Scheme::Https, "mine.openai.azure.com", 443));
        assert!(allows(grant, Scheme::Https, "a.b.openai.azure.com", 443));
        assert!(!allows(grant, Scheme::Https, "openai.azure.com", 443));
        assert!(!allows(grant, Scheme::Https, "xopenai.azure.com", 443));
        assert!(Destination::parse("https://*.com").is_err());
    }

    #[test]
    fn ports_and_addresses() {
        assert!(allows(
            "http://127.0.0.1:8080",
            Scheme::Http,
            "127.0.0.1",
            8080
        ));
        assert!(!allows(
            "http://127.0.0.1:8080",
            Scheme::Http,
            "127.0.0.1",
            8081
        ));
        assert!(allows("http://127.0.0.1:*", Scheme::Http, "127.0.0.1", 9));
        assert!(allows("http://[::1]:9000", Scheme::Http, "::1", 9000));
        assert!(!allows(
            "http://127.0.0.1:8080",
            Scheme::Http,
            "localhost",
            8080
        ));
        let d = Destination::parse("http://[::1]:*").unwrap();
        assert_eq!(d.to_string(), "http://[::1]:*");
        assert_eq!(
            Destination::parse("https://api.openai.com:443")
                .unwrap()
                .to_string(),
            "https://api.openai.com"
        );
    }

    #[test]
    fn bad_grants_say_what_is_wrong() {
        for (grant, needle) in [
            ("api.openai.com", "no scheme"),
            ("ftp://example.com", "http or https"),
            ("https://example.com/v1", "not a path"),
            ("https://user@example.com", "user name"),
            ("https://example.com:http", "not a port"),
            ("https://exa mple.com", "not a host name"),
            ("https://[::1", "closing"),
        ] {
            let err = Destination::parse(grant).unwrap_err().to_string();
            assert!(err.contains(needle), "{grant}: {err}");
            assert!(err.contains("scheme://host[:port]"), "{grant}: {err}");
        }
    }

    #[test]
    fn policy_reports_every_bad_grant() {
        let grants = vec![
            "nope".to_owned(),
            "https://ok.example.com".to_owned(),
            "ftp://x.io".to_owned(),
        ];
        let problems = HttpPolicy::parse(&grants, &[], HttpLimits::default()).unwrap_err();
        assert_eq!(problems.len(), 2);
        let policy = HttpPolicy::parse(&grants[1..2], &[], HttpLimits::default()).unwrap();
        assert!(
            policy
                .allowing(Scheme::Https, "ok.example.com", 443)
                .is_some()
        );
        assert!(
            HttpPolicy::default()
                .allowing(Scheme::Https, "ok.example.com", 443)
                .is_none()
        );
    }
}
