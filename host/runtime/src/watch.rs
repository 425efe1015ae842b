//! Hot reload: watch component files and reload the plugins whose file changed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::{Error, Result, Runtime};

/// Changes closer together than this are one change (a build writes a file in steps).
const SETTLE: Duration = Duration::from_millis(250);

/// Keeps the watcher alive; dropping it stops watching.
#[derive(Debug)]
pub struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
}

impl Runtime {
    /// Watch every plugin's component file; when one changes, reload that
    /// plugin in the background. Failures are logged and kept in
    /// [`PluginInfo::last_error`](crate::PluginInfo); the old version keeps running.
    /// Must be called inside a tokio runtime.
    pub fn watch(&self) -> Result<WatchHandle> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::Config(format!("hot reload needs a tokio runtime: {e}")))?;
        let mut by_path: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for info in self.plugins() {
            let path = info
                .component
                .canonicalize()
                .unwrap_or(info.component.clone());
            by_path.entry(path).or_default().push(info.id);
        }
        let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
        let mut watcher = notify::recommended_watcher(tx)
            .map_err(|e| Error::Config(format!("cannot start the file watcher: {e}")))?;
        let dirs: BTreeSet<PathBuf> = by_path
            .keys()
            .filter_map(|p| p.parent().map(PathBuf::from))
            .collect();
        for dir in &dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| Error::Config(format!("cannot watch {}: {e}", dir.display())))?;
        }
        // The thread holds the runtime weakly: dropping the last `Runtime` ends it.
        let runtime = std::sync::Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("convergio-watch".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut changed = BTreeSet::new();
                    collect(&first, &by_path, &mut changed);
                    // Let the writer finish, folding further events into this change.
                    while let Ok(next) = rx.recv_timeout(SETTLE) {
                        collect(&next, &by_path, &mut changed);
                    }
                    let Some(inner) = runtime.upgrade() else {
                        break;
                    };
                    let runtime = Runtime { inner };
                    for id in changed {
                        tracing::info!(plugin = %id, "component file changed; reloading");
                        // Errors are logged and recorded by `reload`.
                        let _ = handle.block_on(runtime.reload(&id));
                    }
                }
            })
            .map_err(|e| Error::Config(format!("cannot start the watch thread: {e}")))?;
        Ok(WatchHandle { _watcher: watcher })
    }
}

fn collect(
    event: &notify::Result<notify::Event>,
    by_path: &BTreeMap<PathBuf, Vec<String>>,
    out: &mut BTreeSet<String>,
) {
    let Ok(event) = event else { return };
    if event.kind.is_access() {
        return;
    }
    for path in &event.paths {
        let path = path.canonicalize().unwrap_or(path.clone());
        if let Some(ids) = by_path.get(&path) {
            out.extend(ids.iter().cloned());
        }
    }
}
