//! The usage ledger: every model call, summed per UTC day, plugin, agent,
//! provider, model and key, in SQLite (`usage.db` in the data directory),
//! and the budget holds of requests in flight. It is the [`BudgetStore`] of
//! the processes that share a data directory: a reservation and a
//! settlement are each one `IMMEDIATE` transaction, so two processes take
//! turns, and a budget's spending is what the month's rows say, so a
//! restart forgets nothing.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::budget::{BudgetStore, Hold, HoldId, ReserveError, Scope};
use crate::provider::BoxFuture;
use crate::router::CallRecord;
use crate::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS model_usage (
    day            INTEGER NOT NULL,
    plugin         TEXT    NOT NULL,
    agent          TEXT    NOT NULL,
    provider       TEXT    NOT NULL,
    model          TEXT    NOT NULL,
    key            TEXT    NOT NULL,
    calls          INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL,
    errors         INTEGER NOT NULL,
    PRIMARY KEY (day, plugin, agent, provider, model, key)
) STRICT;
-- What each graph run's model calls used, per plugin and agent: the
-- spending of a run's budget (all of it, not a month's).
CREATE TABLE IF NOT EXISTS run_usage (
    run            TEXT    NOT NULL,
    plugin         TEXT    NOT NULL,
    agent          TEXT    NOT NULL,
    calls          INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL,
    errors         INTEGER NOT NULL,
    PRIMARY KEY (run, plugin, agent)
) STRICT;
-- One row per request in flight that holds budget money. AUTOINCREMENT:
-- an id is never reused, so a late release cannot drop another's hold.
CREATE TABLE IF NOT EXISTS budget_holds (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    amount      INTEGER NOT NULL,
    -- Unix milliseconds; past it the hold no longer counts.
    expires_ms  INTEGER NOT NULL
) STRICT;
-- The budgets (key, plugin, agent or run) each hold counts against.
CREATE TABLE IF NOT EXISTS budget_hold_scopes (
    hold   INTEGER NOT NULL,
    kind   TEXT    NOT NULL,
    scope  TEXT    NOT NULL,
    PRIMARY KEY (hold, kind, scope)
) STRICT;
CREATE INDEX IF NOT EXISTS budget_hold_scopes_by_scope ON budget_hold_scopes (kind, scope);
";

/// One row of a usage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLine {
    /// Plugin that called.
    pub plugin: String,
    /// Agent, if any.
    pub agent: Option<String>,
    /// `provider/model`.
    pub model: String,
    /// Calls.
    pub calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in millionths of a dollar.
    pub cost_micro_usd: u64,
    /// Failed calls.
    pub errors: u64,
}

/// The usage ledger. Cheap to clone; clones share one connection.
#[derive(Debug, Clone)]
pub struct Ledger {
    conn: Arc<Mutex<Connection>>,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Unix milliseconds of `time`.
fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The column of `model_usage` and the value a scope is kept under.
fn column(scope: &Scope) -> (&'static str, &str) {
    match scope {
        Scope::Key(k) => ("key", k),
        Scope::Plugin(p) => ("plugin", p),
        Scope::Agent(a) => ("agent", a),
        Scope::Run(r) => ("run", r),
    }
}

/// One call, owned, as a row of `model_usage` (to cross into a blocking task).
#[derive(Debug, Clone)]
struct UsageRow {
    run: Option<String>,
    plugin: String,
    agent: String,
    provider: String,
    model: String,
    key: String,
    input_tokens: i64,
    output_tokens: i64,
    cost: i64,
    error: bool,
}

impl From<&CallRecord<'_>> for UsageRow {
    fn from(call: &CallRecord<'_>) -> Self {
        Self {
            run: call.caller.run.as_ref().map(|r| r.run.to_string()),
            plugin: call.caller.plugin.clone(),
            agent: call.caller.agent.clone().unwrap_or_default(),
            provider: call.provider.to_owned(),
            model: call.model.to_owned(),
            key: call.key.unwrap_or_default().to_owned(),
            input_tokens: i64::from(call.usage.input_tokens),
            output_tokens: i64::from(call.usage.output_tokens),
            cost: to_i64(call.usage.cost_micro_usd),
            error: call.error.is_some(),
        }
    }
}

fn insert_usage(conn: &Connection, row: &UsageRow, at: SystemTime) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO model_usage (day, plugin, agent, provider, model, key, calls,
                                  input_tokens, output_tokens, cost_micro_usd, errors)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?10)
         ON CONFLICT (day, plugin, agent, provider, model, key) DO UPDATE SET
             calls = calls + 1,
             input_tokens = input_tokens + excluded.input_tokens,
             output_tokens = output_tokens + excluded.output_tokens,
             cost_micro_usd = cost_micro_usd + excluded.cost_micro_usd,
             errors = errors + excluded.errors",
    )?
    .execute(params![
        day_of(at),
        row.plugin,
        row.agent,
        row.provider,
        row.model,
        row.key,
        row.input_tokens,
        row.output_tokens,
        row.cost,
        i64::from(row.error),
    ])?;
    if let Some(run) = &row.run {
        conn.prepare_cached(
            "INSERT INTO run_usage (run, plugin, agent, calls, input_tokens, output_tokens,
                                    cost_micro_usd, errors)
             VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7)
             ON CONFLICT (run, plugin, agent) DO UPDATE SET
                 calls = calls + 1,
                 input_tokens = input_tokens + excluded.input_tokens,
                 output_tokens = output_tokens + excluded.output_tokens,
                 cost_micro_usd = cost_micro_usd + excluded.cost_micro_usd,
                 errors = errors + excluded.errors",
        )?
        .execute(params![
            run,
            row.plugin,
            row.agent,
            row.input_tokens,
            row.output_tokens,
            row.cost,
            i64::from(row.error),
        ])?;
    }
    Ok(())
}

fn spent_since(conn: &Connection, scope: &Scope, since_day: i64) -> rusqlite::Result<u64> {
    if let Scope::Run(run) = scope {
        // A run's budget is on all it spent.
        let sum: i64 = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(cost_micro_usd), 0) FROM run_usage WHERE run = ?1",
            )?
            .query_row([run], |row| row.get(0))?;
        return Ok(to_u64(sum));
    }
    let (column, value) = column(scope);
    let sum: i64 = conn
        .prepare_cached(&format!(
            "SELECT COALESCE(SUM(cost_micro_usd), 0) FROM model_usage WHERE {column} = ?1 AND day >= ?2"
        ))?
        .query_row(params![value, since_day], |row| row.get(0))?;
    Ok(to_u64(sum))
}

fn held_now(conn: &Connection, scope: &Scope, now_ms: i64) -> rusqlite::Result<u64> {
    let (kind, value) = column(scope);
    let sum: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(h.amount), 0) FROM budget_hold_scopes s
             JOIN budget_holds h ON h.id = s.hold
             WHERE s.kind = ?1 AND s.scope = ?2 AND h.expires_ms > ?3",
        )?
        .query_row(params![kind, value, now_ms], |row| row.get(0))?;
    Ok(to_u64(sum))
}

fn delete_hold(tx: &Transaction<'_>, hold: HoldId) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM budget_hold_scopes WHERE hold = ?1")?
        .execute([hold.0])?;
    tx.prepare_cached("DELETE FROM budget_holds WHERE id = ?1")?
        .execute([hold.0])?;
    Ok(())
}

/// The reservation, in one `IMMEDIATE` transaction: no other connection
/// writes between the check and the hold.
fn reserve_in(conn: &mut Connection, hold: &Hold, now: SystemTime) -> Result<HoldId, ReserveError> {
    let now_ms = unix_ms(now);
    let since = month_start(day_of(now));
    convergio_sqlite::retry_busy(|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "DELETE FROM budget_hold_scopes WHERE hold IN
                 (SELECT id FROM budget_holds WHERE expires_ms <= ?1)",
        )?
        .execute([now_ms])?;
        tx.prepare_cached("DELETE FROM budget_holds WHERE expires_ms <= ?1")?
            .execute([now_ms])?;
        for (scope, limit) in &hold.limits {
            let committed =
                spent_since(&tx, scope, since)?.saturating_add(held_now(&tx, scope, now_ms)?);
            if committed.saturating_add(hold.amount) > *limit {
                // Dropping `tx` rolls back (only expired holds were deleted).
                return Ok(Err(ReserveError::Exceeded {
                    scope: scope.clone(),
                    limit: *limit,
                    committed,
                    amount: hold.amount,
                }));
            }
        }
        tx.prepare_cached("INSERT INTO budget_holds (amount, expires_ms) VALUES (?1, ?2)")?
            .execute(params![to_i64(hold.amount), unix_ms(hold.expires)])?;
        let id = HoldId(tx.last_insert_rowid());
        for (scope, _) in &hold.limits {
            let (kind, value) = column(scope);
            tx.prepare_cached(
                "INSERT OR IGNORE INTO budget_hold_scopes (hold, kind, scope) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id.0, kind, value])?;
        }
        tx.commit()?;
        Ok(Ok(id))
    })
    .map_err(Error::from)?
}

/// Book `row` and drop `hold`, in one `IMMEDIATE` transaction.
fn settle_in(
    conn: &mut Connection,
    hold: Option<HoldId>,
    row: &UsageRow,
    at: SystemTime,
) -> rusqlite::Result<()> {
    convergio_sqlite::retry_busy(|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_usage(&tx, row, at)?;
        if let Some(hold) = hold {
            delete_hold(&tx, hold)?;
        }
        tx.commit()
    })
}

/// Days since 1970-01-01 (UTC) of `time`.
pub fn day_of(time: SystemTime) -> i64 {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs / 86_400).unwrap_or(i64::MAX)
}

/// The first day (days since 1970-01-01) of the UTC month that holds `day`.
pub fn month_start(day: i64) -> i64 {
    // Civil-from-days and back (Howard Hinnant's algorithms), day set to 1.
    let z = day + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    day - (d - 1)
}

impl Ledger {
    /// Open (creating if needed) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = convergio_sqlite::open_wal(path, convergio_sqlite::Synchronous::Normal)
            .map_err(|e| match e {
                convergio_sqlite::OpenError::Sqlite(source) => Error::Open {
                    path: path.to_path_buf(),
                    source,
                },
                convergio_sqlite::OpenError::NotWal { mode, .. } => Error::NoWal {
                    path: path.to_path_buf(),
                    mode,
                },
            })?;
        convergio_sqlite::create_schema(&mut conn, SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `work` on the connection in Tokio's blocking pool: SQLite may
    /// wait for another process's lock, which must not stall an async worker.
    fn blocking<T, E>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, E>>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let conn = self.conn.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                work(&mut conn)
            })
            .await
            .map_err(|e| E::from(Error::from(e)))?
        })
    }

    /// Add one call.
    pub fn record(&self, call: &CallRecord<'_>, at: SystemTime) -> Result<()> {
        Ok(insert_usage(&self.conn(), &UsageRow::from(call), at)?)
    }

    /// What `scope` spent from `since_day` on, in millionths of a dollar.
    pub fn spent(&self, scope: &Scope, since_day: i64) -> Result<u64> {
        Ok(spent_since(&self.conn(), scope, since_day)?)
    }

    /// What unexpired holds keep in `scope` now, in millionths of a dollar.
    pub fn held(&self, scope: &Scope) -> Result<u64> {
        Ok(held_now(&self.conn(), scope, unix_ms(SystemTime::now()))?)
    }

    /// Usage from `since_day` on, per plugin, agent and model, costliest first.
    pub fn report(&self, since_day: i64) -> Result<Vec<UsageLine>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT plugin, agent, provider || '/' || model, SUM(calls), SUM(input_tokens),
                    SUM(output_tokens), SUM(cost_micro_usd), SUM(errors)
             FROM model_usage WHERE day >= ?1
             GROUP BY plugin, agent, provider, model
             ORDER BY SUM(cost_micro_usd) DESC, plugin, agent, provider, model",
        )?;
        let rows = stmt.query_map(params![since_day], |row| {
            let agent: String = row.get(1)?;
            Ok(UsageLine {
                plugin: row.get(0)?,
                agent: (!agent.is_empty()).then_some(agent),
                model: row.get(2)?,
                calls: to_u64(row.get(3)?),
                input_tokens: to_u64(row.get(4)?),
                output_tokens: to_u64(row.get(5)?),
                cost_micro_usd: to_u64(row.get(6)?),
                errors: to_u64(row.get(7)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl BudgetStore for Ledger {
    fn reserve<'a>(&'a self, hold: &'a Hold) -> BoxFuture<'a, Result<HoldId, ReserveError>> {
        let hold = hold.clone();
        self.blocking(move |conn| reserve_in(conn, &hold, SystemTime::now()))
    }

    fn settle<'a>(
        &'a self,
        hold: Option<HoldId>,
        call: &'a CallRecord<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        let row = UsageRow::from(call);
        self.blocking(move |conn| Ok(settle_in(conn, hold, &row, SystemTime::now())?))
    }

    fn release(&self, hold: HoldId) -> BoxFuture<'_, Result<()>> {
        self.blocking(move |conn| {
            Ok(convergio_sqlite::retry_busy(|| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                delete_hold(&tx, hold)?;
                tx.commit()
            })?)
        })
    }

    fn month_spent<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Result<u64>> {
        let scope = scope.clone();
        self.blocking(move |conn| {
            let since = month_start(day_of(SystemTime::now()));
            Ok(spent_since(conn, &scope, since)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Caller, Usage};

    /// A successful call of `caller` to `openai/gpt-6-luna` with key
    /// `openai/default`.
    fn luna_call(
        caller: &Caller,
        input_tokens: u32,
        output_tokens: u32,
        cost: u64,
    ) -> CallRecord<'_> {
        CallRecord {
            caller,
            provider: "openai",
            key: Some("openai/default"),
            model: "gpt-6-luna",
            usage: Usage {
                input_tokens,
                output_tokens,
                cost_micro_usd: cost,
            },
            error: None,
        }
    }

    #[test]
    fn months_start_on_the_first() {
        // 2026-11-25 is day 20_782; November 2026 starts on day 20_758.
        assert_eq!(month_start(20_782), 20_758);
        assert_eq!(month_start(20_758), 20_758);
        // 2024-02-29 (leap day) is day 19_782; February 2024 starts on 19_754.
        assert_eq!(month_start(19_782), 19_754);
        assert_eq!(month_start(0), 0);
    }

    #[test]
    fn records_sum_per_scope_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let caller = Caller {
            plugin: "tutor".into(),
            agent: Some("tutor".into()),
            run: None,
        };
        let at = UNIX_EPOCH + std::time::Duration::from_secs(20_782 * 86_400);
        {
            let ledger = Ledger::open(&path).unwrap();
            for cost in [100, 250] {
                ledger.record(&luna_call(&caller, 10, 5, cost), at).unwrap();
            }
        }
        let ledger = Ledger::open(&path).unwrap();
        assert_eq!(
            ledger
                .spent(&Scope::Plugin("tutor".into()), 20_758)
                .unwrap(),
            350
        );
        assert_eq!(
            ledger
                .spent(&Scope::Key("openai/default".into()), 20_758)
                .unwrap(),
            350
        );
        assert_eq!(ledger.spent(&Scope::Agent("other".into()), 0).unwrap(), 0);
        assert_eq!(
            ledger
                .spent(&Scope::Plugin("tutor".into()), 20_783)
                .unwrap(),
            0
        );
        let report = ledger.report(0).unwrap();
        assert_eq!(report.len(), 1);
        assert_eq!((report[0].calls, report[0].cost_micro_usd), (2, 350));
        assert_eq!(report[0].model, "openai/gpt-6-luna");
    }

    fn hold(scope: &Scope, limit: u64, amount: u64, ttl: std::time::Duration) -> Hold {
        Hold {
            limits: vec![(scope.clone(), limit)],
            amount,
            expires: SystemTime::now() + ttl,
        }
    }

    /// Two connections (as two processes have) see each other's holds; a
    /// settlement books the cost and drops the hold together; a hold left
    /// behind stops counting at its expiry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn holds_are_shared_settled_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let (one, two) = (Ledger::open(&path).unwrap(), Ledger::open(&path).unwrap());
        let scope = Scope::Key("openai/default".into());
        let long = std::time::Duration::from_secs(60);

        let first = one.reserve(&hold(&scope, 100, 60, long)).await.unwrap();
        let err = two.reserve(&hold(&scope, 100, 60, long)).await.unwrap_err();
        assert!(
            err.to_string().contains(
                "budget of key openai/default is 0.000100 USD; 0.000060 USD is spent or held"
            ),
            "{err}"
        );
        assert_eq!(two.held(&scope).unwrap(), 60);

        let caller = Caller {
            plugin: "tutor".into(),
            agent: None,
            run: None,
        };
        one.settle(Some(first), &luna_call(&caller, 3, 4, 25))
            .await
            .unwrap();
        assert_eq!(two.held(&scope).unwrap(), 0);
        assert_eq!(two.month_spent(&scope).await.unwrap(), 25);
        assert_eq!(two.report(0).unwrap()[0].calls, 1);

        // 25 spent: 75 left. A hold of 70 that nobody settles…
        two.reserve(&hold(
            &scope,
            100,
            70,
            std::time::Duration::from_millis(300),
        ))
        .await
        .unwrap();
        assert!(one.reserve(&hold(&scope, 100, 70, long)).await.is_err());
        // …stops counting once it has expired.
        std::thread::sleep(std::time::Duration::from_millis(350));
        assert_eq!(one.held(&scope).unwrap(), 0);
        let again = one.reserve(&hold(&scope, 100, 70, long)).await.unwrap();
        one.release(again).await.unwrap();
        assert_eq!(one.held(&scope).unwrap(), 0);
        assert_eq!(
            one.month_spent(&scope).await.unwrap(),
            25,
            "a release books nothing"
        );
    }
}
