//! The host's log output. Each log record reaches the writer in one write;
//! [`OneLine`] escapes every line break and control character inside it, so
//! nothing a plugin manages to get into a record (a bucket name, a URL, a
//! message) can start a line that passes for the host's own. [`init`] sets
//! it up.

use std::io::{self, IsTerminal, Write};

/// Crates whose debug and trace output is about compiling code, not about
/// the platform: millions of lines per component at `trace`.
const COMPILER_TARGETS: [&str; 4] = [
    "cranelift_codegen",
    "cranelift_frontend",
    "regalloc2",
    "wasmtime_internal_cranelift",
];

/// Send log records to stderr, one line each, filtered by `RUST_LOG` if
/// set, else by `filter` (`--log`).
pub fn init(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter(&filter)))
        .with_writer(OneLine {
            ansi: io::stderr().is_terminal(),
        })
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// The user's filter, with the compiler's internals kept at `info` unless the
/// filter names them itself.
fn log_filter(filter: &str) -> String {
    let mut out = filter.to_owned();
    for target in COMPILER_TARGETS {
        if !filter.contains(target) {
            out.push_str(&format!(",{target}=info"));
        }
    }
    out
}

/// Writes each record to stderr on one line, control characters escaped.
#[derive(Debug, Clone, Copy)]
pub struct OneLine {
    /// Keep ESC, for the colours of a terminal's output.
    pub ansi: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for OneLine {
    type Writer = Record;

    fn make_writer(&'a self) -> Record {
        Record { ansi: self.ansi }
    }
}

/// One record's writer.
#[derive(Debug)]
pub struct Record {
    ansi: bool,
}

impl Write for Record {
    fn write(&mut self, record: &[u8]) -> io::Result<usize> {
        io::stderr().lock().write_all(&escape(record, self.ansi))?;
        Ok(record.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// `record` with its control characters escaped (`\n` as `\\n`, others as
/// `\x..`), but for the line break that ends it, tabs and, with `ansi`, ESC.
fn escape(record: &[u8], ansi: bool) -> Vec<u8> {
    let (body, end) = match record.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (record, &b""[..]),
    };
    let mut out = Vec::with_capacity(record.len() + 8);
    for &byte in body {
        match byte {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.push(byte),
            0x1b if ansi => out.push(byte),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
            _ => out.push(byte),
        }
    }
    out.extend_from_slice(end);
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn a_record_stays_on_one_line() {
        let forged = b"INFO plugin: hello\n WARN convergio_cap_keys: key expired\r\x1b[2J\n";
        let out = String::from_utf8(escape(forged, false)).unwrap();
        assert_eq!(
            out,
            "INFO plugin: hello\\n WARN convergio_cap_keys: key expired\\r\\x1b[2J\n"
        );
        assert_eq!(
            escape(b"\x1b[1mbold\x1b[0m\tok\n", true),
            b"\x1b[1mbold\x1b[0m\tok\n"
        );
    }
}
