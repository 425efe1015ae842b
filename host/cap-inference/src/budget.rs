//! Spending limits per key, per plugin and per agent, per UTC calendar
//! month, and per graph run (what one run may spend in all). A request reserves its largest possible cost before it is sent
//! and settles with what the provider reports after.
//!
//! Holds and spending live in a [`BudgetStore`]: the usage [`crate::Ledger`]
//! (SQLite, one data directory, shared by every process that opens it), or
//! [`MemoryBudgetStore`] for one process. A reservation is one atomic step
//! of the store, and so is a settlement (the hold goes, the cost is booked),
//! so requests that run at once, in one process or several, never spend past
//! a budget. A hold its process never settles (the process was killed)
//! lapses at its expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::provider::BoxFuture;
use crate::router::CallRecord;
use crate::{Error, ModelError};

/// What a budget is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// A provider key, `provider/name`.
    Key(String),
    /// A plugin (any kind) by id.
    Plugin(String),
    /// An agent by id.
    Agent(String),
    /// A graph run by id: every run has the same limit, on what it spends
    /// in all.
    Run(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Key(k) => write!(f, "key {k}"),
            Scope::Plugin(p) => write!(f, "plugin {p}"),
            Scope::Agent(a) => write!(f, "agent {a}"),
            Scope::Run(r) => write!(f, "run {r}"),
        }
    }
}

/// One hold in a [`BudgetStore`], across every scope it was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HoldId(pub i64);

/// What a request asks a [`BudgetStore`] to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Each scope of the request that has a budget, with its limit in
    /// millionths of a dollar.
    pub limits: Vec<(Scope, u64)>,
    /// The most the request can cost, in millionths of a dollar.
    pub amount: u64,
    /// When the hold lapses if it is neither settled nor released.
    pub expires: SystemTime,
}

/// Why a hold was not granted.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// A budget cannot afford the request.
    #[error(
        "the budget of {scope} is {} USD; {} USD is spent or held by requests in flight and this request may cost up to {} USD",
        usd(*limit),
        usd(*committed),
        usd(*amount)
    )]
    Exceeded {
        /// The budget that cannot afford it.
        scope: Scope,
        /// Its limit.
        limit: u64,
        /// Spent this month plus held by requests in flight.
        committed: u64,
        /// What the request asked to hold.
        amount: u64,
    },
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] Error),
}

/// A request whose budgets refused it, or could not be checked, is refused
/// with `budget-exceeded`: rather than risk spending past a budget.
impl From<ReserveError> for ModelError {
    fn from(e: ReserveError) -> Self {
        match e {
            ReserveError::Exceeded { .. } => ModelError::BudgetExceeded(e.to_string()),
            ReserveError::Store(e) => ModelError::BudgetExceeded(format!(
                "the budgets of this request cannot be checked ({e}), so it is refused rather than risk spending past them"
            )),
        }
    }
}

/// Where holds and spending are kept. The usage [`crate::Ledger`] keeps them
/// in SQLite for the processes of one data directory; a database server
/// (PostgreSQL) can implement it for several hosts. Each method is one
/// atomic step: two requests that reserve at once, in any process, see each
/// other's holds.
pub trait BudgetStore: Send + Sync {
    /// Hold `hold.amount` in every scope of `hold.limits`, or in none if any
    /// of them cannot afford it: what the scope spent this UTC month plus
    /// what unexpired holds keep, plus the amount, must stay within its
    /// limit (for a [`Scope::Run`]: what the run spent in all). Expired
    /// holds are dropped first.
    fn reserve<'a>(&'a self, hold: &'a Hold) -> BoxFuture<'a, Result<HoldId, ReserveError>>;

    /// Book `call` (its cost counts in its plugin's, agent's and key's
    /// spending from now on) and drop `hold`, in one step. Without a hold,
    /// only book the call.
    fn settle<'a>(
        &'a self,
        hold: Option<HoldId>,
        call: &'a CallRecord<'a>,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Drop `hold` without booking anything.
    fn release(&self, hold: HoldId) -> BoxFuture<'_, Result<(), Error>>;

    /// What `scope` spent this UTC month (a run: in all), in millionths of
    /// a dollar.
    fn month_spent<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Result<u64, Error>>;
}

/// The budgets of the platform: limits, and the store that keeps holds and
/// spending. Scopes without a limit are never checked.
pub struct Budgets {
    limits: HashMap<Scope, u64>,
    /// The limit of every run.
    per_run: Option<u64>,
    store: Arc<dyn BudgetStore>,
    hold_expiry: Duration,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets")
            .field("limits", &self.limits)
            .field("hold_expiry", &self.hold_expiry)
            .finish_non_exhaustive()
    }
}

impl Budgets {
    /// Budgets with these limits (millionths of a dollar), kept in `store`;
    /// a hold lapses `hold_expiry` after it was taken if it is not settled.
    pub fn new(
        limits: impl IntoIterator<Item = (Scope, u64)>,
        store: Arc<dyn BudgetStore>,
        hold_expiry: Duration,
    ) -> Self {
        Self {
            limits: limits.into_iter().collect(),
            per_run: None,
            store,
            hold_expiry,
        }
    }

    /// The same, with a limit on what each graph run spends in all.
    pub fn with_run_limit(mut self, per_run: Option<u64>) -> Self {
        self.per_run = per_run;
        self
    }

    /// The scopes that have a budget, in order.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = self.limits.keys().cloned().collect();
        scopes.sort();
        scopes
    }

    /// The limit of `scope`, if it has a budget.
    pub fn limit(&self, scope: &Scope) -> Option<u64> {
        match scope {
            Scope::Run(_) => self.per_run,
            other => self.limits.get(other).copied(),
        }
    }

    /// How long an unsettled hold lives.
    pub fn hold_expiry(&self) -> Duration {
        self.hold_expiry
    }

    /// Hold `amount` in every scope of `scopes` that has a budget, or in
    /// none if any of them cannot afford it. When no scope has a budget,
    /// the store is not asked.
    pub async fn reserve(&self, scopes: &[Scope], amount: u64) -> Result<Reservation, ModelError> {
        let limits: Vec<(Scope, u64)> = scopes
            .iter()
            .filter_map(|s| self.limit(s).map(|limit| (s.clone(), limit)))
            .collect();
        let mut reservation = Reservation {
            store: self.store.clone(),
            hold: None,
            amount,
        };
        if limits.is_empty() {
            return Ok(reservation);
        }
        let hold = Hold {
            limits,
            amount,
            expires: SystemTime::now() + self.hold_expiry,
        };
        reservation.hold = Some(self.store.reserve(&hold).await?);
        Ok(reservation)
    }

    /// What `scope` spent this UTC month (settled requests only), in
    /// millionths of a dollar; `None` if it has no budget.
    pub async fn spent(&self, scope: &Scope) -> Result<Option<u64>, Error> {
        if self.limit(scope).is_none() {
            return Ok(None);
        }
        self.store.month_spent(scope).await.map(Some)
    }
}

/// Money held for one request until it settles. Every request has one;
/// it holds nothing when no budget applies. Dropping it unsettled releases
/// the hold (in the background, on the current Tokio runtime; without one,
/// the hold lapses at its expiry).
pub struct Reservation {
    store: Arc<dyn BudgetStore>,
    hold: Option<HoldId>,
    amount: u64,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("hold", &self.hold)
            .field("amount", &self.amount)
            .finish()
    }
}

impl Reservation {
    /// The most the request may cost.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The hold in the store, if a budget applies.
    pub fn hold(&self) -> Option<HoldId> {
        self.hold
    }

    /// The request ended as `call` says: book it and drop the hold, in one
    /// step of the store. A store that fails is logged; the hold then lapses
    /// at its expiry.
    pub async fn settle(mut self, call: &CallRecord<'_>) {
        let hold = self.hold.take();
        if let Err(e) = self.store.settle(hold, call).await {
            tracing::error!(error = %e, hold = ?hold, "could not book a model call in the usage ledger");
        }
    }

    /// The request was not sent: drop the hold.
    pub async fn release(mut self) {
        if let Some(hold) = self.hold.take()
            && let Err(e) = self.store.release(hold).await
        {
            tracing::warn!(error = %e, ?hold, "could not release a budget hold; it lapses at its expiry");
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(hold) = self.hold.take() else {
            return;
        };
        let store = self.store.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = store.release(hold).await {
                        tracing::warn!(error = %e, ?hold, "could not release a budget hold; it lapses at its expiry");
                    }
                });
            }
            Err(_) => tracing::debug!(
                ?hold,
                "no async runtime to release a hold; it lapses at its expiry"
            ),
        }
    }
}

/// Holds and spending in this process's memory: what budgets use when no
/// ledger is given ([`crate::Router::new`]). Nothing is shared with other
/// processes and nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryBudgetStore {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    /// First day of the month the spending is for.
    month: i64,
    spent: HashMap<Scope, u64>,
    holds: HashMap<i64, (Vec<Scope>, u64, SystemTime)>,
    next: i64,
}

impl MemoryState {
    /// Start a new month's spending if the month has changed; drop expired holds.
    fn roll(&mut self, now: SystemTime) {
        let month = crate::ledger::month_start(crate::ledger::day_of(now));
        if month != self.month {
            self.month = month;
            // A run's budget is on all it spends, not on a month.
            self.spent.retain(|scope, _| matches!(scope, Scope::Run(_)));
        }
        self.holds.retain(|_, (_, _, expires)| *expires > now);
    }

    fn held(&self, scope: &Scope) -> u64 {
        self.holds
            .values()
            .filter(|(scopes, _, _)| scopes.contains(scope))
            .map(|(_, amount, _)| *amount)
            .fold(0, u64::saturating_add)
    }
}

impl MemoryBudgetStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.roll(SystemTime::now());
        state
    }
}

impl BudgetStore for MemoryBudgetStore {
    fn reserve<'a>(&'a self, hold: &'a Hold) -> BoxFuture<'a, Result<HoldId, ReserveError>> {
        Box::pin(async move {
            let mut state = self.lock();
            for (scope, limit) in &hold.limits {
                let spent = state.spent.get(scope).copied().unwrap_or(0);
                let committed = spent.saturating_add(state.held(scope));
                if committed.saturating_add(hold.amount) > *limit {
                    return Err(ReserveError::Exceeded {
                        scope: scope.clone(),
                        limit: *limit,
                        committed,
                        amount: hold.amount,
                    });
                }
            }
            state.next += 1;
            let id = state.next;
            let scopes = hold.limits.iter().map(|(s, _)| s.clone()).collect();
            state.holds.insert(id, (scopes, hold.amount, hold.expires));
            Ok(HoldId(id))
        })
    }

    fn settle<'a>(
        &'a self,
        hold: Option<HoldId>,
        call: &'a CallRecord<'a>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut state = self.lock();
            if let Some((scopes, _, _)) = hold.and_then(|h| state.holds.remove(&h.0)) {
                for scope in scopes {
                    let spent = state.spent.entry(scope).or_default();
                    *spent = spent.saturating_add(call.usage.cost_micro_usd);
                }
            }
            Ok(())
        })
    }

    fn release(&self, hold: HoldId) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.lock().holds.remove(&hold.0);
            Ok(())
        })
    }

    fn month_spent<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move { Ok(self.lock().spent.get(scope).copied().unwrap_or(0)) })
    }
}

/// Micro-dollars as dollars, for messages.
pub(crate) fn usd(micro: u64) -> String {
    format!("{:.6}", micro as f64 / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Caller, Usage};

    fn call(caller: &Caller, cost: u64) -> CallRecord<'_> {
        CallRecord {
            caller,
            provider: "k",
            key: Some("k/default"),
            model: "m",
            usage: Usage {
                cost_micro_usd: cost,
                ..Usage::default()
            },
            error: None,
        }
    }

    #[tokio::test]
    async fn holds_release_and_settle() {
        let store = Arc::new(MemoryBudgetStore::default());
        let b = Budgets::new(
            [(Scope::Plugin("p".into()), 100)],
            store,
            Duration::from_secs(60),
        );
        let caller = Caller {
            plugin: "p".into(),
            agent: None,
            run: None,
        };
        let scopes = [Scope::Plugin("p".into()), Scope::Key("k/default".into())];
        let r1 = b.reserve(&scopes, 60).await.unwrap();
        assert!(r1.hold().is_some());
        assert!(b.reserve(&scopes, 60).await.is_err(), "held money counts");
        r1.release().await;
        let r2 = b.reserve(&scopes, 60).await.unwrap();
        r2.settle(&call(&caller, 30)).await;
        assert_eq!(b.spent(&Scope::Plugin("p".into())).await.unwrap(), Some(30));
        let err = b.reserve(&scopes, 80).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("budget of plugin p is 0.000100 USD"),
            "{err}"
        );
        assert!(b.reserve(&scopes, 70).await.is_ok());
        assert_eq!(
            b.spent(&Scope::Key("k/default".into())).await.unwrap(),
            None,
            "untracked"
        );
        let free = b.reserve(&[Scope::Key("k/default".into())], 1_000).await;
        assert_eq!(free.unwrap().hold(), None, "no budget, no hold");
    }

    #[tokio::test]
    async fn an_expired_hold_stops_counting() {
        let store = MemoryBudgetStore::default();
        let scope = Scope::Agent("a".into());
        let hold = |expires| Hold {
            limits: vec![(scope.clone(), 10)],
            amount: 10,
            expires,
        };
        store
            .reserve(&hold(SystemTime::now() + Duration::from_millis(50)))
            .await
            .unwrap();
        assert!(
            store
                .reserve(&hold(SystemTime::now() + Duration::from_secs(60)))
                .await
                .is_err()
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            store
                .reserve(&hold(SystemTime::now() + Duration::from_secs(60)))
                .await
                .is_ok()
        );
    }
}
