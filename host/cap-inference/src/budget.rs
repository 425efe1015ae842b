//! Spending limits per key, per plugin and per agent, per UTC calendar
//! month, safe under concurrency: a request reserves its largest possible
//! cost before it is sent and settles with what the provider reports after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::ModelError;

/// What a budget is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// A provider key, `provider/name`.
    Key(String),
    /// A plugin (any kind) by id.
    Plugin(String),
    /// An agent by id.
    Agent(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Key(k) => write!(f, "key {k}"),
            Scope::Plugin(p) => write!(f, "plugin {p}"),
            Scope::Agent(a) => write!(f, "agent {a}"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Account {
    limit: u64,
    spent: u64,
    reserved: u64,
}

/// The budgets of the platform. Scopes without a limit are not tracked.
/// Spending starts over on the first day of each UTC month.
#[derive(Debug, Default)]
pub struct Budgets {
    accounts: Mutex<Accounts>,
}

#[derive(Debug, Default)]
struct Accounts {
    /// First day of the month the spending is for.
    month: i64,
    by_scope: HashMap<Scope, Account>,
}

impl Accounts {
    /// Start a new month's spending if the month has changed.
    fn roll(&mut self) {
        let month = crate::ledger::month_start(crate::ledger::day_of(std::time::SystemTime::now()));
        if month != self.month {
            self.month = month;
            for account in self.by_scope.values_mut() {
                account.spent = 0;
            }
        }
    }
}

/// Money held for one request until it settles; dropping it unsettled
/// releases the hold (the request failed before costing anything).
#[derive(Debug)]
pub struct Reservation {
    budgets: Arc<Budgets>,
    held: Vec<(Scope, u64)>,
}

impl Budgets {
    /// Budgets with these limits, in millionths of a dollar.
    pub fn new(limits: impl IntoIterator<Item = (Scope, u64)>) -> Self {
        let mut accounts = Accounts {
            month: 0,
            by_scope: limits
                .into_iter()
                .map(|(scope, limit)| {
                    (
                        scope,
                        Account {
                            limit,
                            ..Account::default()
                        },
                    )
                })
                .collect(),
        };
        accounts.roll();
        Self {
            accounts: Mutex::new(accounts),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Accounts> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts.roll();
        accounts
    }

    /// The scopes that have a budget.
    pub fn scopes(&self) -> Vec<Scope> {
        self.lock().by_scope.keys().cloned().collect()
    }

    /// What `scope` already spent this month, e.g. from the [`crate::Ledger`] at start.
    pub fn set_spent(&self, scope: &Scope, spent: u64) {
        if let Some(a) = self.lock().by_scope.get_mut(scope) {
            a.spent = spent;
        }
    }

    /// Hold `amount` in every scope that has a budget, or none if any of
    /// them cannot afford it.
    pub fn reserve(
        self: &Arc<Self>,
        scopes: &[Scope],
        amount: u64,
    ) -> Result<Reservation, ModelError> {
        let mut accounts = self.lock();
        for scope in scopes {
            if let Some(a) = accounts.by_scope.get(scope) {
                let committed = a.spent.saturating_add(a.reserved);
                if committed.saturating_add(amount) > a.limit {
                    return Err(ModelError::BudgetExceeded(format!(
                        "the budget of {scope} is {} USD; {} USD is spent or held by requests in flight and this request may cost up to {} USD",
                        usd(a.limit),
                        usd(committed),
                        usd(amount)
                    )));
                }
            }
        }
        let mut held = Vec::new();
        for scope in scopes {
            if let Some(a) = accounts.by_scope.get_mut(scope) {
                a.reserved = a.reserved.saturating_add(amount);
                held.push((scope.clone(), amount));
            }
        }
        Ok(Reservation {
            budgets: self.clone(),
            held,
        })
    }

    /// Spent so far in `scope` (settled requests only), micro-dollars.
    pub fn spent(&self, scope: &Scope) -> Option<u64> {
        self.lock().by_scope.get(scope).map(|a| a.spent)
    }
}

impl Reservation {
    /// The amount held.
    pub fn amount(&self) -> u64 {
        self.held.first().map_or(0, |(_, a)| *a)
    }

    /// The request cost `actual`: release the hold and book the cost.
    pub fn settle(mut self, actual: u64) {
        let mut accounts = self.budgets.lock();
        for (scope, amount) in self.held.drain(..) {
            if let Some(a) = accounts.by_scope.get_mut(&scope) {
                a.reserved = a.reserved.saturating_sub(amount);
                a.spent = a.spent.saturating_add(actual);
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut accounts = self.budgets.lock();
        for (scope, amount) in self.held.drain(..) {
            if let Some(a) = accounts.by_scope.get_mut(&scope) {
                a.reserved = a.reserved.saturating_sub(amount);
            }
        }
    }
}

fn usd(micro: u64) -> String {
    format!("{:.6}", micro as f64 / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_release_and_settle() {
        let b = Arc::new(Budgets::new([(Scope::Plugin("p".into()), 100)]));
        let scopes = [Scope::Plugin("p".into()), Scope::Key("k/default".into())];
        let r1 = b.reserve(&scopes, 60).unwrap();
        assert!(b.reserve(&scopes, 60).is_err(), "held money counts");
        drop(r1);
        let r2 = b.reserve(&scopes, 60).unwrap();
        r2.settle(30);
        assert_eq!(b.spent(&Scope::Plugin("p".into())), Some(30));
        let err = b.reserve(&scopes, 80).unwrap_err();
        assert!(
            err.to_string()
                .contains("budget of plugin p is 0.000100 USD"),
            "{err}"
        );
        assert!(b.reserve(&scopes, 70).is_ok());
        assert_eq!(b.spent(&Scope::Key("k/default".into())), None, "untracked");
    }
}
