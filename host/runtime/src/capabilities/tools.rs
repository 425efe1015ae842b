//! `convergio:platform/tools`: a plugin calls the tools of the plugins in its
//! `plugins` grant by `plugin/tool` name, one at a time or several at once.
//!
//! The calls go through the runtime like any plugin-to-plugin call (the
//! callee's own store, grants and limits); the capability holds the
//! runtime weakly, in a cell filled once the runtime exists (plugins are
//! loaded, and so prepared, before it is whole).

use std::sync::{Arc, OnceLock, Weak};

use serde_json::{Value, json};
use wasmtime::component::{HasData, Linker};

use super::{CapabilityHost, HostCapability, Services};
use crate::config::{Platform, PluginSpec};
use crate::inner::Inner;
use crate::{Capability, PluginKind, Result, Runtime};

#[allow(missing_docs, missing_debug_implementations)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        inline: "
            package convergio:tools-host;
            world tools-host {
                import convergio:platform/tools@0.1.0;
            }
        ",
        world: "convergio:tools-host/tools-host",
        imports: { default: async },
    });
}

use bindings::convergio::platform::tools as wit;
use wit::ToolCallError as ToolError;

/// The runtime, once it exists.
pub(crate) type RuntimeCell = Arc<OnceLock<Weak<Inner>>>;

pub(crate) struct ToolsCapability;

/// One plugin's view: the runtime and who is calling.
#[derive(Clone)]
pub(crate) struct ToolsPlugin {
    runtime: RuntimeCell,
    caller: Arc<PluginSpec>,
}

impl HostCapability for ToolsCapability {
    // Linked for every plugin, like `run-context`: it grants nothing by
    // itself; the `plugins` grant says which tools a call may reach.
    const CAPABILITY: Option<Capability> = None;
    type Shared = RuntimeCell;
    type Plugin = ToolsPlugin;
    type Store = ();

    fn provides(interface: &str) -> bool {
        interface == "convergio:platform/tools"
    }

    fn open(_: &Platform, _: &Services) -> Result<RuntimeCell> {
        Ok(RuntimeCell::default())
    }

    fn prepare(
        shared: &RuntimeCell,
        _: &Services,
        spec: &Arc<PluginSpec>,
    ) -> std::result::Result<ToolsPlugin, Vec<String>> {
        Ok(ToolsPlugin {
            runtime: Arc::clone(shared),
            caller: Arc::clone(spec),
        })
    }

    fn store(_: &ToolsPlugin) {}

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasTools>(linker, view::<T>)
    }
}

struct HasTools;

impl HasData for HasTools {
    type Data<'a> = &'a ToolsPlugin;
}

fn view<T: CapabilityHost>(host: &mut T) -> &ToolsPlugin {
    &host.parts().plugin.tools
}

impl ToolsPlugin {
    fn runtime(&self) -> std::result::Result<Runtime, ToolError> {
        self.runtime
            .get()
            .and_then(Weak::upgrade)
            .map(|inner| Runtime { inner })
            .ok_or_else(|| ToolError::Failed("the runtime is shutting down".to_owned()))
    }

    /// Call `name` (`plugin/tool`) with `arguments` (JSON text).
    async fn call(&self, name: &str, arguments: &str) -> std::result::Result<String, ToolError> {
        let Some((plugin, tool)) = name.split_once('/') else {
            return Err(ToolError::UnknownTool(format!(
                "`{name}` is not a tool name; tools are named `plugin/tool`, e.g. `search/web`"
            )));
        };
        let caller = &self.caller;
        if !caller.grants.plugins.iter().any(|p| p == plugin) {
            return Err(ToolError::Denied(format!(
                "plugin `{}` may not call tools of `{plugin}`; to allow it, add \"{plugin}\" to plugins = [...] under [plugin.grants] of the [[plugin]] with id = \"{}\" ({})",
                caller.id, caller.id, caller.config_location
            )));
        }
        let runtime = self.runtime()?;
        let result = runtime
            .invoke_in_run(
                &caller.id,
                plugin,
                "invoke",
                &json!([tool, arguments]),
                None,
            )
            .await
            .map_err(|e| ToolError::Failed(format!("`{name}`: {e}")))?;
        tool_result(name, result)
    }
}

/// A tool plugin's `result<string, tool-error>`, as JSON, back to types.
fn tool_result(name: &str, result: Value) -> std::result::Result<String, ToolError> {
    if let Some(ok) = result.get("ok") {
        return Ok(ok.as_str().map_or_else(|| ok.to_string(), str::to_owned));
    }
    let Some(Value::Object(err)) = result.get("err") else {
        return Err(ToolError::Failed(format!(
            "`{name}` answered {result}, not a tool result"
        )));
    };
    let (case, message) = err
        .iter()
        .next()
        .map(|(case, m)| (case.as_str(), m.as_str().unwrap_or_default().to_owned()))
        .unwrap_or(("failed", String::new()));
    Err(match case {
        "invalid-arguments" => ToolError::InvalidArguments(message),
        "unknown-tool" => ToolError::UnknownTool(message),
        "denied" => ToolError::Denied(message),
        _ => ToolError::Failed(message),
    })
}

impl wit::Host for &ToolsPlugin {
    async fn list(&mut self) -> Vec<wit::ToolEntry> {
        let Ok(runtime) = self.runtime() else {
            return Vec::new();
        };
        let mut entries = Vec::new();
        for plugin in &self.caller.grants.plugins {
            if runtime.plugin_kind(plugin) != Some(PluginKind::Tool) {
                continue;
            }
            let described = runtime
                .invoke_in_run(&self.caller.id, plugin, "describe", &json!([]), None)
                .await;
            let tools = match described {
                Ok(Value::Array(tools)) => tools,
                Ok(other) => {
                    tracing::warn!(plugin = %plugin, "`describe` answered {other}, not a list of tools");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(plugin = %plugin, "`describe` failed: {e}");
                    continue;
                }
            };
            for tool in tools {
                let text = |key: &str| tool.get(key).and_then(Value::as_str).unwrap_or_default();
                entries.push(wit::ToolEntry {
                    name: format!("{plugin}/{}", text("name")),
                    description: text("description").to_owned(),
                    parameters: text("parameters").to_owned(),
                });
            }
        }
        entries
    }

    async fn call(
        &mut self,
        name: String,
        arguments: String,
    ) -> std::result::Result<String, ToolError> {
        ToolsPlugin::call(self, &name, &arguments).await
    }

    async fn call_all(
        &mut self,
        calls: Vec<(String, String)>,
    ) -> Vec<std::result::Result<String, ToolError>> {
        // Each call on a task of its own, so they run at once; gathered in
        // the order asked.
        let mut tasks = tokio::task::JoinSet::new();
        for (index, (name, arguments)) in calls.into_iter().enumerate() {
            let this = ToolsPlugin::clone(self);
            tasks.spawn(async move { (index, this.call(&name, &arguments).await) });
        }
        let mut results: Vec<Option<std::result::Result<String, ToolError>>> =
            (0..tasks.len()).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((index, result)) => results[index] = Some(result),
                Err(e) => tracing::warn!("a tool call task failed: {e}"),
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ToolError::Failed("the call panicked".to_owned()))))
            .collect()
    }
}
