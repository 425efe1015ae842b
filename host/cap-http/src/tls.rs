//! The TLS client configuration shared by every plugin: the Mozilla root
//! certificates (webpki-roots), plus any the operator adds.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::{Error, Result};

/// Build the client configuration; `extra_roots` are PEM files of further
/// trusted certificates (a private CA, a test CA).
pub fn client_config(extra_roots: &[impl AsRef<Path>]) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for path in extra_roots {
        let path = path.as_ref();
        let bad = |message: String| Error::Setting {
            setting: "ca-files".to_owned(),
            message,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| {
                bad(format!(
                    "{} is not a PEM certificate file: {e}",
                    path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(bad(format!("{} holds no certificate", path.display())));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                bad(format!(
                    "a certificate in {} is unusable: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Setting {
            setting: "tls".to_owned(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
