//! `docs/agent.schema.json` is generated from `convergio_agent::Definition`.
//! Regenerate it with `CONVERGIO_BLESS=1 cargo test -p convergio-agent --test schema`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use serde_json::json;

fn published_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/agent.schema.json")
}

#[test]
fn the_definition_schema_is_published() {
    let current = convergio_agent::schema();
    let path = published_path();
    if std::env::var_os("CONVERGIO_BLESS").is_some() {
        std::fs::write(&path, &current).unwrap();
        return;
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == current,
        "{} is out of date; regenerate it with CONVERGIO_BLESS=1 cargo test -p convergio-agent --test schema",
        path.display()
    );
}

#[test]
fn the_schema_accepts_a_full_definition_and_refuses_a_typo() {
    let schema: serde_json::Value = serde_json::from_str(&convergio_agent::schema()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let full = json!({
        "name": "tutor",
        "description": "Answers history questions",
        "instructions": "You teach history.",
        "policy": {"strategy": "best-quality", "local-only": true, "min-quality": "basic", "min-context": 2048},
        "tools": ["library/search"],
        "max-steps": 4,
        "max-tokens": 8000,
        "max-cost-usd": 0.05,
        "max-output-tokens": 256,
        "temperature": 0.2,
        "seed": 7,
        "output-schema": {"type": "object"}
    });
    assert!(
        validator.is_valid(&full),
        "{:?}",
        validator
            .iter_errors(&full)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    convergio_agent::Definition::from_json(&full).unwrap();
    let typo = json!({"name": "t", "instructions": "i", "max_steps": 3});
    assert!(!validator.is_valid(&typo));
}
