//! Guest components for Convergio's host tests and benchmarks.
//!
//! Each component is a cargo example built as a `cdylib` for `wasm32-wasip2`,
//! so it comes out of the build as a WASM component:
//!
//! ```text
//! cargo build --target wasm32-wasip2 -p convergio-test-components --examples
//! # -> target/wasm32-wasip2/debug/examples/<name>.wasm
//! ```
//!
//! | Component          | World          | Imports beyond baseline WASI                       | Purpose                                        |
//! |--------------------|----------------|----------------------------------------------------|------------------------------------------------|
//! | `misbehaving_tool` | `tool-plugin`  | `wasi:config/store`, `convergio:platform/events`   | hostile behaviours: spin, hog, recurse, panic… |
//! | `plain_tool`       | `tool-plugin`  | none                                               | healthy baseline and benchmarks                |
//! | `ungranted_logger` | `tool-plugin`  | `wasi:logging/logging`                             | an import the operator did not grant           |
//! | `caller_agent`     | `agent-plugin` | `convergio:platform/tool`                          | component → host → component linking           |
//! | `bench_tool`       | `tool-plugin`  | `wasi:config/store`                                | benchmarks: `noop`, N guest → host calls       |
//! | `fs_tool`          | `tool-plugin`  | `wasi:filesystem`, `wasi:clocks/wall-clock`        | directory and environment grants               |
//! | `storage_tool`     | `tool-plugin`  | `wasi:keyvalue/{store,atomics}`                    | storage grants, quotas, durability, compare-and-swap |
//! | `storage_bench_tool` | `tool-plugin` | `wasi:keyvalue/store`                            | storage benchmark: N gets or sets in one call  |
//! | `keys_tool`        | `tool-plugin`  | `convergio:platform/keys`                          | key grants: references, never secrets          |
//! | `http_tool`        | `tool-plugin`  | `wasi:http/{types,outgoing-handler}`               | outgoing HTTP policy, keys, limits             |
//! | `echo_provider`    | `provider-plugin` | none                                            | the router calling a provider component        |
//! | `chat_agent`       | `agent-plugin` | `convergio:platform/inference`                     | an agent asking models through the host        |
//! | `reload_v1`/`_v2`  | `tool-plugin`  | none                                               | hot reload: same tool, two versions            |
//!
//! "Baseline WASI" is what Rust's standard library pulls in on
//! `wasm32-wasip2`: `wasi:cli` (environment, exit, stdio, terminal),
//! `wasi:io` and, where the code reads a clock, `wasi:clocks`. A world imports
//! much more, but `wit-component` keeps only the imports the code calls.
//!
//! The bindings come straight from `wit-bindgen` and the contract in `wit/`,
//! not from `convergio-sdk`, so these components test the host against the
//! WIT contract itself. See `README.md` beside this crate for which test uses
//! which component.
#![deny(missing_docs)]
