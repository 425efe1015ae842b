//! Linking: host capabilities by grant, and each import of another
//! plugin's interface to forwarding functions that call the one granted
//! plugin exporting it, in a store of its own.

use std::sync::{Arc, Mutex, Weak};

use tracing::Instrument;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, Val};

use crate::capabilities;
use crate::capabilities::{ImportClass, classify_import};
use crate::config::PluginSpec;
use crate::error::one_line;
use crate::exports::ExportFn;
use crate::host_state::HostState;
use crate::inner::Inner;
use crate::session::call_in_store;
use crate::slot::{Loaded, Slot};
use crate::values::{is_plain, render_func};
use crate::{Capability, Error, Result};

/// A linker for `spec`'s component: baseline WASI and granted host
/// capabilities, plus forwarding functions to the granted plugins it imports.
pub(crate) fn link(
    inner: &Arc<Inner>,
    spec: &Arc<PluginSpec>,
    component: &Component,
) -> Result<Linker<HostState>> {
    let engine = &inner.engine;
    let mut linker = Linker::new(engine);
    capabilities::add_to_linker(&mut linker)?;
    let mut problems = Vec::new();
    let declared = &spec.manifest.requires.capabilities;
    let ty = component.component_type();
    for (name, import) in ty.imports(engine) {
        let class = classify_import(name);
        let capability = match class {
            ImportClass::Baseline => continue,
            ImportClass::Sockets => {
                problems.push(format!(
                        "plugin `{}` imports `{name}`: raw sockets are never granted to plugins; use wasi:http/outgoing-handler with an `http` grant instead",
                        spec.id
                    ));
                continue;
            }
            ImportClass::Host(cap) => cap,
            ImportClass::Plugin => Capability::Plugins,
        };
        let optional = spec
            .manifest
            .requires
            .optional_capabilities
            .contains(&capability);
        if !spec.grants.grants(capability) && !optional {
            problems.push(denied(spec, name, capability));
            continue;
        }
        if !declared.contains(&capability) && !optional {
            problems.push(format!(
                    "plugin `{}` imports `{name}` but its manifest {} does not declare it; add \"{capability}\" to `capabilities` under [requires]",
                    spec.id,
                    spec.manifest_path.display()
                ));
            continue;
        }
        if !capabilities::provided(capability) {
            problems.push(format!(
                    "plugin `{}` imports `{name}` (capability `{capability}`), which this host does not provide yet",
                    spec.id
                ));
            continue;
        }
        if class == ImportClass::Plugin
            && let Err(problem) = link_plugin_import(inner, &mut linker, spec, name, &import.ty)
        {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(linker)
    } else {
        Err(Error::Denied(problems))
    }
}

/// Resolve import `name` of `spec` to the one granted plugin that exports
/// it and define forwarding functions for each of its functions.
fn link_plugin_import(
    inner: &Arc<Inner>,
    linker: &mut Linker<HostState>,
    spec: &Arc<PluginSpec>,
    name: &str,
    item: &ComponentItem,
) -> std::result::Result<(), String> {
    let ComponentItem::ComponentInstance(wanted) = item else {
        return Err(format!(
            "plugin `{}` imports `{name}`, which is not an interface; only interfaces can be linked to other plugins",
            spec.id
        ));
    };
    let slots = inner.read_slots();
    let exporters: Vec<(&String, &Arc<Slot>)> = slots
        .iter()
        .filter(|(_, s)| {
            s.current
                .load()
                .exports
                .iter()
                .any(|e| e.interface.as_deref() == Some(name))
        })
        .collect();
    let granted: Vec<_> = exporters
        .iter()
        .filter(|(id, _)| spec.grants.plugins.contains(id))
        .collect();
    let (callee_id, callee) = match granted.as_slice() {
        [one] => **one,
        [] if exporters.is_empty() => {
            return Err(format!(
                "plugin `{}` imports `{name}`, which neither the host nor any loaded plugin provides; load a plugin that exports it and grant it with plugins = [\"<id>\"] under [plugin.grants] of `{}` ({})",
                spec.id, spec.id, spec.config_location
            ));
        }
        [] => {
            let ids: Vec<&str> = exporters.iter().map(|(id, _)| id.as_str()).collect();
            return Err(format!(
                "plugin `{}` imports `{name}`, exported by {}, but may not call {}; grant it in platform.toml with plugins = [\"{}\"] under [plugin.grants] of `{}` ({})",
                spec.id,
                ids.join(", "),
                if ids.len() == 1 { "it" } else { "any of them" },
                ids[0],
                spec.id,
                spec.config_location
            ));
        }
        many => {
            let ids: Vec<&str> = many.iter().map(|(id, _)| id.as_str()).collect();
            return Err(format!(
                "plugin `{}` imports `{name}`, which several plugins it may call export ({}); keep only one of them in its `plugins` grant",
                spec.id,
                ids.join(", ")
            ));
        }
    };
    let callee_loaded = callee.current.load_full();
    let mut instance = linker.instance(name).map_err(|e| {
        format!(
            "plugin `{}`: cannot link `{name}`: {}",
            spec.id,
            one_line(&e)
        )
    })?;
    let mut relied = Vec::new();
    for (func_name, func_item) in wanted.exports(&inner.engine) {
        let ComponentItem::ComponentFunc(func_ty) = func_item.ty else {
            continue;
        };
        let signature = render_func(&func_ty);
        let position = callee_loaded.exports.position(name, func_name);
        let export = position
            .and_then(|p| callee_loaded.exports.get(p))
            .ok_or_else(|| {
                format!(
                    "plugin `{}` imports `{name}#{func_name}`, which `{callee_id}` does not export",
                    spec.id
                )
            })?;
        if export.signature != signature {
            return Err(format!(
                "plugin `{}` expects `{name}#{func_name}` to be {signature}, but `{callee_id}` exports {}; rebuild one of them against the same WIT",
                spec.id, export.signature
            ));
        }
        let plain =
            func_ty.params().all(|(_, t)| is_plain(&t)) && func_ty.results().all(|t| is_plain(&t));
        if !plain {
            return Err(format!(
                "`{name}#{func_name}` passes resources, streams or futures, which cannot cross between plugins; use plain data in interfaces that plugins export to each other"
            ));
        }
        relied.push((export.qualified().to_owned(), signature));
        let target = Arc::new(CallTarget {
            runtime: Arc::downgrade(inner),
            caller: spec.id.clone(),
            callee: callee_id.clone(),
            slot: Arc::downgrade(callee),
            interface: name.to_string(),
            function: func_name.to_string(),
            found: Mutex::new((callee_loaded.generation, position.unwrap_or(0))),
        });
        instance
            .func_new_async(func_name, move |_store, _ty, params, results| {
                let target = Arc::clone(&target);
                Box::new(async move { target.call(params, results).await })
            })
            .map_err(|e| {
                format!(
                    "plugin `{}`: cannot link `{name}#{func_name}`: {}",
                    spec.id,
                    one_line(&e)
                )
            })?;
    }
    callee
        .relied_upon
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(relied);
    Ok(())
}

/// A function of another plugin, as linked into a caller.
struct CallTarget {
    runtime: Weak<Inner>,
    caller: String,
    callee: String,
    slot: Weak<Slot>,
    interface: String,
    function: String,
    /// Where the function was in the callee's exports, and in which
    /// version: looked up again only after the callee is reloaded.
    found: Mutex<(u64, usize)>,
}

impl CallTarget {
    /// The function in `loaded`, the callee's current version.
    fn export<'a>(&self, loaded: &'a Loaded) -> Option<&'a ExportFn> {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        if found.0 != loaded.generation {
            *found = (
                loaded.generation,
                loaded.exports.position(&self.interface, &self.function)?,
            );
        }
        loaded.exports.get(found.1)
    }

    async fn call(&self, params: &[Val], results: &mut [Val]) -> wasmtime::Result<()> {
        let span = tracing::debug_span!(
            "convergio.plugins.call",
            caller = %self.caller,
            callee = %self.callee,
            function = %self.function
        );
        self.call_inner(params, results).instrument(span).await
    }

    async fn call_inner(&self, params: &[Val], results: &mut [Val]) -> wasmtime::Result<()> {
        let (Some(inner), Some(slot)) = (self.runtime.upgrade(), self.slot.upgrade()) else {
            wasmtime::bail!("the runtime is shutting down");
        };
        let loaded = slot.current.load_full();
        let Some(export) = self.export(&loaded) else {
            wasmtime::bail!(
                "plugin `{}` no longer exports `{}#{}`",
                self.callee,
                self.interface,
                self.function
            );
        };
        call_in_store(&inner, &slot, &loaded, export, params, results, None)
            .await
            .map_err(|e| {
                wasmtime::format_err!(
                    "call from `{}` to `{}#{}` of `{}` failed: {e}",
                    self.caller,
                    self.interface,
                    self.function,
                    self.callee
                )
            })
    }
}

fn denied(spec: &PluginSpec, import: &str, capability: Capability) -> String {
    format!(
        "plugin `{}` imports `{import}` but is not granted `{capability}`; to allow it, add `{}` under [plugin.grants] of the [[plugin]] with id = \"{}\" ({})",
        spec.id,
        capability.grant_example(),
        spec.id,
        spec.config_location
    )
}
