//! Master key from a file that only its owner may read (mode 0600).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::crypto::{DataKey, KEY_LEN};
use crate::error::{Error, Result};
use crate::source::{LocalKey, decode_master_key, encode_master_key};

/// A master key kept in a file: base64 of 32 bytes (or the 32 raw bytes).
/// The file must not be accessible by group or others.
#[derive(Debug)]
pub struct KeyFileSource {
    path: PathBuf,
    key: LocalKey,
}

impl KeyFileSource {
    /// Read the key from `path`, refusing a file that group or others can access.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io = |source| Error::KeyFile {
            path: path.clone(),
            source,
        };
        let meta = fs::metadata(&path).map_err(io)?;
        check_permissions(&path, &meta)?;
        let bytes = Zeroizing::new(fs::read(&path).map_err(io)?);
        let origin = format!("key file {}", path.display());
        let key = if bytes.len() == KEY_LEN {
            DataKey::from_slice(&bytes, &origin)?
        } else {
            let text = std::str::from_utf8(&bytes).map_err(|_| Error::MasterKeyFormat {
                origin: origin.clone(),
                reason: format!("expected the base64 of {KEY_LEN} bytes"),
            })?;
            decode_master_key(text, &origin)?
        };
        Ok(Self {
            key: LocalKey::new(key, origin),
            path,
        })
    }

    /// Create a new random key at `path` with mode 0600. Refuses to overwrite
    /// an existing file.
    pub fn generate(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io = |source| Error::KeyFile {
            path: path.clone(),
            source,
        };
        let key = DataKey::generate()?;
        let text = encode_master_key(&key);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)?;
        let origin = format!("key file {}", path.display());
        Ok(Self {
            key: LocalKey::new(key, origin),
            path,
        })
    }

    /// The file the key was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _meta: &fs::Metadata) -> Result<()> {
    // Windows ACLs are not checked; keep the file in the user's profile.
    Ok(())
}

local_key_source!(KeyFileSource);
