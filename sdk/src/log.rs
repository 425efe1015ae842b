//! Logging through `wasi:logging`; the host records which plugin wrote each line.
//!
//! ```no_run
//! convergio_sdk::log::info("cache warmed");
//! convergio_sdk::log::warn(&format!("retrying after {} ms", 250));
//! ```

pub use crate::bindings::wasi::logging::logging::Level;

/// Writes `message` at `level`, with `context` to group related lines (may be empty).
pub fn log(level: Level, context: &str, message: &str) {
    crate::bindings::wasi::logging::logging::log(level, context, message);
}

/// Writes `message` at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, "", message);
}

/// Writes `message` at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, "", message);
}

/// Writes `message` at info level.
pub fn info(message: &str) {
    log(Level::Info, "", message);
}

/// Writes `message` at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, "", message);
}

/// Writes `message` at error level.
pub fn error(message: &str) {
    log(Level::Error, "", message);
}
