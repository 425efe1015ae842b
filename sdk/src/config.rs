//! Configuration values through `wasi:config/store`: the operator sets them
//! per plugin in `platform.toml`.
//!
//! ```no_run
//! # fn f() -> Result<(), convergio_sdk::config::Error> {
//! let greeting = convergio_sdk::config::get("greeting")?.unwrap_or_else(|| "Hello".into());
//! # Ok(()) }
//! ```

use crate::bindings::wasi::config::store;

pub use store::Error;

/// The value of `key`, or `None` when it is not set.
pub fn get(key: &str) -> Result<Option<String>, Error> {
    store::get(key)
}

/// The value of `key`, or `default` when it is not set.
pub fn get_or(key: &str, default: &str) -> Result<String, Error> {
    Ok(get(key)?.unwrap_or_else(|| default.to_owned()))
}

/// Every configuration key and value of this plugin.
pub fn get_all() -> Result<Vec<(String, String)>, Error> {
    store::get_all()
}

/// A one-line description of a configuration error.
pub(crate) fn describe(e: &Error) -> String {
    match e {
        Error::Upstream(m) => format!("configuration source failed: {m}"),
        Error::Io(m) => format!("configuration could not be read: {m}"),
    }
}
