//! The orchestrator's engine in process: the same [`Instance`] the
//! orchestrator component runs, without the component boundary. For tests,
//! benchmarks and embedders that need no swappable orchestrator.

use std::sync::Mutex;

use convergio_graph::engine::{Decision, Instance, Refusal, StepError};
use convergio_journal::BoxFuture;

use crate::{StepFailure, StepFunction, StepRequest};

/// [`StepFunction`] over the engine of `convergio-graph`, in process.
#[derive(Debug, Default)]
pub struct NativeSteps {
    instance: Mutex<Instance>,
}

impl NativeSteps {
    /// A step function that holds nothing yet.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The refusal of an [`Instance`] as a [`StepFailure`].
pub fn failure(refusal: Refusal) -> StepFailure {
    match refusal {
        Refusal::UnknownGraph => StepFailure::UnknownGraph,
        Refusal::NeedSnapshot => StepFailure::NeedSnapshot,
        Refusal::InvalidGraph(m) => StepFailure::InvalidGraph(m),
        Refusal::Step(StepError::BadInput(m)) => StepFailure::BadInput(m),
        Refusal::Step(StepError::Corrupt(m)) => StepFailure::Failed(m),
    }
}

impl StepFunction for NativeSteps {
    fn step<'a>(
        &'a self,
        request: StepRequest<'a>,
    ) -> BoxFuture<'a, Result<Decision, StepFailure>> {
        Box::pin(async move {
            let mut instance = self
                .instance
                .lock()
                .map_err(|_| StepFailure::Failed("a step panicked earlier".to_owned()))?;
            instance.step(request).map_err(failure)
        })
    }

    fn forget<'a>(&'a self, run: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Ok(mut instance) = self.instance.lock() {
                instance.forget(run);
            }
        })
    }
}
