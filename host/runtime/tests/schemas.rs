//! The JSON Schemas in `docs/` match the config types. Regenerate them with
//! `CONVERGIO_BLESS=1 cargo test -p convergio-runtime --test schemas`.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use convergio_runtime::schema::{manifest_schema, platform_schema};

fn check(file: &str, current: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(file);
    if std::env::var_os("CONVERGIO_BLESS").is_some() {
        std::fs::write(&path, current).unwrap();
        return;
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == current,
        "{} is out of date; regenerate it with CONVERGIO_BLESS=1 cargo test -p convergio-runtime --test schemas",
        path.display()
    );
}

#[test]
fn platform_schema_is_published() {
    check("platform.schema.json", &platform_schema());
}

#[test]
fn plugin_schema_is_published() {
    check("plugin.schema.json", &manifest_schema());
}

#[test]
fn schemas_forbid_unknown_fields() {
    let schema: serde_json::Value = serde_json::from_str(&manifest_schema()).unwrap();
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
}
