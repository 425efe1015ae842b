//! `convergio-knowledge`: retrieval for agents, as a tool plugin.
//!
//! - `add {bucket, document, text}` cuts the text into chunks (paragraphs,
//!   joined up to about 800 characters), embeds each through the router
//!   (`inference.embed`; the model is the plugin's `embedding-model` config,
//!   by default the cheapest local model that embeds) and keeps them in the
//!   storage bucket, replacing the document's earlier chunks.
//! - `search {bucket, query, k}` embeds the query and scores every chunk of
//!   the bucket: cosine similarity of the embeddings, plus the share of the
//!   query's words the chunk contains (so a rare exact word counts even when
//!   a small model's embeddings blur it); the `k` best (default 3) come back
//!   with their document, text and score.
//!
//! Search is an exact scan: every chunk of the bucket is read and scored,
//! which is milliseconds for thousands of chunks and grows linearly; an
//! approximate index is the step beyond tens of thousands.

use convergio_sdk::config;
use convergio_sdk::inference::{self, ModelSelector, Requirements, Strategy};
use convergio_sdk::keyvalue::store;
use convergio_sdk::tool::{Guest, ToolError, ToolInfo};
use serde_json::{Value, json};

/// Characters a chunk grows to before a new one starts.
const CHUNK_CHARS: usize = 800;
/// Weight of the lexical score beside the cosine similarity.
const LEXICAL_WEIGHT: f32 = 0.5;

/// The component.
#[derive(Debug)]
pub struct Knowledge;

impl Guest for Knowledge {
    fn describe() -> Vec<ToolInfo> {
        vec![
            ToolInfo::new(
                "add",
                "Add a document to a knowledge bucket (chunked and embedded; replaces a document of the same name).",
                &json!({
                    "type": "object",
                    "properties": {
                        "bucket": {"type": "string"},
                        "document": {"type": "string"},
                        "text": {"type": "string"}
                    },
                    "required": ["bucket", "document", "text"]
                }),
            ),
            ToolInfo::new(
                "search",
                "Find the passages of a knowledge bucket most relevant to a query.",
                &json!({
                    "type": "object",
                    "properties": {
                        "bucket": {"type": "string"},
                        "query": {"type": "string"},
                        "k": {"type": "integer", "minimum": 1, "maximum": 20}
                    },
                    "required": ["bucket", "query"]
                }),
            ),
        ]
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        let args: Value = serde_json::from_str(&arguments)
            .map_err(|e| ToolError::InvalidArguments(format!("the arguments are not JSON: {e}")))?;
        let text = |key: &str| {
            args.get(key).and_then(Value::as_str).ok_or_else(|| {
                ToolError::InvalidArguments(format!("`{key}` (a string) is missing"))
            })
        };
        match name.as_str() {
            "add" => add(text("bucket")?, text("document")?, text("text")?),
            "search" => {
                let k = args
                    .get("k")
                    .and_then(Value::as_u64)
                    .unwrap_or(3)
                    .clamp(1, 20) as usize;
                search(text("bucket")?, text("query")?, k)
            }
            other => Err(ToolError::UnknownTool(format!(
                "`{other}`; the tools are add and search"
            ))),
        }
        .map(|v| v.to_string())
    }
}

fn open(bucket: &str) -> Result<store::Bucket, ToolError> {
    store::open(bucket).map_err(|e| {
        ToolError::Denied(format!(
            "bucket `{bucket}` cannot be opened ({e:?}); grant it to this plugin with storage = [\"{bucket}\"]"
        ))
    })
}

fn model() -> ModelSelector {
    match config::get("embedding-model") {
        Ok(Some(name)) => ModelSelector::Named(name),
        _ => ModelSelector::Policy((
            Strategy::Cheapest,
            Requirements {
                tools: false,
                vision: false,
                json_mode: false,
                min_context: None,
                min_quality: None,
                local_only: false,
            },
        )),
    }
}

fn embed(texts: &[String]) -> Result<Vec<Vec<f32>>, ToolError> {
    inference::embed(&model(), texts)
        .map(|e| e.vectors)
        .map_err(|e| ToolError::Failed(format!("embedding failed: {e:?}")))
}

/// Paragraphs joined into chunks of about [`CHUNK_CHARS`].
pub fn chunks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if !current.is_empty() && current.len() + paragraph.len() > CHUNK_CHARS {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(paragraph);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn add(bucket: &str, document: &str, text: &str) -> Result<Value, ToolError> {
    let store = open(bucket)?;
    let parts = chunks(text);
    let vectors = embed(&parts)?;
    // The document's earlier chunks go first.
    let prefix = format!("chunk:{document}:");
    for key in keys(&store)? {
        if key.starts_with(&prefix) {
            store
                .delete(&key)
                .map_err(|e| ToolError::Failed(format!("{e:?}")))?;
        }
    }
    for (n, (part, vector)) in parts.iter().zip(vectors).enumerate() {
        let value = json!({"document": document, "text": part, "vector": vector});
        store
            .set(&format!("{prefix}{n:05}"), value.to_string().as_bytes())
            .map_err(|e| ToolError::Failed(format!("{e:?}")))?;
    }
    Ok(json!({"document": document, "chunks": parts.len()}))
}

fn keys(store: &store::Bucket) -> Result<Vec<String>, ToolError> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_keys(cursor.as_deref())
            .map_err(|e| ToolError::Failed(format!("{e:?}")))?;
        all.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

/// Lowercase words of three letters or more.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 2)
        .map(str::to_lowercase)
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

fn search(bucket: &str, query: &str, k: usize) -> Result<Value, ToolError> {
    let store = open(bucket)?;
    let query_vector = embed(&[query.to_owned()])?.pop().unwrap_or_default();
    let query_words = words(query);
    let mut scored = Vec::new();
    for key in keys(&store)? {
        let Ok(Some(bytes)) = store.get(&key) else {
            continue;
        };
        let Ok(chunk) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        let vector: Vec<f32> = chunk["vector"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(Value::as_f64)
                    .map(|x| x as f32)
                    .collect()
            })
            .unwrap_or_default();
        let text = chunk["text"].as_str().unwrap_or_default();
        let chunk_words = words(text);
        let lexical = if query_words.is_empty() {
            0.0
        } else {
            query_words
                .iter()
                .filter(|w| chunk_words.contains(w))
                .count() as f32
                / query_words.len() as f32
        };
        let score = cosine(&query_vector, &vector) + LEXICAL_WEIGHT * lexical;
        scored.push((score, chunk["document"].clone(), text.to_owned()));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    Ok(Value::Array(
        scored
            .into_iter()
            .map(|(score, document, text)| json!({"document": document, "text": text, "score": score}))
            .collect(),
    ))
}

#[cfg(target_arch = "wasm32")]
convergio_sdk::export_tool!(Knowledge);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_join_into_chunks_of_about_800_characters() {
        let para = "x".repeat(300);
        let text = [para.as_str(); 5].join("\n\n");
        let parts = chunks(&text);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.len() <= CHUNK_CHARS));
        assert_eq!(chunks("\n\n  \n\n"), Vec::<String>::new());
    }

    #[test]
    fn cosine_and_words() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0], &[1.0]), 0.0);
        assert_eq!(words("The Rust, of it!"), ["the", "rust"]);
    }
}
