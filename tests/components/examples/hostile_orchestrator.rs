//! `hostile_orchestrator`: an orchestrator plugin that misbehaves, to test
//! that a run fails cleanly and the host keeps serving. A run whose id
//! starts with `loop` spins forever in `step`; one whose id starts with
//! `trap` panics; any other gets a decision that is not JSON.

use convergio_sdk::orchestrator::{Guest, StepError, StepRequest};

struct Hostile;

impl Guest for Hostile {
    fn check(_graph: String) -> Vec<String> {
        Vec::new()
    }

    #[allow(clippy::panic)]
    fn step(request: StepRequest) -> Result<String, StepError> {
        if request.run_id.starts_with("loop") {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if request.run_id.starts_with("trap") {
            panic!("hostile orchestrator traps");
        }
        Ok("not a decision".to_owned())
    }

    fn forget(_run_id: String) {}
}

convergio_sdk::export_orchestrator!(Hostile);
