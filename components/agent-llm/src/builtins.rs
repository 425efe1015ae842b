//! The agent's own tools, offered beside the plugins' tools when its
//! definition asks for them: `agent__remember` and `agent__recall` over its
//! memory bucket, and `agent__handoff` to the agents it may hand over to.

use convergio_agent::{Definition, Memory};
use convergio_sdk::keyvalue::store;
use convergio_sdk::types::ToolDefinition;
use serde_json::{Value, json};

/// Remember a fact.
pub const REMEMBER: &str = "agent__remember";
/// Recall facts.
pub const RECALL: &str = "agent__recall";
/// Hand the conversation over.
pub const HANDOFF: &str = "agent__handoff";

/// Whether `name` is one of the agent's own tools.
pub fn is_builtin(name: &str) -> bool {
    matches!(name, REMEMBER | RECALL | HANDOFF)
}

/// The agent's own tools that `definition` asks for.
pub fn offered(definition: &Definition) -> Vec<ToolDefinition> {
    let mut tools = Vec::new();
    if definition.memory.is_some() {
        tools.push(ToolDefinition {
            name: REMEMBER.to_owned(),
            description: "Remember a fact for later runs, under a short key.".to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "key": {"type": "string", "maxLength": 80},
                    "text": {"type": "string", "maxLength": 2000}
                },
                "required": ["key", "text"]
            })
            .to_string(),
        });
        tools.push(ToolDefinition {
            name: RECALL.to_owned(),
            description: "Recall remembered facts whose key or text mention the query's words."
                .to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {"query": {"type": "string", "maxLength": 200}},
                "required": ["query"]
            })
            .to_string(),
        });
    }
    if !definition.handoffs.is_empty() {
        let names: Vec<&str> = definition
            .handoffs
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        let who: Vec<String> = definition
            .handoffs
            .iter()
            .map(|h| format!("{} ({})", h.name, h.description))
            .collect();
        tools.push(ToolDefinition {
            name: HANDOFF.to_owned(),
            description: format!(
                "Hand the conversation to another agent, who answers from then on: {}",
                who.join("; ")
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "to": {"enum": names},
                    "note": {"type": "string", "maxLength": 500}
                },
                "required": ["to"]
            })
            .to_string(),
        });
    }
    tools
}

/// Run one of the agent's own tools; the text the model gets back.
pub fn call(definition: &Definition, name: &str, arguments: &str) -> String {
    let args: Value = match serde_json::from_str(arguments) {
        Ok(args) => args,
        Err(e) => return format!("error: the arguments are not JSON: {e}"),
    };
    let text = |key: &str| args.get(key).and_then(Value::as_str).unwrap_or_default();
    match (name, &definition.memory) {
        (REMEMBER, Some(memory)) => remember(memory, text("key"), text("text")),
        (RECALL, Some(memory)) => recall(memory, text("query")),
        (HANDOFF, _) => match handoff_target(definition, arguments) {
            Some(target) => format!("handed over to `{}`", target.name),
            None => format!(
                "error: no agent `{}` to hand over to; the agents are: {}",
                text("to"),
                definition
                    .handoffs
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        _ => format!("error: `{name}` is not one of this agent's tools"),
    }
}

/// The agent a call of `agent__handoff` names, if `definition` may hand
/// over to it.
pub fn handoff_target<'a>(definition: &'a Definition, arguments: &str) -> Option<&'a Definition> {
    let args: Value = serde_json::from_str(arguments).ok()?;
    let to = args.get("to")?.as_str()?;
    definition.handoffs.iter().find(|h| h.name == to)
}

fn bucket(memory: &Memory) -> Result<store::Bucket, String> {
    store::open(&memory.bucket).map_err(|e| {
        format!(
            "error: the memory bucket `{}` cannot be opened ({e:?}); grant it to the agent's plugin with storage = [\"{}\"]",
            memory.bucket, memory.bucket
        )
    })
}

fn remember(memory: &Memory, key: &str, text: &str) -> String {
    if key.trim().is_empty() {
        return "error: `key` is empty".to_owned();
    }
    let bucket = match bucket(memory) {
        Ok(b) => b,
        Err(e) => return e,
    };
    match bucket.set(key, text.as_bytes()) {
        Ok(()) => format!("remembered `{key}`"),
        Err(e) => format!("error: remembering failed: {e:?}"),
    }
}

fn recall(memory: &Memory, query: &str) -> String {
    let bucket = match bucket(memory) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect();
    let mut found = Vec::new();
    let mut cursor = None;
    loop {
        let page = match bucket.list_keys(cursor.as_deref()) {
            Ok(page) => page,
            Err(e) => return format!("error: recalling failed: {e:?}"),
        };
        for key in page.keys {
            let Ok(Some(bytes)) = bucket.get(&key) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let haystack = format!("{key} {text}").to_lowercase();
            let hits = words
                .iter()
                .filter(|w| haystack.contains(w.as_str()))
                .count();
            if hits > 0 || words.is_empty() {
                found.push((hits, key, text));
            }
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // The best matches first, then by key.
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    found.truncate(memory.recall_limit as usize);
    if found.is_empty() {
        return "nothing remembered matches".to_owned();
    }
    found
        .into_iter()
        .map(|(_, key, text)| format!("{key}: {text}"))
        .collect::<Vec<_>>()
        .join("\n")
}
