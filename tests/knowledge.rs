//! Retrieval: the `knowledge` tool component over a few Markdown documents,
//! with the real embeddings of the local test model (through the router and
//! `provider-local`), answers questions with the right document first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_runtime::local_models::ModelStore;
use convergio_tests::{TestPlugin, crate_component, start, test_model};
use serde_json::{Value, json};

const DOCUMENTS: [(&str, &str); 4] = [
    (
        "photosynthesis.md",
        "# Photosynthesis\n\nPlants turn sunlight, water and carbon dioxide into glucose and oxygen. \
         The green pigment chlorophyll in the leaves captures the light.\n\nThe light reactions happen in the \
         thylakoids of the chloroplasts; the Calvin cycle fixes carbon in the stroma.",
    ),
    (
        "revolution.md",
        "# The French Revolution\n\nIn 1789 the people of Paris stormed the Bastille. The revolution ended the \
         absolute monarchy of Louis XVI.\n\nThe Declaration of the Rights of Man and of the Citizen proclaimed \
         liberty and equality before the law.",
    ),
    (
        "volcanoes.md",
        "# Volcanoes\n\nA volcano erupts when magma rises through the crust and escapes as lava, ash and gas. \
         Most volcanoes sit where tectonic plates meet.\n\nMount Etna in Sicily is one of the most active \
         volcanoes in Europe.",
    ),
    (
        "rust.md",
        "# The Rust language\n\nRust is a programming language whose borrow checker prevents data races and \
         use-after-free at compile time, without a garbage collector.\n\nCargo builds Rust crates and fetches \
         their dependencies.",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_document_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    ModelStore::open(dir.path().join("platform-data/models"))
        .unwrap()
        .pull(
            test_model().to_str().unwrap(),
            Some("smollm2"),
            None,
            &mut |_| {},
        )
        .unwrap();
    let plugins = [
        TestPlugin::new(
            "local",
            "provider",
            crate_component("convergio_provider_local"),
        )
        .declares(&["local-model"])
        .grants("models = [\"smollm2\"]"),
        TestPlugin::new("knowledge", "tool", crate_component("convergio_knowledge"))
            .declares(&["inference", "storage", "logging"])
            .optional(&["config"])
            .grants("inference = true\nstorage = [\"school\"]\nlogging = true")
            .limits("deadline-ms = 120000"),
    ];
    let runtime = start(
        dir.path(),
        "[inference]\nzero-cloud = true\n\n[local-models]\nthreads = 2\ncontext-length = 1024\n",
        &plugins,
    )
    .await;
    let tool = |name: &str, args: Value| {
        let runtime = runtime.clone();
        let name = name.to_owned();
        async move {
            let out = runtime
                .invoke_json("knowledge", "tool.invoke", &json!([name, args.to_string()]))
                .await
                .unwrap();
            let ok = out["ok"].as_str().unwrap_or_else(|| panic!("{out}"));
            serde_json::from_str::<Value>(ok).unwrap()
        }
    };
    for (document, text) in DOCUMENTS {
        let added = tool(
            "add",
            json!({"bucket": "school", "document": document, "text": text}),
        )
        .await;
        assert_eq!(added["chunks"], 1, "{added}");
    }
    for (question, expected) in [
        (
            "How do plants make glucose from light?",
            "photosynthesis.md",
        ),
        ("When was the Bastille stormed?", "revolution.md"),
        ("Why does lava come out of a mountain?", "volcanoes.md"),
        ("What does the borrow checker prevent?", "rust.md"),
        ("Which pigment makes leaves green?", "photosynthesis.md"),
    ] {
        let hits = tool(
            "search",
            json!({"bucket": "school", "query": question, "k": 2}),
        )
        .await;
        assert_eq!(hits.as_array().unwrap().len(), 2, "{hits}");
        assert_eq!(hits[0]["document"], expected, "{question}: {hits}");
    }
    // Adding a document again replaces its chunks.
    tool(
        "add",
        json!({"bucket": "school", "document": "rust.md", "text": "Rust is a language."}),
    )
    .await;
    let hits = tool(
        "search",
        json!({"bucket": "school", "query": "borrow checker", "k": 10}),
    )
    .await;
    assert_eq!(hits.as_array().unwrap().len(), 4, "{hits}");

    // A bucket it was not granted is refused, naming the grant.
    let out = runtime
        .invoke_json(
            "knowledge",
            "tool.invoke",
            &json!([
                "search",
                json!({"bucket": "secret", "query": "x"}).to_string()
            ]),
        )
        .await
        .unwrap();
    let denied = out["err"]["denied"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    assert!(denied.contains("storage = [\"secret\"]"), "{denied}");
}
