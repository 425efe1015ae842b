//! Baseline WASI: clocks, random, stdio, environment, exit, streams and the
//! filesystem (the WASI preview 1 adapter that `cargo component` uses always
//! imports it). Every plugin gets it, holding nothing unless granted: no
//! directories, no environment variables, no arguments. Granted directories
//! are opened once, when the plugin is loaded, and shared by its stores.

use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi::filesystem::WasiFilesystemCtx;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::{CapabilityHost, HostCapability, Services};
use crate::config::{Platform, PluginSpec};
use crate::{Capability, Result};

pub(crate) struct Filesystem;

/// A plugin's WASI: its environment and its granted directories, open.
pub(crate) struct FilesystemCtx {
    env: Vec<(String, String)>,
    preopens: WasiFilesystemCtx,
}

impl HostCapability for Filesystem {
    const CAPABILITY: Option<Capability> = None;
    type Shared = ();
    type Plugin = FilesystemCtx;
    type Store = WasiCtx;

    fn provides(interface: &str) -> bool {
        let package = interface.split('/').next().unwrap_or(interface);
        matches!(
            package,
            "wasi:io" | "wasi:clocks" | "wasi:random" | "wasi:cli" | "wasi:filesystem"
        )
        // Only type definitions.
        || interface == "convergio:platform/types"
    }

    fn open(_: &Platform, _: &Services) -> Result<()> {
        Ok(())
    }

    fn prepare(
        _: &(),
        _: &Services,
        spec: &Arc<PluginSpec>,
    ) -> std::result::Result<FilesystemCtx, Vec<String>> {
        let mut builder = WasiCtxBuilder::new();
        let mut problems = Vec::new();
        for dir in &spec.grants.directories {
            let perms = if dir.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            if let Err(e) = builder.preopened_dir(&dir.host, &dir.guest, perms) {
                problems.push(format!(
                    "cannot open granted directory {}: {}",
                    dir.host.display(),
                    crate::error::one_line(&e)
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(FilesystemCtx {
            env: spec
                .grants
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            preopens: builder.build().filesystem().clone(),
        })
    }

    fn store(plugin: &FilesystemCtx) -> WasiCtx {
        let mut builder = WasiCtxBuilder::new();
        builder.envs(&plugin.env);
        let mut ctx = builder.build();
        *ctx.filesystem() = plugin.preopens.clone();
        ctx
    }

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)
    }
}
