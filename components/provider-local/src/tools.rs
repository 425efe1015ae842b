//! Tool calling on local models, which have no tool-calling API: the tools
//! go into the system message, the answer is sampled as JSON of a schema
//! that is either a call of one of the tools (`{"tool": NAME, "arguments":
//! {…}}`, each tool's arguments of its own schema) or the answer
//! (`{"answer": …}`), and that JSON becomes a tool call or the text. The
//! grammar made from the schema means even a small model can only write
//! one of the two. Earlier tool calls and results in the conversation are
//! written back into that form (any chat template takes them).

use convergio_sdk::provider::{Message, ProviderRequest, ResponseFormat, Role, ToolCall};
use convergio_sdk::serde_json::{self, Value, json};

/// The request as the model sees it, and the format of its answer.
pub fn prepare(request: &ProviderRequest) -> Result<(Vec<Message>, ResponseFormat), String> {
    let mut branches = Vec::new();
    let answer = match &request.format {
        ResponseFormat::JsonSchema(schema) => serde_json::from_str::<Value>(schema)
            .map_err(|e| format!("the response format's JSON Schema is not JSON: {e}"))?,
        ResponseFormat::JsonObject => json!({"type": "object"}),
        ResponseFormat::Text => json!({"type": "string"}),
    };
    branches.push(json!({
        "type": "object",
        "properties": {"answer": answer},
        "required": ["answer"],
        "additionalProperties": false
    }));
    let mut listing = String::new();
    for tool in &request.tools {
        let parameters: Value = if tool.parameters.trim().is_empty() {
            json!({"type": "object"})
        } else {
            serde_json::from_str(&tool.parameters).map_err(|e| {
                format!(
                    "the parameters of tool `{}` are not a JSON Schema: {e}",
                    tool.name
                )
            })?
        };
        listing.push_str(&format!(
            "- {}: {} Arguments: {}\n",
            tool.name, tool.description, parameters
        ));
        branches.push(json!({
            "type": "object",
            "properties": {"tool": {"const": tool.name}, "arguments": parameters},
            "required": ["tool", "arguments"],
            "additionalProperties": false
        }));
    }
    let instruction = format!(
        "You can call these tools:\n{listing}To call a tool, answer {{\"tool\": \"NAME\", \"arguments\": {{...}}}}. \
         When you have what you need, answer {{\"answer\": ...}}."
    );
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    let mut instructed = false;
    for message in &request.messages {
        match message.role {
            Role::System if !instructed => {
                messages.push(Message::system(format!(
                    "{}\n\n{instruction}",
                    message.content
                )));
                instructed = true;
            }
            Role::Assistant if !message.tool_calls.is_empty() => {
                for call in &message.tool_calls {
                    let arguments: Value =
                        serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
                    messages.push(Message::assistant(
                        json!({"tool": call.name, "arguments": arguments}).to_string(),
                    ));
                }
            }
            Role::Tool => {
                let name = request
                    .messages
                    .iter()
                    .flat_map(|m| &m.tool_calls)
                    .find(|c| Some(&c.id) == message.tool_call_id.as_ref())
                    .map_or("the tool", |c| c.name.as_str());
                messages.push(Message::user(format!(
                    "Result of {name}: {}",
                    message.content
                )));
            }
            _ => messages.push(message.clone()),
        }
    }
    if !instructed {
        messages.insert(0, Message::system(instruction));
    }
    let schema = json!({"anyOf": branches});
    Ok((messages, ResponseFormat::JsonSchema(schema.to_string())))
}

/// What the model wrote, as the answer's text or a tool call.
pub fn read(output: &str, format: &ResponseFormat, index: usize) -> Result<Reply, String> {
    let value: Value = serde_json::from_str(output.trim())
        .map_err(|e| format!("the local model's answer is not the JSON it was held to: {e}"))?;
    if let Some(tool) = value.get("tool").and_then(Value::as_str) {
        return Ok(Reply::Call(ToolCall {
            id: format!("call_{index}"),
            name: tool.to_owned(),
            arguments: value
                .get("arguments")
                .cloned()
                .unwrap_or(json!({}))
                .to_string(),
        }));
    }
    let answer = value.get("answer").ok_or_else(|| {
        format!("the local model answered {value}, neither a tool call nor an answer")
    })?;
    Ok(Reply::Answer(match (format, answer) {
        (ResponseFormat::Text, Value::String(text)) => text.clone(),
        (_, other) => other.to_string(),
    }))
}

/// A local model's reply to a request with tools.
#[derive(Debug, Clone)]
pub enum Reply {
    /// It calls a tool.
    Call(ToolCall),
    /// It answers: text, or JSON text for a JSON format.
    Answer(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use convergio_sdk::provider::ToolDefinition;
    use convergio_sdk::provider::testing::request;

    fn with_tools() -> ProviderRequest {
        let mut call = Message::assistant("");
        call.tool_calls = vec![ToolCall {
            id: "c1".into(),
            name: "calc__add".into(),
            arguments: r#"{"a":1,"b":2}"#.into(),
        }];
        let mut result = Message::tool_result("c1", "3");
        result.role = Role::Tool;
        let mut r = request(
            "smollm2",
            vec![
                Message::system("Be brief."),
                Message::user("1+2?"),
                call,
                result,
            ],
        );
        r.tools = vec![ToolDefinition {
            name: "calc__add".into(),
            description: "Adds.".into(),
            parameters:
                r#"{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}}}"#
                    .into(),
        }];
        r
    }

    #[test]
    fn tools_become_instructions_and_a_schema_of_calls_or_an_answer() {
        let (messages, format) = prepare(&with_tools()).unwrap();
        assert_eq!(messages.len(), 4);
        assert!(
            messages[0]
                .content
                .starts_with("Be brief.\n\nYou can call these tools:\n- calc__add: Adds.")
        );
        assert_eq!(
            serde_json::from_str::<Value>(&messages[2].content).unwrap(),
            json!({"tool": "calc__add", "arguments": {"a": 1, "b": 2}})
        );
        assert_eq!(messages[3].role, Role::User);
        assert_eq!(messages[3].content, "Result of calc__add: 3");
        let ResponseFormat::JsonSchema(schema) = format else {
            panic!("{format:?}")
        };
        let schema: Value = serde_json::from_str(&schema).unwrap();
        assert_eq!(
            schema["anyOf"][0]["properties"]["answer"],
            json!({"type": "string"})
        );
        assert_eq!(
            schema["anyOf"][1]["properties"]["tool"],
            json!({"const": "calc__add"})
        );
    }

    #[test]
    fn answers_are_calls_or_text() {
        let text = ResponseFormat::Text;
        let Reply::Call(call) =
            read(r#"{"tool": "calc__add", "arguments": {"a": 1}}"#, &text, 4).unwrap()
        else {
            panic!("not a call")
        };
        assert_eq!(
            (
                call.id.as_str(),
                call.name.as_str(),
                call.arguments.as_str()
            ),
            ("call_4", "calc__add", r#"{"a":1}"#)
        );
        assert!(matches!(
            read(r#"{"answer": "three"}"#, &text, 0).unwrap(),
            Reply::Answer(a) if a == "three"
        ));
        let json = ResponseFormat::JsonObject;
        assert!(matches!(
            read(r#"{"answer": {"n": 3}}"#, &json, 0).unwrap(),
            Reply::Answer(a) if a == r#"{"n":3}"#
        ));
        assert!(read("{}", &text, 0).is_err());
    }
}
