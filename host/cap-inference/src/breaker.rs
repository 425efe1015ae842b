//! A circuit breaker per `provider/model`: after `threshold` failures in a
//! row the model is skipped for `cooldown`, then one request may try again
//! (half-open); a success closes it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    /// A trial request is in flight after the cooldown.
    trial: bool,
}

/// Breakers of every model, keyed by `provider/model`.
#[derive(Debug)]
pub struct Breakers {
    threshold: u32,
    cooldown: Duration,
    states: Mutex<HashMap<String, State>>,
}

/// Whether a model may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: go ahead.
    Yes,
    /// Half-open: this request is the trial.
    Trial,
    /// Open: skip, for this long still.
    No(Duration),
}

impl Breakers {
    /// Breakers that open after `threshold` failures in a row for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            states: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May `model` be tried now?
    pub fn admit(&self, model: &str) -> Admit {
        let mut states = self.lock();
        let Some(state) = states.get_mut(model) else {
            return Admit::Yes;
        };
        match state.open_until {
            None => Admit::Yes,
            Some(until) => {
                let now = Instant::now();
                if now < until {
                    Admit::No(until - now)
                } else if state.trial {
                    Admit::No(Duration::ZERO)
                } else {
                    state.trial = true;
                    Admit::Trial
                }
            }
        }
    }

    /// A call to `model` succeeded.
    pub fn success(&self, model: &str) {
        self.lock().remove(model);
    }

    /// A call to `model` failed in a way that counts (overload, 5xx, timeout…).
    pub fn failure(&self, model: &str) {
        let mut states = self.lock();
        let state = states.entry(model.to_owned()).or_default();
        state.failures = state.failures.saturating_add(1);
        if state.trial || state.failures >= self.threshold {
            state.open_until = Some(Instant::now() + self.cooldown);
            state.trial = false;
            tracing::warn!(
                model,
                failures = state.failures,
                cooldown_ms = self.cooldown.as_millis() as u64,
                "circuit opened"
            );
        }
    }

    /// A trial ended without a verdict (e.g. a request error that says
    /// nothing about the model's health): let the next request try.
    pub fn release_trial(&self, model: &str) {
        if let Some(state) = self.lock().get_mut(model) {
            state.trial = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_and_half_opens_after_cooldown() {
        let b = Breakers::new(2, Duration::from_secs(10));
        assert_eq!(b.admit("p/m"), Admit::Yes);
        b.failure("p/m");
        assert_eq!(b.admit("p/m"), Admit::Yes);
        b.failure("p/m");
        assert!(matches!(b.admit("p/m"), Admit::No(_)));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(b.admit("p/m"), Admit::Trial);
        assert!(
            matches!(b.admit("p/m"), Admit::No(_)),
            "one trial at a time"
        );
        b.failure("p/m");
        assert!(
            matches!(b.admit("p/m"), Admit::No(_)),
            "a failed trial reopens"
        );
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(b.admit("p/m"), Admit::Trial);
        b.success("p/m");
        assert_eq!(b.admit("p/m"), Admit::Yes);
        assert_eq!(b.admit("other/m"), Admit::Yes);
    }
}
