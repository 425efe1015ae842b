//! `convergio:platform/local-model`: native local models
//! (`convergio-cap-local-model`) for plugins granted `models = [...]`:
//! llama.cpp over the model cache, then the Ollama server of
//! `[local-models] ollama`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use convergio_cap_local_model::{
    self as lm, LocalModelCtx, LocalModelView, LocalModels, ModelGrants,
};
use wasmtime::component::Linker;

use super::{CapabilityHost, HostCapability, Services, data_dir};
use crate::config::{Platform, PluginSpec};
use crate::{Capability, Error, Result};

pub(crate) struct LocalModel;

impl HostCapability for LocalModel {
    const CAPABILITY: Option<Capability> = Some(Capability::LocalModel);
    /// The backends, when some plugin is granted `models`.
    type Shared = Option<LocalModels>;
    type Plugin = LocalModelCtx;
    type Store = ();

    fn provides(interface: &str) -> bool {
        interface == "convergio:platform/local-model"
    }

    fn open(platform: &Platform, _: &Services) -> Result<Self::Shared> {
        if platform.plugins.iter().all(|p| p.grants.models.is_empty()) {
            return Ok(None);
        }
        let settings = &platform.local_models;
        let mut backends: Vec<Arc<dyn lm::Backend>> = Vec::new();
        let store = lm::ModelStore::open(models_dir(platform))
            .map_err(|e| Error::capability("local-model", "cannot open the model cache", e))?;
        backends.push(Arc::new(lm::LlamaBackend::new(
            Arc::new(store),
            lm::LlamaOptions {
                threads: settings.threads,
                context_length: settings.context_length,
                workers: settings.workers.max(1) as usize,
                idle_unload: Duration::from_secs(settings.idle_unload_secs.max(1)),
                max_loaded_bytes: settings
                    .max_loaded_mib
                    .map(|mib| mib.saturating_mul(1 << 20)),
            },
        )));
        if let Some(url) = &settings.ollama {
            let ollama = lm::OllamaBackend::new(url)
                .map_err(|e| Error::capability("local-model", "[local-models] ollama", e))?;
            backends.push(Arc::new(ollama));
        }
        Ok(Some(LocalModels::new(backends)))
    }

    fn prepare(
        shared: &Self::Shared,
        _: &Services,
        spec: &Arc<PluginSpec>,
    ) -> std::result::Result<LocalModelCtx, Vec<String>> {
        Ok(LocalModelCtx::new(
            spec.id.clone(),
            ModelGrants::parse(&spec.grants.models),
            shared.clone(),
        ))
    }

    fn store(_: &LocalModelCtx) {}

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        convergio_cap_local_model::add_to_linker(linker, view::<T>)
    }
}

fn view<T: CapabilityHost>(host: &mut T) -> LocalModelView<'_> {
    let parts = host.parts();
    LocalModelView {
        ctx: &parts.plugin.local_model,
        table: parts.table,
    }
}

/// The model cache of `platform` (`[local-models] cache-dir`, default
/// `models` in the data directory).
fn models_dir(platform: &Platform) -> PathBuf {
    platform
        .local_models
        .cache_dir
        .clone()
        .unwrap_or_else(|| data_dir(platform).join("models"))
}
