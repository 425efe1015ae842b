//! `hello-tool`: a Convergio tool component offering `greet` and `add`.
//!
//! `greet` reads its greeting from the `greeting` configuration key
//! (`wasi:config`) and logs each greeting through `wasi:logging`.

use convergio_sdk::serde_json::json;
use convergio_sdk::tool::{self, Guest, ToolError, ToolInfo};
use convergio_sdk::{config, log};
use serde::Deserialize;

/// Used when the operator sets no `greeting`.
const DEFAULT_GREETING: &str = "Hello";

#[derive(Deserialize)]
struct GreetArgs {
    name: String,
}

#[derive(Deserialize)]
struct AddArgs {
    a: f64,
    b: f64,
}

struct HelloTool;

impl Guest for HelloTool {
    fn describe() -> Vec<ToolInfo> {
        vec![
            ToolInfo::new(
                "greet",
                "Greets someone by name",
                &json!({
                    "type": "object",
                    "properties": { "name": { "type": "string" } },
                    "required": ["name"],
                }),
            ),
            ToolInfo::new(
                "add",
                "Adds two numbers",
                &json!({
                    "type": "object",
                    "properties": { "a": { "type": "number" }, "b": { "type": "number" } },
                    "required": ["a", "b"],
                }),
            ),
        ]
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        match name.as_str() {
            "greet" => {
                let args: GreetArgs = tool::parse_args(&arguments)?;
                let greeting = config::get_or("greeting", DEFAULT_GREETING)?;
                log::info(&format!("greeting {}", args.name));
                tool::to_json(&json!({ "greeting": format!("{greeting}, {}!", args.name) }))
            }
            "add" => {
                let args: AddArgs = tool::parse_args(&arguments)?;
                tool::to_json(&json!({ "sum": args.a + args.b }))
            }
            _ => Err(ToolError::UnknownTool(name)),
        }
    }
}

convergio_sdk::export_tool!(HelloTool);
