//! The Azure Key Vault source against a local server that speaks the Key
//! Vault REST format (api-version 7.4) and the Entra ID token endpoint.
#![cfg(feature = "azure")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use common::*;
use convergio_cap_keys::secrecy::{ExposeSecret as _, SecretString};
use convergio_cap_keys::{
    AuthScheme, AzureKeyVaultConfig, AzureKeyVaultSource, ClientCredentials, Error,
    MasterKeySource, StaticToken, Vault,
};
use serde_json::{Value, json};

const KEY_NAME: &str = "convergio-master";

/// What the fake Key Vault holds.
struct Fake {
    base: String,
    /// Key versions, oldest first; each wraps with its own XChaCha20 key.
    versions: Vec<(String, [u8; 32])>,
    valid_token: String,
    forbidden_token: String,
    client_secret: String,
    log: Vec<String>,
}

impl Fake {
    fn add_version(&mut self) -> String {
        let n = self.versions.len() + 1;
        let version = format!("{n:032x}");
        let mut key = [0u8; 32];
        key[0] = n as u8;
        key[31] = 0xa5;
        self.versions.push((version.clone(), key));
        version
    }

    fn kid(&self, version: &str) -> String {
        format!("{}/keys/{KEY_NAME}/{version}", self.base)
    }

    fn handle(
        &mut self,
        method: &str,
        target: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> (u16, Value) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        self.log.push(format!("{method} {path}"));
        if method == "POST" && path.ends_with("/oauth2/v2.0/token") {
            let form = String::from_utf8_lossy(body);
            assert!(form.contains("grant_type=client_credentials"));
            assert!(
                form.contains("scope=https%3A%2F%2Fvault.azure.net%2F.default"),
                "{form}"
            );
            if form.contains(&format!("client_secret={}", self.client_secret)) {
                return (
                    200,
                    json!({"token_type": "Bearer", "expires_in": 3599, "access_token": self.valid_token}),
                );
            }
            return (
                401,
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
            );
        }
        assert_eq!(query, "api-version=7.4", "api-version on {path}");
        let auth = headers.get("authorization").cloned().unwrap_or_default();
        if auth == format!("Bearer {}", self.forbidden_token) {
            return (
                403,
                json!({"error": {"code": "Forbidden", "message": "Operation wrapKey is not permitted on this key."}}),
            );
        }
        if auth != format!("Bearer {}", self.valid_token) {
            return (
                401,
                json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}),
            );
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["keys", name]) if *name == KEY_NAME => {
                let (version, _) = self.versions.last().unwrap();
                (
                    200,
                    json!({"key": {"kid": self.kid(version), "kty": "RSA", "key_ops": ["wrapKey", "unwrapKey"]}, "attributes": {"enabled": true}}),
                )
            }
            ("POST", ["keys", name, version, op]) if *name == KEY_NAME => {
                let Some((_, key)) = self.versions.iter().find(|(v, _)| v == version) else {
                    return (
                        404,
                        json!({"error": {"code": "KeyNotFound", "message": format!("A key with (name/id) {name}/{version} was not found in this key vault.")}}),
                    );
                };
                let request: Value = serde_json::from_slice(body).unwrap();
                assert_eq!(request["alg"], "RSA-OAEP-256");
                let value = URL_SAFE_NO_PAD
                    .decode(request["value"].as_str().unwrap())
                    .unwrap();
                let cipher = XChaCha20Poly1305::new(&(*key).into());
                let nonce = XNonce::from([9u8; 24]);
                let out = match *op {
                    "wrapkey" => cipher.encrypt(&nonce, value.as_slice()).unwrap(),
                    "unwrapkey" => match cipher.decrypt(&nonce, value.as_slice()) {
                        Ok(plain) => plain,
                        Err(_) => {
                            return (
                                400,
                                json!({"error": {"code": "BadParameter", "message": "Unwrap failed."}}),
                            );
                        }
                    },
                    _ => {
                        return (
                            404,
                            json!({"error": {"code": "NotFound", "message": "no such operation"}}),
                        );
                    }
                };
                (
                    200,
                    json!({"kid": self.kid(version), "value": URL_SAFE_NO_PAD.encode(out)}),
                )
            }
            _ => (
                404,
                json!({"error": {"code": "NotFound", "message": format!("{method} {path}")}}),
            ),
        }
    }
}

fn serve(fake: Arc<Mutex<Fake>>, listener: TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let fake = fake.clone();
            std::thread::spawn(move || handle(stream, &fake));
        }
    });
}

fn handle(stream: TcpStream, fake: &Mutex<Fake>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let (status, json) = fake
        .lock()
        .unwrap()
        .handle(&method, &target, &headers, &body);
    let text = json.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    )
    .unwrap();
    stream.flush().unwrap();
}

fn start() -> (Arc<Mutex<Fake>>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut fake = Fake {
        base: base.clone(),
        versions: Vec::new(),
        valid_token: "good-token".to_owned(),
        forbidden_token: "reader-token".to_owned(),
        client_secret: "s3cret".to_owned(),
        log: Vec::new(),
    };
    fake.add_version();
    let fake = Arc::new(Mutex::new(fake));
    serve(fake.clone(), listener);
    (fake, base)
}

fn source(base: &str, token: &str) -> AzureKeyVaultSource {
    AzureKeyVaultSource::new(
        AzureKeyVaultConfig::new(base, KEY_NAME),
        Box::new(StaticToken::new(SecretString::from(token))),
    )
    .unwrap()
}

#[test]
fn round_trip_and_master_rotation_through_key_vault() {
    let (fake, base) = start();
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let source = Arc::new(source(&base, "good-token"));
    let v1_kid = source.current_key_id().unwrap();
    assert!(v1_kid.starts_with(&format!("{base}/keys/{KEY_NAME}/")));

    let vault = Vault::open(&path, source.clone()).unwrap();
    vault
        .add(
            "openai",
            "default",
            &SecretString::from(MARKER),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    vault
        .add(
            "anthropic",
            "default",
            &SecretString::from("sk-ant-0123456789abcdef"),
            None,
            &hosts(&["api.anthropic.com"]),
            AuthScheme::XApiKey,
        )
        .unwrap();
    drop(vault);

    // A fresh process: unwraps through the service.
    let vault = Vault::open(&path, Arc::new(source_fresh(&base))).unwrap();
    assert_eq!(
        vault
            .resolve("openai", "default")
            .unwrap()
            .header_value
            .expose_secret(),
        format!("Bearer {MARKER}")
    );
    assert!(
        vault
            .list()
            .unwrap()
            .iter()
            .all(|k| k.master_key_id == v1_kid)
    );

    // The service gets a new key version; rotate_master picks it up without a restart.
    let v2 = fake.lock().unwrap().add_version();
    let rotation = vault.rotate_master().unwrap();
    assert_eq!(rotation.rewrapped, 2);
    assert!(rotation.key_id.ends_with(&v2), "{rotation:?}");
    assert!(
        vault
            .list()
            .unwrap()
            .iter()
            .all(|k| k.master_key_id == rotation.key_id)
    );
    assert_eq!(vault.master_key_id().unwrap(), rotation.key_id);
    assert_eq!(vault.rotate_master().unwrap().rewrapped, 0);
    drop(vault);

    // Data keys now unwrap with the new version.
    let vault = Vault::open(&path, Arc::new(source_fresh(&base))).unwrap();
    assert_eq!(
        vault.resolve("anthropic", "default").unwrap().header_name,
        "x-api-key"
    );
    // New keys wrap with the newest version too.
    vault
        .add(
            "gemini",
            "default",
            &SecretString::from("AIza0123456789abcdef"),
            None,
            &hosts(&["generativelanguage.googleapis.com"]),
            AuthScheme::XGoogApiKey,
        )
        .unwrap();
    assert!(
        vault
            .list()
            .unwrap()
            .iter()
            .all(|k| k.master_key_id.ends_with(&v2))
    );

    assert!(!contains(
        &file_bytes(&path),
        &MARKER.as_bytes()[..MARKER.len() - 4]
    ));
    let log = fake.lock().unwrap().log.clone();
    assert!(log.iter().any(|l| l.ends_with("/wrapkey")));
    assert!(log.iter().any(|l| l.ends_with("/unwrapkey")));
}

fn source_fresh(base: &str) -> AzureKeyVaultSource {
    source(base, "good-token")
}

#[test]
fn errors_from_key_vault_are_clear() {
    let (_fake, base) = start();
    let dir = tempfile::tempdir().unwrap();

    let err = Vault::open(db(dir.path()), Arc::new(source(&base, "expired-token"))).unwrap_err();
    assert!(matches!(err, Error::Azure { status: 401, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("HTTP 401 (Unauthorized)"), "{msg}");
    assert!(msg.contains("AKV10000"), "{msg}");
    assert!(msg.contains("check the bearer token"), "{msg}");
    assert!(!msg.contains("expired-token"), "{msg}");

    // An identity without the wrapKey permission (version pinned, so no GET).
    let forbidden = AzureKeyVaultSource::new(
        AzureKeyVaultConfig {
            key_version: Some(format!("{:032x}", 1)),
            ..AzureKeyVaultConfig::new(&base, KEY_NAME)
        },
        Box::new(StaticToken::new(SecretString::from("reader-token"))),
    )
    .unwrap();
    let err = Vault::open(db(dir.path()), Arc::new(forbidden)).unwrap_err();
    assert!(matches!(err, Error::Azure { status: 403, .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("grant keys/wrapKey and keys/unwrapKey"),
        "{err}"
    );

    let unknown = AzureKeyVaultSource::new(
        AzureKeyVaultConfig {
            key_version: Some("0123abcd".to_owned()),
            ..AzureKeyVaultConfig::new(&base, KEY_NAME)
        },
        Box::new(StaticToken::new(SecretString::from("good-token"))),
    )
    .unwrap();
    let err = Vault::open(db(dir.path()), Arc::new(unknown)).unwrap_err();
    assert!(
        matches!(err, Error::Azure { status: 404, ref code, .. } if code.as_deref() == Some("KeyNotFound")),
        "{err:?}"
    );

    // Nothing listens here.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let err = Vault::open(db(dir.path()), Arc::new(source(&dead, "good-token"))).unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");

    // Plain http is refused except to loopback.
    let err = AzureKeyVaultSource::new(
        AzureKeyVaultConfig::new("http://myvault.vault.azure.net", KEY_NAME),
        Box::new(StaticToken::new(SecretString::from("t"))),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
}

#[test]
fn a_vault_of_another_key_vault_key_is_a_mismatch() {
    let (_fake, base) = start();
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    Vault::open(&path, Arc::new(source(&base, "good-token"))).unwrap();
    let other = AzureKeyVaultSource::new(
        AzureKeyVaultConfig::new(&base, "another-key"),
        Box::new(StaticToken::new(SecretString::from("good-token"))),
    )
    .unwrap();
    let err = Vault::open(&path, Arc::new(other)).unwrap_err();
    assert!(matches!(err, Error::MasterKeyMismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("the master key does not match this vault (key id"),
        "{err}"
    );
    // A local key cannot open it either.
    assert!(matches!(
        Vault::open(&path, master(7)),
        Err(Error::MasterKeyMismatch { .. })
    ));
}

#[test]
fn client_credentials_tokens() {
    let (fake, base) = start();
    let dir = tempfile::tempdir().unwrap();
    let creds = ClientCredentials::new(
        &base,
        "tenant-1",
        "client-1",
        SecretString::from("s3cret"),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(!format!("{creds:?}").contains("s3cret"));
    let source =
        AzureKeyVaultSource::new(AzureKeyVaultConfig::new(&base, KEY_NAME), Box::new(creds))
            .unwrap();
    let vault = Vault::open(db(dir.path()), Arc::new(source)).unwrap();
    vault
        .add(
            "openai",
            "default",
            &SecretString::from(MARKER),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    let tokens = fake
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|l| l.ends_with("/token"))
        .count();
    assert_eq!(tokens, 1, "the token is cached");

    let bad = ClientCredentials::new(
        &base,
        "tenant-1",
        "client-1",
        SecretString::from("wrong"),
        Duration::from_secs(5),
    )
    .unwrap();
    let source =
        AzureKeyVaultSource::new(AzureKeyVaultConfig::new(&base, KEY_NAME), Box::new(bad)).unwrap();
    let err = Vault::open(db(dir.path()), Arc::new(source)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Azure {
                operation: "token",
                status: 401,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");
}
