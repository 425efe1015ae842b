//! The tool shared by `reload_v1` and `reload_v2`. The including example
//! defines `const VERSION: &str` (a JSON string, e.g. `"\"v1\""`), which is
//! the only difference between the two builds.

/// Bindings generated from the WIT contract. The export glue that
/// wit-bindgen emits is `unsafe` (raw ABI, `export_name`), so the workspace's
/// `unsafe_code` denial is lifted for this module only.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "convergio:platform/tool-plugin@0.1.0",
        generate_all,
    });

    use super::ReloadTool;

    export!(ReloadTool);
}

use std::hint::black_box;

use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};

/// Size of the buffer hashed on every call.
const BUFFER_LEN: usize = 4096;
/// How many times the buffer is hashed on every call.
const ROUNDS: usize = 50;

struct ReloadTool;

impl Guest for ReloadTool {
    fn describe() -> Vec<ToolInfo> {
        vec![ToolInfo {
            name: "version".to_owned(),
            description: "Returns the version of this build as a JSON string.".to_owned(),
            parameters: r#"{"type":"object"}"#.to_owned(),
        }]
    }

    fn invoke(name: String, _arguments: String) -> Result<String, ToolError> {
        match name.as_str() {
            "version" => {
                black_box(fixed_work());
                Ok(super::VERSION.to_owned())
            }
            _ => Err(ToolError::UnknownTool(name)),
        }
    }
}

/// A small, fixed amount of work so that a call takes a little time: FNV-1a
/// over a 4 KiB buffer, `ROUNDS` times, hidden from the optimizer.
fn fixed_work() -> u64 {
    let buffer = [0xA5_u8; BUFFER_LEN];
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..ROUNDS {
        for &byte in black_box(&buffer) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        hash = black_box(hash);
    }
    hash
}
