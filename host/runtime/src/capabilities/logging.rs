//! `wasi:logging`: a plugin's log lines in the host's tracing output, as
//! fields printed with `Debug` (quoted, line breaks and other control
//! characters escaped), so a plugin cannot write a line that passes for the
//! host's own.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use super::{CapabilityHost, HostCapability, Services};
use crate::bindings::logging;
use crate::config::{Platform, PluginSpec};
use crate::{Capability, Result};

pub(crate) struct Logging;

impl HostCapability for Logging {
    const CAPABILITY: Option<Capability> = Some(Capability::Logging);
    type Shared = ();
    type Plugin = ();
    type Store = ();

    fn provides(interface: &str) -> bool {
        interface.starts_with("wasi:logging/")
    }

    fn open(_: &Platform, _: &Services) -> Result<()> {
        Ok(())
    }

    fn prepare(_: &(), _: &Services, _: &Arc<PluginSpec>) -> std::result::Result<(), Vec<String>> {
        Ok(())
    }

    fn store(_: &()) {}

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        logging::add_to_linker::<T, LoggingView<'static>>(linker, view::<T>)
    }
}

/// A store's view for `wasi:logging`: the plugin's id, and the node call
/// it serves (whose report keeps its warnings).
pub(crate) struct LoggingView<'a> {
    plugin: &'a str,
    call: Option<&'a super::CallContext>,
}

impl HasData for LoggingView<'static> {
    type Data<'a> = LoggingView<'a>;
}

fn view<T: CapabilityHost>(host: &mut T) -> LoggingView<'_> {
    let parts = host.parts();
    LoggingView {
        plugin: &parts.plugin.spec.id,
        call: parts.caps.run_context.as_deref(),
    }
}

impl logging::Host for LoggingView<'_> {
    fn log(&mut self, level: logging::Level, context: String, message: String) {
        let plugin = self.plugin;
        let _span = tracing::trace_span!("convergio.logging.log", plugin).entered();
        if let Some(call) = self.call
            && matches!(
                level,
                logging::Level::Warn | logging::Level::Error | logging::Level::Critical
            )
        {
            call.warn(if context.is_empty() {
                message.clone()
            } else {
                format!("{context}: {message}")
            });
        }
        match level {
            logging::Level::Trace => {
                tracing::trace!(target: "plugin", plugin, context = ?context, message = ?message)
            }
            logging::Level::Debug => {
                tracing::debug!(target: "plugin", plugin, context = ?context, message = ?message)
            }
            logging::Level::Info => {
                tracing::info!(target: "plugin", plugin, context = ?context, message = ?message)
            }
            logging::Level::Warn => {
                tracing::warn!(target: "plugin", plugin, context = ?context, message = ?message)
            }
            logging::Level::Error | logging::Level::Critical => {
                tracing::error!(target: "plugin", plugin, context = ?context, message = ?message)
            }
        }
    }
}
