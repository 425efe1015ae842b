//! Where a key may be sent: origins (scheme, host, port), parsed from what
//! the operator writes and from the vault's canonical form.

use std::fmt;
use std::net::IpAddr;

use crate::error::{Error, Result};

/// The scheme of a bound origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OriginScheme {
    /// Plain HTTP: only loopback hosts or an explicit `http://` binding.
    Http,
    /// HTTP over TLS.
    Https,
}

impl OriginScheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("http") {
            Some(Self::Http)
        } else if text.eq_ignore_ascii_case("https") {
            Some(Self::Https)
        } else {
            None
        }
    }
}

/// The host of a bound origin, or of a granted `http` destination (the
/// HTTP capability parses its grants with [`OriginHost::parse`] too).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OriginHost {
    /// Exactly this DNS name (lowercase, no trailing dot).
    Name(String),
    /// Any subdomain of this domain (`*.example.com`; not the bare domain).
    Subdomains(String),
    /// Exactly this address.
    Ip(IpAddr),
}

impl OriginHost {
    /// Parse `example.com`, `*.example.com` or an IP address (without
    /// brackets); the error says what is wrong.
    pub fn parse(host: &str) -> std::result::Result<Self, String> {
        parse_host(host)
    }

    /// Whether `host` (any case, with or without a trailing dot or IPv6
    /// brackets) is this host.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        match self {
            Self::Name(name) => name.eq_ignore_ascii_case(host),
            Self::Subdomains(domain) => {
                host.len() > domain.len() + 1
                    && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            }
            Self::Ip(ip) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|h| h == *ip),
        }
    }

    fn is_loopback(&self) -> bool {
        match self {
            Self::Name(name) => name == "localhost",
            Self::Subdomains(_) => false,
            Self::Ip(ip) => ip.is_loopback(),
        }
    }
}

/// One origin a key may be sent to: `scheme://host:port`, where the port
/// may be `*` (any).
///
/// Its text form, as stored and listed, always names the port:
/// `https://api.openai.com:443`, `http://127.0.0.1:*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BoundOrigin {
    /// Scheme.
    pub scheme: OriginScheme,
    /// Host name, `*.domain` or address.
    pub host: OriginHost,
    /// Port; `None` is any port.
    pub port: Option<u16>,
}

/// How a binding is written, for error messages.
const BINDING_FORMAT: &str = "write an origin scheme://host[:port], e.g. \"https://api.openai.com\", \"https://*.openai.azure.com\", \"http://127.0.0.1:8080\", or a bare host name, which means https on port 443 (`localhost`, 127.0.0.1 or ::1 alone: http or https on any port)";

impl BoundOrigin {
    /// Parse a binding as the operator writes it (`convergio keys add --host`):
    ///
    /// - `https://host[:port]` or `http://host[:port]`: that origin; the
    ///   port defaults to the scheme's, `:*` is any port;
    /// - a bare `host[:port]`: `https` on that port, default 443;
    /// - a bare loopback host (`localhost`, `127.0.0.1`, `::1`): `http` and
    ///   `https` on that port, or on any port when none is given.
    ///
    /// A host may be `*.domain` (any subdomain). Paths and user names are
    /// refused.
    pub fn parse_binding(text: &str) -> Result<Vec<Self>> {
        let bad = |why: String| {
            Error::invalid(
                "bound origin",
                format!("`{}`: {why}; {BINDING_FORMAT}", text.trim()),
            )
        };
        let trimmed = text.trim();
        let (scheme, rest) =
            match trimmed.split_once("://") {
                Some((scheme, rest)) => (
                    Some(OriginScheme::parse(scheme).ok_or_else(|| {
                        bad(format!("the scheme `{scheme}` is not http or https"))
                    })?),
                    rest,
                ),
                None => (None, trimmed),
            };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("a binding names an origin, not a path".to_owned()));
        }
        if rest.contains('@') {
            return Err(bad(
                "a binding cannot carry a user name or password".to_owned()
            ));
        }
        // A bare IPv6 address (`::1`) has colons but no port.
        let (host, port) = if scheme.is_none() && rest.parse::<IpAddr>().is_ok() {
            (rest, None)
        } else {
            split_host_port(rest).map_err(bad)?
        };
        let port = match port {
            None => None,
            Some("*") => Some(None),
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(Some(n)),
                _ => return Err(bad(format!("`{p}` is not a port"))),
            },
        };
        let host = parse_host(host).map_err(bad)?;
        Ok(match scheme {
            Some(scheme) => vec![Self {
                scheme,
                host,
                port: port.unwrap_or(Some(scheme.default_port())),
            }],
            None if host.is_loopback() => {
                let port = port.flatten();
                [OriginScheme::Http, OriginScheme::Https]
                    .into_iter()
                    .map(|scheme| Self {
                        scheme,
                        host: host.clone(),
                        port,
                    })
                    .collect()
            }
            None => vec![Self {
                scheme: OriginScheme::Https,
                host,
                port: port.unwrap_or(Some(443)),
            }],
        })
    }

    /// Parse the canonical form written by [`fmt::Display`]: scheme, host
    /// and port (or `*`) all present.
    pub fn parse_canonical(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "stored origin",
                format!("`{text}` is not of the form scheme://host:port"),
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let scheme = OriginScheme::parse(scheme).ok_or_else(bad)?;
        let (host, port) = split_host_port(rest).map_err(|_| bad())?;
        let port = match port.ok_or_else(bad)? {
            "*" => None,
            p => Some(p.parse::<u16>().map_err(|_| bad())?),
        };
        let host = parse_host(host).map_err(|_| bad())?;
        Ok(Self { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` may carry the key. `host`
    /// is compared without case, brackets or a trailing dot.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.scheme.as_str().eq_ignore_ascii_case(scheme)
            && self.port.is_none_or(|p| p == port)
            && self.host.matches(host)
    }
}

/// `example.com`, `*.example.com`, `127.0.0.1` or `[::1]`, as in a URL.
impl fmt::Display for OriginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginHost::Name(name) => f.write_str(name),
            OriginHost::Subdomains(domain) => write!(f, "*.{domain}"),
            OriginHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            OriginHost::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl fmt::Display for BoundOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => f.write_str(":*"),
        }
    }
}

/// Whether any of `origins` allows `scheme://host:port`.
pub fn origins_allow(origins: &[BoundOrigin], scheme: &str, host: &str, port: u16) -> bool {
    origins.iter().any(|o| o.allows(scheme, host, port))
}

/// Split `host[:port]`, where an IPv6 host is in brackets.
pub fn split_host_port(text: &str) -> std::result::Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 address needs a closing `]`".to_owned())?;
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or_else(|| format!("unexpected `{after}` after the address")),
        };
    }
    Ok(match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    })
}

fn parse_host(host: &str) -> std::result::Result<OriginHost, String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(OriginHost::Ip(ip));
    }
    let (bare, wildcard) = match host.strip_prefix("*.") {
        Some(domain) => (domain, true),
        None => (host.as_str(), false),
    };
    let valid = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        return Err(format!(
            "`{host}` is not a host name (letters, digits, `-` and `.`, optionally starting with `*.`) or an IP address"
        ));
    }
    if wildcard && !bare.contains('.') {
        return Err(format!(
            "`*.{bare}` would match a whole top-level domain; name the domain, e.g. `*.example.com`"
        ));
    }
    Ok(if wildcard {
        OriginHost::Subdomains(bare.to_owned())
    } else {
        OriginHost::Name(bare.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(text: &str) -> Vec<String> {
        BoundOrigin::parse_binding(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn bare_hosts_mean_https_on_443() {
        assert_eq!(binding("api.openai.com"), ["https://api.openai.com:443"]);
        assert_eq!(binding("API.OpenAI.com."), ["https://api.openai.com:443"]);
        assert_eq!(
            binding("*.openai.azure.com"),
            ["https://*.openai.azure.com:443"]
        );
        assert_eq!(binding("llm.example:8443"), ["https://llm.example:8443"]);
        assert_eq!(binding("203.0.113.7"), ["https://203.0.113.7:443"]);
    }

    #[test]
    fn bare_loopback_means_http_or_https() {
        assert_eq!(
            binding("127.0.0.1"),
            ["http://127.0.0.1:*", "https://127.0.0.1:*"]
        );
        assert_eq!(binding("::1"), ["http://[::1]:*", "https://[::1]:*"]);
        assert_eq!(
            binding("localhost:11434"),
            ["http://localhost:11434", "https://localhost:11434"]
        );
    }

    #[test]
    fn explicit_origins() {
        assert_eq!(
            binding("https://api.openai.com"),
            ["https://api.openai.com:443"]
        );
        assert_eq!(
            binding("https://api.openai.com:443/"),
            ["https://api.openai.com:443"]
        );
        assert_eq!(binding("http://llm.internal"), ["http://llm.internal:80"]);
        assert_eq!(binding("http://[::1]:8080"), ["http://[::1]:8080"]);
        assert_eq!(binding("https://127.0.0.1"), ["https://127.0.0.1:443"]);
        assert_eq!(binding("https://x.example:*"), ["https://x.example:*"]);
    }

    #[test]
    fn bad_bindings_say_what_is_wrong_and_how_to_write_one() {
        for (text, needle) in [
            ("ftp://x.example", "not http or https"),
            ("https://x.example/v1", "not a path"),
            ("https://user@x.example", "user name"),
            ("https://x.example:http", "not a port"),
            ("x.example:0", "not a port"),
            ("exa mple.com", "not a host name"),
            ("*.com", "top-level domain"),
            ("https://[::1", "closing"),
        ] {
            let err = BoundOrigin::parse_binding(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(err.contains("scheme://host[:port]"), "{text}: {err}");
        }
    }

    #[test]
    fn an_origin_allows_only_its_scheme_host_and_port() {
        let o = &BoundOrigin::parse_binding("https://api.openai.com").unwrap()[0];
        assert!(o.allows("https", "api.openai.com", 443));
        assert!(o.allows("HTTPS", "API.openai.com.", 443));
        assert!(!o.allows("http", "api.openai.com", 443));
        assert!(!o.allows("http", "api.openai.com", 80));
        assert!(!o.allows("https", "api.openai.com", 8443));
        assert!(!o.allows("https", "api.openai.com.evil.io", 443));

        let wild = &BoundOrigin::parse_binding("*.openai.azure.com").unwrap()[0];
        assert!(wild.allows("https", "me.openai.azure.com", 443));
        assert!(!wild.allows("https", "openai.azure.com", 443));
        assert!(!wild.allows("https", "evilopenai.azure.com", 443));
        assert!(!wild.allows("http", "me.openai.azure.com", 80));

        let local = BoundOrigin::parse_binding("127.0.0.1").unwrap();
        assert!(origins_allow(&local, "http", "127.0.0.1", 8080));
        assert!(origins_allow(&local, "https", "127.0.0.1", 9443));
        assert!(!origins_allow(&local, "http", "127.0.0.2", 8080));

        let v6 = &BoundOrigin::parse_binding("http://[::1]:8080").unwrap()[0];
        assert!(v6.allows("http", "::1", 8080));
        assert!(v6.allows("http", "0:0:0:0:0:0:0:1", 8080));
        assert!(!v6.allows("http", "::1", 8081));
    }

    #[test]
    fn canonical_form_round_trips() {
        for text in [
            "https://api.openai.com:443",
            "https://*.openai.azure.com:443",
            "http://127.0.0.1:*",
            "http://[::1]:8080",
        ] {
            let o = BoundOrigin::parse_canonical(text).unwrap();
            assert_eq!(o.to_string(), text);
        }
        for text in ["api.openai.com", "https://api.openai.com", "ftp://x.io:1"] {
            assert!(BoundOrigin::parse_canonical(text).is_err(), "{text}");
        }
    }
}
