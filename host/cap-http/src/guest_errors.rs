//! What a guest reads of a host error: its one-line message, never a
//! backtrace, a cause chain or a host path.
//!
//! `wasi:io/error.to-debug-string` as `wasmtime-wasi` links it prints the
//! error's `Debug` form, which holds the host's stack trace whenever
//! `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` is set in the host's
//! environment. Body streams of `wasi:http` report their failures through
//! that method, so it is replaced here.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::WasiHttpView;

/// The `wasi:io/error` interface whose method is replaced: the version
/// `wasmtime-wasi` links (guests of any 0.2.x version resolve to it).
const IO_ERROR: &str = "wasi:io/error@0.2.12";

/// Replace `wasi:io/error.[method]error.to-debug-string` with one that
/// answers the error's own message, on one line. Call after `wasi:io` is
/// linked (`wasmtime_wasi::p2::add_to_linker_async`); before it, that
/// linking fails on the name defined twice.
pub(crate) fn add_to_linker<T: WasiHttpView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let replaced = linker.instance(IO_ERROR).and_then(|mut error| {
        error.func_wrap(
            "[method]error.to-debug-string",
            |mut store: StoreContextMut<'_, T>, (error,): (Resource<wasmtime::Error>,)| {
                let message = one_line(store.data_mut().http().table.get(&error)?);
                Ok((message,))
            },
        )
    });
    linker.allow_shadowing(false);
    replaced
}

/// The error's message (its outermost context), first line only: no
/// `Caused by` chain and no `Stack backtrace`, whatever the environment.
pub(crate) fn one_line(error: &wasmtime::Error) -> String {
    let text = error.to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_keeps_one_line_and_no_backtrace() {
        let error =
            wasmtime::Error::msg("the first line\nand a second").context("connection reset");
        let text = one_line(&error);
        assert_eq!(text, "connection reset");
        // `Debug` is what leaked: with a captured backtrace it spans lines.
        assert!(!text.contains('\n'));
    }
}
