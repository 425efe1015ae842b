//! The usage ledger: every model call, summed per UTC day, plugin, agent,
//! provider, model and key, in SQLite (`usage.db` in the data directory).
//! Budgets read the month's spending from it at start, so a restart does
//! not forget what was spent.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};

use crate::budget::Scope;
use crate::router::CallRecord;

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

/// The usage ledger.
#[derive(Debug)]
pub struct Ledger {
    conn: Mutex<Connection>,
}

/// An error of the ledger's database, as text.
#[derive(Debug, thiserror::Error)]
#[error("usage ledger: {0}")]
pub struct LedgerError(String);

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
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
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| LedgerError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = convergio_sqlite::open_wal(path, convergio_sqlite::Synchronous::Normal)
            .map_err(|e| LedgerError(format!("cannot open {}: {e}", path.display())))?;
        convergio_sqlite::create_schema(&mut conn, SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add one call.
    pub fn record(&self, call: &CallRecord<'_>, at: SystemTime) -> Result<(), LedgerError> {
        self.conn()
            .prepare_cached(
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
                call.caller.plugin,
                call.caller.agent.as_deref().unwrap_or_default(),
                call.provider,
                call.model,
                call.key.unwrap_or_default(),
                i64::from(call.usage.input_tokens),
                i64::from(call.usage.output_tokens),
                to_i64(call.usage.cost_micro_usd),
                i64::from(call.error.is_some()),
            ])?;
        Ok(())
    }

    /// What `scope` spent from `since_day` on, in millionths of a dollar.
    pub fn spent(&self, scope: &Scope, since_day: i64) -> Result<u64, LedgerError> {
        let (column, value) = match scope {
            Scope::Key(k) => ("key", k),
            Scope::Plugin(p) => ("plugin", p),
            Scope::Agent(a) => ("agent", a),
        };
        let sum: i64 = self.conn().query_row(
            &format!(
                "SELECT COALESCE(SUM(cost_micro_usd), 0) FROM model_usage WHERE {column} = ?1 AND day >= ?2"
            ),
            params![value, since_day],
            |row| row.get(0),
        )?;
        Ok(to_u64(sum))
    }

    /// Usage from `since_day` on, per plugin, agent and model, costliest first.
    pub fn report(&self, since_day: i64) -> Result<Vec<UsageLine>, LedgerError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Caller, Usage};

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
        };
        let at = UNIX_EPOCH + std::time::Duration::from_secs(20_782 * 86_400);
        {
            let ledger = Ledger::open(&path).unwrap();
            for cost in [100, 250] {
                let call = CallRecord {
                    caller: &caller,
                    provider: "openai",
                    key: Some("openai/default"),
                    model: "gpt-6-luna",
                    usage: Usage {
                        input_tokens: 10,
                        output_tokens: 5,
                        cost_micro_usd: cost,
                    },
                    error: None,
                };
                ledger.record(&call, at).unwrap();
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
}
