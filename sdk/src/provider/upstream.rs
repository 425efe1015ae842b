//! The upstream API an adapter calls, and the failures every adapter maps
//! the same way: transport errors, key lookups, responses that are not 2xx
//! and their `Retry-After` header.
//!
//! ```no_run
//! use convergio_sdk::provider::{self, KeyName, Upstream};
//!
//! # fn f() -> provider::Result<()> {
//! let key = KeyName::parse("default", "acme").ok_or_else(|| provider::ModelError::BadRequest("key".into()))?;
//! let upstream = Upstream::new("Acme API", "https://api.acme.test/v1", key);
//! let request = upstream.post_json("https://api.acme.test/v1/chat", &serde_json::json!({"x": 1}))?;
//! let response = upstream.send(request, |failure| match failure.status {
//!     429 => provider::ModelError::RateLimited(failure.retry_after_ms(provider::now_unix_secs())),
//!     status => provider::ModelError::Upstream(format!("Acme API answered HTTP {status}")),
//! })?;
//! let body = upstream.read_body(response)?;
//! # drop(body); Ok(()) }
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::bindings::wasi::http::types::ErrorCode;
use crate::client::{HttpError, Request, Response};
use crate::keys::KeyError;
use crate::log;
use crate::provider::{KeyName, ModelError, Post, Result};

/// The API an adapter calls: how messages name it, and the grants that
/// reach it (the `http` destination and the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// How messages name the API, e.g. `Anthropic API`.
    pub name: String,
    /// `scheme://host[:port]` of the base URL: the `http` grant it needs.
    pub origin: String,
    /// The key requests carry: the `keys` grant it needs.
    pub key: KeyName,
}

/// A response whose status is not 2xx, read whole: what an adapter maps
/// to its [`ModelError`] (see [`Upstream::send`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// The HTTP status.
    pub status: u16,
    /// The headers whose value is text, as received.
    pub headers: Vec<(String, String)>,
    /// The body; empty if it could not be read (the status still says a lot).
    pub body: Vec<u8>,
}

impl ErrorResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `retry-after` header in milliseconds from `now_unix_secs`
    /// (see [`retry_after_ms`]).
    pub fn retry_after_ms(&self, now_unix_secs: u64) -> Option<u64> {
        self.header("retry-after")
            .and_then(|v| retry_after_ms(v, now_unix_secs))
    }
}

impl Upstream {
    /// The API `name` at `base_url` (its origin is the `http` grant that
    /// messages name), called with `key`.
    pub fn new(name: impl Into<String>, base_url: &str, key: KeyName) -> Self {
        Self {
            name: name.into(),
            origin: origin(base_url).to_owned(),
            key,
        }
    }

    /// The key's reference from the host (`key:PROVIDER/NAME`).
    pub fn key_reference(&self) -> Result<String> {
        self.key.reference().map_err(|e| self.key_error(e))
    }

    /// A failed key lookup, as `auth` (the `model-error` for a key that is
    /// refused or not granted), saying what the operator must do.
    pub fn key_error(&self, error: KeyError) -> ModelError {
        let (name, key) = (&self.name, &self.key);
        ModelError::Auth(match error {
            KeyError::NotGranted(m) => format!(
                "the {name} key `{key}` is not granted to this plugin ({m}); add keys = \
                 [\"{key}\"] under its [plugin.grants] in platform.toml, or set config `key` to \
                 a granted key"
            ),
            KeyError::NotFound(m) => format!(
                "the {name} key `{key}` is not stored ({m}); add it with `convergio keys add {} \
                 --name {}`",
                key.provider, key.name
            ),
            KeyError::Expired(m) => format!("the {name} key `{key}` has expired ({m})"),
            KeyError::Revoked(m) => format!("the {name} key `{key}` was revoked ({m})"),
        })
    }

    /// A request that failed before an HTTP status arrived: `timeout`;
    /// `access-denied` for a destination the host refuses, naming the
    /// `http` and `keys` grants to add; `bad-request` for a request that
    /// cannot be sent; `upstream` for any other failure.
    pub fn transport_error(&self, error: &HttpError) -> ModelError {
        let name = &self.name;
        if error.is_timeout() {
            return ModelError::Timeout(format!("{name}: {error}"));
        }
        match error {
            HttpError::Code(ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited) => {
                ModelError::AccessDenied(format!(
                    "{name}: {error}. The operator must grant this provider {}, and bind the key \
                     to that host",
                    self.grants()
                ))
            }
            HttpError::Invalid(_) => ModelError::BadRequest(format!("{name}: {error}")),
            HttpError::Code(_) | HttpError::Stream(_) => {
                ModelError::Upstream(format!("{name}: {error}"))
            }
        }
    }

    /// A request that failed while being sent. With a body to write, the
    /// SDK's client may see a request the host refused as a closed body
    /// stream, without the `wasi:http` code: that case says where to look.
    pub fn send_error(&self, error: &HttpError) -> ModelError {
        match (self.transport_error(error), error) {
            (ModelError::Upstream(m), HttpError::Stream(_)) => ModelError::Upstream(format!(
                "{m} (if the host denied the request, the host log says why; the operator must \
                 then grant this provider {})",
                self.grants()
            )),
            (other, _) => other,
        }
    }

    /// A streamed body that failed after its headers: `timeout` if it
    /// stalled, else `upstream` saying the stream broke off.
    pub fn stream_error(&self, error: &HttpError) -> ModelError {
        match self.transport_error(error) {
            ModelError::Upstream(_) => {
                ModelError::Upstream(format!("{}: the stream broke off: {error}", self.name))
            }
            other => other,
        }
    }

    /// `http = […]` and `keys = […]` as the operator writes them.
    fn grants(&self) -> String {
        format!(
            "the API's destination (http = [\"{}\"]) and its key (keys = [\"{}\"]) under its \
             [plugin.grants] in platform.toml",
            self.origin, self.key.provider
        )
    }

    /// A POST of `body` as JSON to `url` with the key attached by reference;
    /// add headers to it, then [`send`](Self::send) it.
    pub fn post_json(&self, url: &str, body: &impl Serialize) -> Result<Request> {
        self.post(&Post::json(url, body)?)
    }

    /// `post` with the key attached by reference, ready to [`send`](Self::send).
    pub fn post(&self, post: &Post) -> Result<Request> {
        let reference = self.key_reference()?;
        let request = Request::post(&post.url)
            .header("content-type", "application/json")
            .key(&reference);
        let request = post.headers.iter().fold(request, |request, (name, value)| {
            request.header(name, value)
        });
        Ok(request.body(post.body.clone()))
    }

    /// Sends `request` and returns the response if its status is 2xx (its
    /// body still to read). A failure to send becomes its
    /// [`send_error`](Self::send_error); any other status is read whole and
    /// becomes the error `on_error` makes of it, logged as a warning.
    pub fn send(
        &self,
        request: Request,
        on_error: impl FnOnce(&ErrorResponse) -> ModelError,
    ) -> Result<Response> {
        let url = request.url().to_owned();
        let response = request.send().map_err(|e| self.send_error(&e))?;
        let status = response.status();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.clone(), String::from_utf8(v.clone()).ok()?)))
            .collect();
        let failure = ErrorResponse {
            status,
            headers,
            // A body that cannot be read still leaves the status to map.
            body: response.bytes().unwrap_or_default(),
        };
        let error = on_error(&failure);
        log::warn(&format!("{url}: HTTP {status}: {error:?}"));
        Err(error)
    }

    /// The whole body of `response`; a failure to read it is its
    /// [`transport_error`](Self::transport_error).
    pub fn read_body(&self, response: Response) -> Result<Vec<u8>> {
        response.bytes().map_err(|e| self.transport_error(&e))
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + "://".len());
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// The wall clock in Unix seconds (0 if it reads before 1970). In a
/// component the standard library reads it through `wasi:clocks/wall-clock`.
pub fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds to wait from a `Retry-After` value: delay seconds (whole
/// or, leniently, fractional) or an HTTP date (IMF-fixdate, `Sun, 06 Nov
/// 1994 08:49:37 GMT`) relative to `now_unix_secs`; a date in the past
/// means 0. `None` for anything else.
pub fn retry_after_ms(value: &str, now_unix_secs: u64) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64);
    }
    let at = http_date(value)?;
    Some(at.saturating_sub(now_unix_secs).saturating_mul(1000))
}

/// Unix seconds of an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`
/// (the only HTTP date form senders may use; years from 1970).
pub fn http_date(value: &str) -> Option<u64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    if !weekday.ends_with(',') {
        return None;
    }
    let day: u64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok().filter(|y| *y >= 1970)?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (Some(Some(h)), Some(Some(m)), Some(Some(s)), None) =
        (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return None;
    };
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (years ≥ 1970).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y % 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// The start of a body (at most 200 characters) for an error message.
pub fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    fn upstream(base_url: &str, key: &str) -> Upstream {
        Upstream::new("Acme API", base_url, KeyName::parse(key, "acme").unwrap())
    }

    fn text(err: &ModelError) -> &str {
        match err {
            ModelError::Timeout(m)
            | ModelError::AccessDenied(m)
            | ModelError::BadRequest(m)
            | ModelError::Upstream(m)
            | ModelError::Auth(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_origin_is_the_http_grant() {
        let origin = |url| upstream(url, "default").origin;
        assert_eq!(origin("https://api.acme.test/v1"), "https://api.acme.test");
        assert_eq!(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(origin("https://x.test:8443/a/b"), "https://x.test:8443");
    }

    #[test]
    fn http_dates_parse() {
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(NOW));
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480)
        );
        assert_eq!(
            http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(1_835_481_599)
        );
        assert_eq!(
            http_date("Sun, 29 Feb 2032 12:00:00 GMT"),
            Some(1_961_668_800)
        );
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 07:28:00 CET",
            "Wed, 21 Oct 1969 07:28:00 GMT",
            "Wed, 21 Oct 2015 07:28 GMT",
        ] {
            assert_eq!(http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(retry_after_ms("30", NOW), Some(30_000));
        assert_eq!(retry_after_ms(" 1.5 ", NOW), Some(1_500));
        assert_eq!(retry_after_ms("0", NOW), Some(0));
        assert_eq!(
            retry_after_ms("Sun, 06 Nov 1994 08:50:07 GMT", NOW),
            Some(30_000)
        );
        // A date in the past means "now".
        assert_eq!(
            retry_after_ms("Sun, 06 Nov 1994 08:00:00 GMT", NOW),
            Some(0)
        );
        assert_eq!(retry_after_ms(&u64::MAX.to_string(), NOW), Some(u64::MAX));
        for bad in ["soon", "-1", "NaN", "inf", ""] {
            assert_eq!(retry_after_ms(bad, NOW), None, "{bad}");
        }
        let failure = ErrorResponse {
            status: 429,
            headers: vec![("Retry-After".into(), "2".into())],
            body: Vec::new(),
        };
        assert_eq!(failure.header("retry-after"), Some("2"));
        assert_eq!(failure.retry_after_ms(NOW), Some(2_000));
        assert!(now_unix_secs() > NOW);
    }

    #[test]
    fn transport_errors() {
        let api = upstream("https://api.acme.test/v1", "acme-eu/prod");
        let denied = api.transport_error(&HttpError::Code(ErrorCode::HttpRequestDenied));
        assert!(matches!(denied, ModelError::AccessDenied(_)));
        let m = text(&denied);
        assert!(
            m.starts_with("Acme API: ")
                && m.contains("http = [\"https://api.acme.test\"]")
                && m.contains("keys = [\"acme-eu\"]")
                && m.contains("platform.toml"),
            "{m}"
        );
        assert!(matches!(
            api.transport_error(&HttpError::Code(ErrorCode::DestinationIpProhibited)),
            ModelError::AccessDenied(_)
        ));
        for timeout in [
            HttpError::Code(ErrorCode::ConnectionTimeout),
            HttpError::Code(ErrorCode::HttpResponseTimeout),
            HttpError::Stream("HttpResponseTimeout".into()),
            HttpError::Stream("ConnectionReadTimeout timeout".into()),
            HttpError::Stream("read timeout".into()),
        ] {
            assert!(
                matches!(api.transport_error(&timeout), ModelError::Timeout(_)),
                "{timeout:?}"
            );
            assert!(matches!(api.send_error(&timeout), ModelError::Timeout(_)));
            assert!(matches!(api.stream_error(&timeout), ModelError::Timeout(_)));
        }
        for other in [
            HttpError::Code(ErrorCode::ConnectionRefused),
            HttpError::Stream("HttpResponseBodySize(None)".into()),
        ] {
            assert!(matches!(
                api.transport_error(&other),
                ModelError::Upstream(_)
            ));
        }
        assert!(matches!(
            api.transport_error(&HttpError::Invalid("unsupported scheme `ftp`".into())),
            ModelError::BadRequest(_)
        ));
    }

    #[test]
    fn send_and_stream_errors_say_where_to_look() {
        let api = upstream("https://api.acme.test", "default");
        let closed = api.send_error(&HttpError::Stream("the stream closed".into()));
        assert!(matches!(closed, ModelError::Upstream(_)));
        let m = text(&closed);
        assert!(
            m.contains("host log") && m.contains("denied") && m.contains("platform.toml"),
            "{m}"
        );
        assert!(matches!(
            api.send_error(&HttpError::Code(ErrorCode::HttpRequestDenied)),
            ModelError::AccessDenied(_)
        ));
        assert!(matches!(
            api.send_error(&HttpError::Code(ErrorCode::ConnectionRefused)),
            ModelError::Upstream(m) if !m.contains("host log")
        ));
        let cut = api.stream_error(&HttpError::Stream("the stream closed".into()));
        assert!(text(&cut).contains("the stream broke off"), "{cut:?}");
    }

    #[test]
    fn key_errors_are_auth_errors_saying_what_to_do() {
        let api = upstream("https://api.acme.test", "team-b");
        let not_granted = api.key_error(KeyError::NotGranted(
            "plugin `acme` is not granted key acme/team-b".into(),
        ));
        assert!(matches!(not_granted, ModelError::Auth(_)));
        let m = text(&not_granted);
        assert!(
            m.contains("Acme API key `acme/team-b` is not granted")
                && m.contains("keys = [\"acme/team-b\"]")
                && m.contains("plugin `acme`"),
            "{m}"
        );
        let missing = api.key_error(KeyError::NotFound("x".into()));
        assert!(
            text(&missing).contains("convergio keys add acme --name team-b"),
            "{missing:?}"
        );
        for error in [KeyError::Expired("x".into()), KeyError::Revoked("x".into())] {
            assert!(matches!(api.key_error(error), ModelError::Auth(_)));
        }
    }

    #[test]
    fn excerpts_are_short_and_never_empty() {
        assert_eq!(excerpt(b"  \n"), "(empty body)");
        assert_eq!(excerpt(b" {\"a\": 1} "), "{\"a\": 1}");
        let long = "é".repeat(300);
        let cut = excerpt(long.as_bytes());
        assert_eq!(cut.chars().count(), 201);
        assert!(cut.ends_with('…'));
    }
}
