//! `convergio:platform/inference`: model calls through the router
//! (`convergio-cap-inference`), as the calling plugin (its budgets, its
//! metering; agents and verticals also as an agent).

use std::sync::Arc;

use convergio_cap_inference::{Caller, InferenceCtx, InferenceView};
use wasmtime::component::Linker;

use super::{CapabilityHost, HostCapability, Services, data_dir};
use crate::config::{Platform, PluginSpec};
use crate::{Capability, Error, PluginKind, Result};

pub(crate) struct Inference;

impl HostCapability for Inference {
    const CAPABILITY: Option<Capability> = Some(Capability::Inference);
    type Shared = ();
    type Plugin = InferenceCtx;
    type Store = ();

    fn provides(interface: &str) -> bool {
        interface == "convergio:platform/inference"
    }

    fn open(_: &Platform, _: &Services) -> Result<()> {
        Ok(())
    }

    fn prepare(
        _: &(),
        services: &Services,
        spec: &Arc<PluginSpec>,
    ) -> std::result::Result<InferenceCtx, Vec<String>> {
        let agent = matches!(spec.manifest.kind, PluginKind::Agent | PluginKind::Vertical)
            .then(|| spec.id.clone());
        let caller = Caller {
            plugin: spec.id.clone(),
            agent,
            run: None,
        };
        Ok(InferenceCtx::new(caller, services.router.clone()))
    }

    fn store(_: &InferenceCtx) {}

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        convergio_cap_inference::add_to_linker(linker, view::<T>)
    }
}

fn view<T: CapabilityHost>(host: &mut T) -> InferenceView<'_> {
    let parts = host.parts();
    InferenceView {
        ctx: &parts.plugin.inference,
        run: parts.caps.run_context.as_deref().map(|c| &c.inference),
        table: parts.table,
    }
}

/// The usage ledger of model calls and budget holds: `usage.db` in the
/// data directory.
pub(crate) fn open_ledger(platform: &Platform) -> Result<Arc<convergio_cap_inference::Ledger>> {
    let path = data_dir(platform).join("usage.db");
    convergio_cap_inference::Ledger::open(&path)
        .map(Arc::new)
        .map_err(|e| Error::capability("inference", format!("cannot open {}", path.display()), e))
}
