//! The functions a component exports, and their lookup by the names users
//! and other plugins give them: found once per loaded version, so a call
//! looks its function up in a map instead of scanning and formatting names.

use std::collections::HashMap;

use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex};

use crate::values::render_func;
use crate::{Error, Result};

/// One exported function of a loaded component.
#[derive(Debug, Clone)]
pub struct ExportFn {
    /// Exporting interface, e.g. `convergio:platform/tool@0.1.0`; none for a top-level function.
    pub interface: Option<String>,
    /// Function name.
    pub name: String,
    /// Structural signature.
    pub signature: String,
    /// `interface#name`, or `name` for a top-level function.
    qualified: String,
    pub(crate) ty: ComponentFunc,
    pub(crate) index: ComponentExportIndex,
}

impl ExportFn {
    /// `interface#name`, or `name` for a top-level function.
    pub fn qualified(&self) -> &str {
        &self.qualified
    }

    fn new(
        interface: Option<String>,
        name: String,
        ty: ComponentFunc,
        index: ComponentExportIndex,
    ) -> Self {
        let qualified = match &interface {
            Some(i) => format!("{i}#{name}"),
            None => name.clone(),
        };
        Self {
            signature: render_func(&ty),
            interface,
            name,
            qualified,
            ty,
            index,
        }
    }
}

fn list(engine: &Engine, component: &Component) -> Vec<ExportFn> {
    let mut out = Vec::new();
    for (name, export) in component.component_type().exports(engine) {
        match export.ty {
            ComponentItem::ComponentFunc(ty) => {
                if let Some(index) = component.get_export_index(None, name) {
                    out.push(ExportFn::new(None, name.to_string(), ty, index));
                }
            }
            ComponentItem::ComponentInstance(instance) => {
                let Some(instance_index) = component.get_export_index(None, name) else {
                    continue;
                };
                for (func_name, item) in instance.exports(engine) {
                    let ComponentItem::ComponentFunc(ty) = item.ty else {
                        continue;
                    };
                    if let Some(index) =
                        component.get_export_index(Some(&instance_index), func_name)
                    {
                        out.push(ExportFn::new(
                            Some(name.to_string()),
                            func_name.to_string(),
                            ty,
                            index,
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// A loaded version's exports, with the names each can be called by.
pub(crate) struct Exports {
    list: Vec<ExportFn>,
    /// Every name a query may use (`interface#name`, `short.name`, `name`)
    /// → the export it names, or `None` when several share it.
    by_name: HashMap<String, Option<usize>>,
}

impl Exports {
    /// The exports of `component`.
    pub(crate) fn of(engine: &Engine, component: &Component) -> Self {
        let list = list(engine, component);
        let mut by_name: HashMap<String, Option<usize>> = HashMap::new();
        for (position, export) in list.iter().enumerate() {
            let mut names = vec![export.name.clone(), export.qualified.clone()];
            if let Some(interface) = &export.interface {
                let short = interface
                    .split('@')
                    .next()
                    .and_then(|i| i.rsplit('/').next())
                    .unwrap_or(interface);
                names.push(format!("{short}.{}", export.name));
            }
            names.sort();
            names.dedup();
            for name in names {
                by_name
                    .entry(name)
                    .and_modify(|found| {
                        if *found != Some(position) {
                            *found = None;
                        }
                    })
                    .or_insert(Some(position));
            }
        }
        Self { list, by_name }
    }

    /// Every export, in the component's order.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, ExportFn> {
        self.list.iter()
    }

    /// The export at `position` (as [`Exports::position`] returned it).
    pub(crate) fn get(&self, position: usize) -> Option<&ExportFn> {
        self.list.get(position)
    }

    /// Where function `name` of `interface` is.
    pub(crate) fn position(&self, interface: &str, name: &str) -> Option<usize> {
        self.list
            .iter()
            .position(|e| e.interface.as_deref() == Some(interface) && e.name == name)
    }

    /// The export `function` names in `plugin`: `interface#name`,
    /// `short.name` or `name`, if exactly one export has that name.
    pub(crate) fn find(&self, plugin: &str, function: &str) -> Result<&ExportFn> {
        match self.by_name.get(function) {
            Some(Some(position)) => Ok(&self.list[*position]),
            found => Err(Error::UnknownFunction {
                plugin: plugin.to_string(),
                function: if found.is_none() {
                    function.to_string()
                } else {
                    format!("{function}` (ambiguous; qualify it as `interface#function`)`")
                },
                available: self
                    .list
                    .iter()
                    .map(ExportFn::qualified)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}
