//! The lines written to the CLI's stdin when it reads stream-json (`--input-format
//! stream-json`): user messages, the host's control requests, and its answers to the CLI's own
//! requests (tool approvals). Each is one JSON object and a newline.

use bytes::Bytes;
use serde_json::{Value, json};

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).expect("a JSON value serializes");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// A user message: `content` is a string, or content blocks (text, base64 images).
pub fn user_message(content: Value) -> Bytes {
    line(&json!({
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": null,
    }))
}

/// A request of the host's, which the CLI answers with a `control_response` naming
/// `request_id`.
pub fn control_request(request_id: &str, request: Control<'_>) -> Bytes {
    let request = match request {
        Control::Interrupt => json!({"subtype": "interrupt"}),
        // A model of null goes back to the default.
        Control::SetModel(model) => json!({"subtype": "set_model", "model": model}),
        Control::SetPermissionMode(mode) => {
            json!({"subtype": "set_permission_mode", "mode": mode})
        }
    };
    line(&json!({
        "type": "control_request",
        "request_id": request_id,
        "request": request,
    }))
}

/// What the host may ask of a running CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control<'a> {
    /// End the turn now.
    Interrupt,
    /// None: back to the default model.
    SetModel(Option<&'a str>),
    /// As the CLI names the mode (`default`, `acceptEdits`, `plan`, ...).
    SetPermissionMode(&'a str),
}

/// The answer to a CLI's request of the host (`can_use_tool`): the tool may run, with this
/// input.
pub fn allow_tool(request_id: &str, input: Value) -> Bytes {
    success(
        request_id,
        json!({"behavior": "allow", "updatedInput": input}),
    )
}

/// The answer to a CLI's `can_use_tool`: the tool does not run, and the model is told
/// `message`; with `interrupt`, the turn ends too.
pub fn deny_tool(request_id: &str, message: &str, interrupt: bool) -> Bytes {
    success(
        request_id,
        json!({"behavior": "deny", "message": message, "interrupt": interrupt}),
    )
}

/// The answer to a request of the CLI's that the host does not take.
pub fn refuse_request(request_id: &str, error: &str) -> Bytes {
    line(&json!({
        "type": "control_response",
        "response": {"subtype": "error", "request_id": request_id, "error": error},
    }))
}

fn success(request_id: &str, response: Value) -> Bytes {
    line(&json!({
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": response},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: Bytes) -> Value {
        assert!(line.ends_with(b"\n"), "one line");
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        serde_json::from_slice(&line).unwrap()
    }

    #[test]
    fn the_lines_are_the_clis_stream_json() {
        let table = [
            (
                user_message("a\nb".into()),
                json!({"type": "user", "message": {"role": "user", "content": "a\nb"}, "parent_tool_use_id": null}),
            ),
            (
                control_request("r1", Control::SetModel(Some("opus"))),
                json!({"type": "control_request", "request_id": "r1", "request": {"subtype": "set_model", "model": "opus"}}),
            ),
            (
                control_request("r2", Control::Interrupt),
                json!({"type": "control_request", "request_id": "r2", "request": {"subtype": "interrupt"}}),
            ),
            (
                allow_tool("t1", json!({"command": "ls"})),
                json!({"type": "control_response", "response": {"subtype": "success", "request_id": "t1", "response": {"behavior": "allow", "updatedInput": {"command": "ls"}}}}),
            ),
            (
                deny_tool("t2", "no", true),
                json!({"type": "control_response", "response": {"subtype": "success", "request_id": "t2", "response": {"behavior": "deny", "message": "no", "interrupt": true}}}),
            ),
            (
                refuse_request("t3", "not here"),
                json!({"type": "control_response", "response": {"subtype": "error", "request_id": "t3", "error": "not here"}}),
            ),
        ];
        for (line, expected) in table {
            assert_eq!(parsed(line), expected);
        }
    }
}
