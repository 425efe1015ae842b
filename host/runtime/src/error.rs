//! The runtime's error type.

use std::path::PathBuf;

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading, linking or calling plugins.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `platform.toml` or `plugin.toml` is malformed or invalid. The message
    /// is one line: `file:line:column: what is wrong`.
    #[error("{0}")]
    Config(String),

    /// Several problems found by a check, one per line.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),

    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// A component imports what it was not granted or what nothing
    /// provides: one problem per import, each printed on its own line.
    #[error("{}", .0.join("\n"))]
    Denied(Vec<String>),

    /// A plugin asked to call another that its `plugins` grant does not name.
    #[error(
        "plugin `{caller}` may not call plugin `{callee}`; grant it with plugins = [\"{callee}\"] under [plugin.grants] of `{caller}` ({location})"
    )]
    CallDenied {
        /// The calling plugin.
        caller: String,
        /// The plugin it asked to call.
        callee: String,
        /// Where the caller is configured (`platform.toml:LINE`).
        location: String,
    },

    /// A component could not be compiled or linked.
    #[error("plugin `{plugin}`: {message}")]
    Load {
        /// Plugin id.
        plugin: String,
        /// What failed.
        message: String,
    },

    /// No plugin with this id is loaded.
    #[error("no plugin `{0}` is loaded; `convergio plugin list` shows the loaded ones")]
    UnknownPlugin(String),

    /// The plugin does not export the named function.
    #[error("plugin `{plugin}` has no export `{function}`; it exports: {available}")]
    UnknownFunction {
        /// Plugin id.
        plugin: String,
        /// Requested function.
        function: String,
        /// Comma-separated exports.
        available: String,
    },

    /// Several exports match the short name given.
    #[error(
        "`{function}` is ambiguous in plugin `{plugin}`: it matches {candidates}; name one of them in full"
    )]
    AmbiguousFunction {
        /// Plugin id.
        plugin: String,
        /// Requested function.
        function: String,
        /// Comma-separated matches.
        candidates: String,
    },

    /// Arguments do not match the function's parameters.
    #[error("bad arguments for `{function}`: {message}")]
    BadArguments {
        /// Function called.
        function: String,
        /// What is wrong.
        message: String,
    },

    /// The plugin was stopped: trap, deadline, fuel, memory or stack exhausted.
    #[error("plugin `{plugin}` was stopped: {reason}")]
    Stopped {
        /// Plugin id.
        plugin: String,
        /// Why it was stopped.
        reason: String,
    },

    /// The plugin has its maximum number of instances running.
    #[error(
        "plugin `{plugin}` is busy: all {limit} instance slots stayed in use for {waited_ms} ms"
    )]
    Busy {
        /// Plugin id.
        plugin: String,
        /// Its concurrency limit.
        limit: u32,
        /// How long the call waited.
        waited_ms: u64,
    },

    /// A host capability could not open what it serves plugins from (its
    /// database, the key vault, the model cache, the HTTP client's
    /// certificates).
    #[error("{context}: {source}")]
    Capability {
        /// The capability, as grants name it (`storage`, `keys`, …).
        capability: &'static str,
        /// What it was doing, e.g. `cannot open the storage database /data/convergio.db`.
        context: String,
        /// Why it failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Any other wasmtime failure.
    #[error(transparent)]
    Wasmtime(#[from] wasmtime::Error),
}

impl Error {
    /// A [`Error::Capability`] failure of `capability` while `context`.
    pub(crate) fn capability(
        capability: &'static str,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Capability {
            capability,
            context: context.into(),
            source: source.into(),
        }
    }
}

/// The error and its causes on one line.
pub(crate) fn one_line(err: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
        if text.contains("wasm backtrace:") {
            continue;
        }
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
