//! `old_orchestrator`: an orchestrator built against the earlier
//! `convergio:platform/orchestrator`, whose `step` took its inputs and
//! returned its decision as JSON documents. The host must fail its runs
//! with a message that names the mismatch, and keep serving.

/// Bindings of the earlier interface (the export glue is `unsafe`).
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        inline: "
            package convergio:platform@0.1.0;

            interface orchestrator {
                variant step-error {
                    unknown-graph,
                    need-snapshot,
                    invalid-graph(string),
                    bad-input(string),
                    corrupt(string),
                }
                record step-request {
                    run-id: string,
                    graph-hash: string,
                    graph: option<string>,
                    version: u64,
                    snapshot: option<string>,
                    inputs: string,
                }
                check: func(graph: string) -> list<string>;
                step: func(request: step-request) -> result<string, step-error>;
                forget: func(run-id: string);
            }

            world old-orchestrator {
                export orchestrator;
            }
        ",
        world: "old-orchestrator",
    });

    use super::Old;

    export!(Old);
}

use bindings::exports::convergio::platform::orchestrator::{Guest, StepError, StepRequest};

struct Old;

impl Guest for Old {
    fn check(_graph: String) -> Vec<String> {
        Vec::new()
    }

    fn step(_request: StepRequest) -> Result<String, StepError> {
        Ok(r#"{"patches": [], "status": {"status": "running"}}"#.to_owned())
    }

    fn forget(_run_id: String) {}
}
