//! XChaCha20-Poly1305 sealing, data keys and key ids.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of every symmetric key here (XChaCha20-Poly1305 uses 256-bit keys).
pub const KEY_LEN: usize = 32;
/// Length of an XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;

/// A 256-bit symmetric key, wiped from memory when dropped. Its `Debug` prints
/// `[redacted]`.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(key.as_mut_slice())?;
        Ok(Self(key))
    }

    /// A key from exactly 32 bytes; `what` names the bytes' origin for the error.
    pub fn from_slice(bytes: &[u8], what: &str) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(Error::MasterKeyFormat {
                origin: what.to_owned(),
                reason: format!("expected {KEY_LEN} bytes, found {}", bytes.len()),
            });
        }
        key.copy_from_slice(bytes);
        Ok(Self(key))
    }

    /// The key bytes. Keep the borrow short; never log them.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A short public fingerprint: the first 8 bytes of SHA-256 over a domain
    /// tag and the key, in hex. Safe to print and store.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"convergio-cap-keys master key id v1\0");
        hasher.update(self.0.as_slice());
        let digest = hasher.finalize();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(*self.0))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// Fill `buf` from the operating system's random generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Random(e.to_string()))
}

/// Seal `plaintext` under `key` with a fresh random nonce, binding `aad`.
pub(crate) fn seal(
    key: &DataKey,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let ciphertext = key
        .cipher()
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::invalid("plaintext", "too long to seal"))?;
    Ok((nonce, ciphertext))
}

/// Open what [`seal`] produced. `None` when authentication fails (wrong key,
/// modified bytes or a different `aad`).
pub(crate) fn open(
    key: &DataKey,
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    key.cipher()
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// Seal with the nonce prepended: `nonce || ciphertext`.
pub(crate) fn seal_combined(key: &DataKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let (nonce, ciphertext) = seal(key, aad, plaintext)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Open what [`seal_combined`] produced.
pub(crate) fn open_combined(
    key: &DataKey,
    aad: &[u8],
    sealed: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    open(key, nonce, aad, ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = DataKey::generate().unwrap();
        let sealed = seal_combined(&key, b"row-1", b"hello").unwrap();
        assert_eq!(
            open_combined(&key, b"row-1", &sealed).unwrap().as_slice(),
            b"hello"
        );
        assert!(open_combined(&key, b"row-2", &sealed).is_none());
        let other = DataKey::generate().unwrap();
        assert!(open_combined(&other, b"row-1", &sealed).is_none());
        assert_ne!(key.fingerprint(), other.fingerprint());
        assert_eq!(format!("{key:?}"), "DataKey([redacted])");
    }
}
