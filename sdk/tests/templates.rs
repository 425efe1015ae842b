//! The scaffold templates of `convergio new`: every kind has the same files,
//! uses only the known placeholders, and fills in to valid manifests.
//! (Building a filled-in template for wasm32-wasip2 is left to the CLI's tests.)

use std::path::{Path, PathBuf};

const KINDS: [&str; 3] = ["tool", "provider", "agent"];
const FILES: [&str; 4] = [
    "Cargo.toml.tmpl",
    "src/lib.rs.tmpl",
    "plugin.toml.tmpl",
    "README.md.tmpl",
];
const PLACEHOLDERS: [&str; 3] = ["{{name}}", "{{crate_name}}", "{{sdk_dependency}}"];

/// The files of `kind`: [`FILES`], and for a provider the modules of the
/// SDK's one adapter shape.
fn files(kind: &str) -> Vec<&'static str> {
    let mut files = FILES.to_vec();
    if kind == "provider" {
        files.extend([
            "src/config.rs.tmpl",
            "src/models.rs.tmpl",
            "src/wire.rs.tmpl",
            "src/map.rs.tmpl",
        ]);
    }
    files
}

fn template_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("templates")
        .join(kind)
}

fn fill(text: &str) -> String {
    text.replace("{{name}}", "my-plugin")
        .replace("{{crate_name}}", "my_plugin")
        .replace("{{sdk_dependency}}", r#"{ path = "/opt/convergio/sdk" }"#)
}

fn read(kind: &str, file: &str) -> std::io::Result<String> {
    std::fs::read_to_string(template_dir(kind).join(file))
}

#[test]
fn every_kind_has_every_file_and_nothing_else() {
    for kind in KINDS {
        let mut found = Vec::new();
        let mut dirs = vec![template_dir(kind)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let rel = path.strip_prefix(template_dir(kind)).unwrap();
                    found.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        found.sort();
        let mut expected: Vec<String> = files(kind).iter().map(|f| f.to_string()).collect();
        expected.sort();
        assert_eq!(found, expected, "files of template `{kind}`");
    }
}

#[test]
fn only_known_placeholders_are_used() {
    for kind in KINDS {
        for file in files(kind) {
            let mut text = read(kind, file).unwrap();
            for p in PLACEHOLDERS {
                text = text.replace(p, "");
            }
            assert!(
                !text.contains("{{"),
                "{kind}/{file} has an unknown placeholder"
            );
        }
    }
}

#[test]
fn cargo_toml_is_a_standalone_cdylib_on_the_sdk() {
    for kind in KINDS {
        let manifest: toml::Table =
            toml::from_str(&fill(&read(kind, "Cargo.toml.tmpl").unwrap())).unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("my-plugin"));
        assert_eq!(
            manifest["lib"]["crate-type"].as_array().unwrap(),
            &vec![toml::Value::from("cdylib")]
        );
        assert_eq!(
            manifest["dependencies"]["convergio-sdk"]["path"].as_str(),
            Some("/opt/convergio/sdk")
        );
        assert!(
            manifest["workspace"].as_table().unwrap().is_empty(),
            "{kind}: must be its own workspace"
        );
    }
}

#[test]
fn plugin_toml_names_the_release_component() {
    let allowed = [
        "id",
        "version",
        "kind",
        "description",
        "component",
        "requires",
    ];
    for kind in KINDS {
        let manifest: toml::Table =
            toml::from_str(&fill(&read(kind, "plugin.toml.tmpl").unwrap())).unwrap();
        for key in manifest.keys() {
            assert!(
                allowed.contains(&key.as_str()),
                "{kind}: unknown key `{key}`"
            );
        }
        assert_eq!(manifest["id"].as_str(), Some("my-plugin"));
        assert_eq!(manifest["kind"].as_str(), Some(kind));
        assert_eq!(
            manifest["component"].as_str(),
            Some("target/wasm32-wasip2/release/my_plugin.wasm")
        );
    }
}
