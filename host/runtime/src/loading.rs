//! Loading: compile a plugin's component, check its imports against its
//! grants and its exports against its kind, prepare its capabilities and
//! link it; and the order plugins load in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use convergio_cap_inference::wit::provider;
use tracing::Instrument;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::capabilities::PluginCaps;
use crate::config::PluginSpec;
use crate::error::one_line;
use crate::exports::Exports;
use crate::inner::Inner;
use crate::slot::Loaded;
use crate::{Error, Result};

/// Compile, check and link one plugin.
pub(crate) async fn load(
    inner: &Arc<Inner>,
    spec: Arc<PluginSpec>,
    generation: u64,
) -> Result<Loaded> {
    let span = tracing::info_span!("convergio.runtime.load", plugin = %spec.id, generation);
    load_inner(inner, spec, generation).instrument(span).await
}

async fn load_inner(inner: &Arc<Inner>, spec: Arc<PluginSpec>, generation: u64) -> Result<Loaded> {
    let fail = |message: String| Error::Load {
        plugin: spec.id.clone(),
        message,
    };
    let engine = inner.engine.clone();
    let path = spec.component_path.clone();
    let started = Instant::now();
    let component = tokio::task::spawn_blocking(move || compile(&engine, &path))
        .await
        .map_err(|e| fail(format!("compilation task failed: {e}")))?
        .map_err(&fail)?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "compiled"
    );

    // Grants first: a component that imports what it may not have is refused whatever else it is.
    let linker = crate::linking::link(inner, &spec, &component)?;
    let exports = Exports::of(&inner.engine, &component);
    let required = spec.manifest.kind.required_export();
    if !exports
        .iter()
        .any(|e| e.interface.as_deref() == Some(required))
    {
        let mut names: Vec<String> = exports.iter().filter_map(|e| e.interface.clone()).collect();
        names.dedup();
        return Err(fail(format!(
            "its manifest says kind = \"{}\", so the component must export `{required}`, but it exports: {}",
            spec.manifest.kind.name(),
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            }
        )));
    }

    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| fail(format!("cannot link: {}", one_line(&e))))?;
    let caps = PluginCaps::prepare(&inner.shared, &inner.services, &spec)
        .map_err(|problems| fail(problems.join("; ")))?;
    let provider = provider::GuestIndices::new(&pre).is_ok();
    Ok(Loaded {
        account: inner.account(&spec.id),
        caps: Arc::new(caps),
        spec,
        pre,
        provider,
        exports,
        generation,
        loaded_at: SystemTime::now(),
    })
}

fn compile(engine: &Engine, path: &Path) -> std::result::Result<Component, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Component::new(engine, &bytes).map_err(|e| {
        format!(
            "{} is not a valid component: {}",
            path.display(),
            one_line(&e)
        )
    })
}

/// Callees before callers (by `plugins` grants); a cycle is an error.
pub(crate) fn load_order(plugins: &[PluginSpec]) -> Result<Vec<&PluginSpec>> {
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    let by_id: BTreeMap<&str, &PluginSpec> = plugins.iter().map(|p| (p.id.as_str(), p)).collect();
    fn visit<'a>(
        spec: &'a PluginSpec,
        by_id: &BTreeMap<&str, &'a PluginSpec>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
        order: &mut Vec<&'a PluginSpec>,
    ) -> Result<()> {
        if done.contains(&spec.id) {
            return Ok(());
        }
        if path.contains(&spec.id) {
            path.push(spec.id.clone());
            return Err(Error::Config(format!(
                "plugins call each other in a cycle ({}); break it in their `plugins` grants",
                path.join(" -> ")
            )));
        }
        path.push(spec.id.clone());
        for callee in &spec.grants.plugins {
            if let Some(dep) = by_id.get(callee.as_str()) {
                visit(dep, by_id, done, path, order)?;
            }
        }
        path.pop();
        done.insert(spec.id.clone());
        order.push(spec);
        Ok(())
    }
    for spec in plugins {
        visit(spec, &by_id, &mut done, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}
