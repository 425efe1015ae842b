//! Following a run: catch up from the store, then follow the broadcast,
//! and re-read from the store whenever the broadcast cannot say what came
//! next (the subscriber lagged, or an entry is missing), so a slow
//! subscriber never loses an entry or sees one twice.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::{Entry, Error, Result, RunId, RunStore, Seq};

/// Entries read from the store at a time.
const PAGE: usize = 256;

/// A run's entries in order, from a seq on: those journaled already, then
/// each one as it commits. Made by [`crate::subscribe`].
#[derive(Debug)]
pub struct Subscription {
    store: Arc<dyn RunStore>,
    run: RunId,
    /// The last seq handed out.
    last: Seq,
    /// Read from the store, not yet handed out.
    pending: VecDeque<Entry>,
    /// Whether the store had nothing after `last` when it was last read:
    /// from then on the broadcast says what comes next.
    caught_up: bool,
    live: broadcast::Receiver<Arc<Entry>>,
}

impl Subscription {
    /// Follow `run` after seq `after`.
    pub fn new(store: Arc<dyn RunStore>, run: RunId, after: Seq) -> Self {
        // Subscribe before the first read: an entry committed in between is
        // then in both, and the duplicate is skipped by seq.
        let live = store.events();
        Self {
            store,
            run,
            last: after,
            pending: VecDeque::new(),
            caught_up: false,
            live,
        }
    }

    /// The last seq handed out (where a new subscription would resume).
    pub fn last_seq(&self) -> Seq {
        self.last
    }

    /// The next entry, waiting for it to commit if need be. `Ok(None)` once
    /// the store is closed and every committed entry was handed out.
    pub async fn next(&mut self) -> Result<Option<Entry>> {
        loop {
            if let Some(entry) = self.pending.pop_front() {
                self.last = entry.seq;
                return Ok(Some(entry));
            }
            if !self.caught_up {
                self.read_page().await?;
                continue;
            }
            match self.live.recv().await {
                Ok(entry) if entry.run != self.run || entry.seq <= self.last => {}
                Ok(entry) if entry.seq == self.last + 1 => {
                    self.last = entry.seq;
                    return Ok(Some(Entry::clone(&entry)));
                }
                // A gap: what is missing is in the store.
                Ok(_) | Err(RecvError::Lagged(_)) => self.caught_up = false,
                Err(RecvError::Closed) => {
                    self.read_page().await?;
                    if self.pending.is_empty() {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Read the next page after `last` from the store, in a blocking task.
    async fn read_page(&mut self) -> Result<()> {
        let store = Arc::clone(&self.store);
        let run = self.run.clone();
        let after = self.last;
        let page = tokio::task::spawn_blocking(move || store.read_after(&run, after, PAGE))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        self.caught_up = page.len() < PAGE;
        self.pending.extend(page);
        Ok(())
    }
}
