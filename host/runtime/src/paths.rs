//! Where Convergio keeps its files.

use std::path::PathBuf;

/// `$CONVERGIO_HOME`, else the XDG data directory (`~/.local/share/convergio`),
/// else `./.convergio`.
pub fn home() -> PathBuf {
    if let Some(home) = std::env::var_os("CONVERGIO_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    directories::ProjectDirs::from("dev", "convergio", "convergio")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".convergio"))
}
