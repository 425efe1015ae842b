//! `hostile_orchestrator`: an orchestrator plugin that misbehaves, to test
//! that a run fails cleanly and the host keeps serving. A run whose id
//! starts with `loop` spins forever in `step`; one whose id starts with
//! `trap` panics; one whose id starts with `path` gets a decision whose
//! patch path is not a JSON Pointer; any other one whose patch value is
//! not JSON.

use convergio_sdk::orchestrator::{
    Decision, Guest, Patch, PatchOp, RunStatus, StepError, StepRequest,
};

struct Hostile;

impl Guest for Hostile {
    fn check(_graph: String) -> Vec<String> {
        Vec::new()
    }

    #[allow(clippy::panic)]
    fn step(request: StepRequest) -> Result<Decision, StepError> {
        if request.run_id.starts_with("loop") {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if request.run_id.starts_with("trap") {
            panic!("hostile orchestrator traps");
        }
        let patch = if request.run_id.starts_with("path") {
            Patch {
                op: PatchOp::Set,
                path: "values/x".to_owned(),
                value: Some("1".to_owned()),
            }
        } else {
            Patch {
                op: PatchOp::Set,
                path: "/values/x".to_owned(),
                value: Some("not a value".to_owned()),
            }
        };
        Ok(Decision {
            patches: vec![patch],
            calls: Vec::new(),
            cancel: Vec::new(),
            interrupts: Vec::new(),
            events: Vec::new(),
            status: RunStatus::Running,
        })
    }

    fn forget(_run_id: String) {}
}

convergio_sdk::export_orchestrator!(Hostile);
