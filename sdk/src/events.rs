//! Publishing platform events through `convergio:platform/events`.

use serde::Serialize;

use crate::bindings::convergio::platform::events;

pub use events::EventError;

/// Publishes `payload` (JSON text) on `topic`, e.g. `run.node.finished`.
pub fn publish(topic: &str, payload: &str) -> Result<(), EventError> {
    events::publish(topic, payload)
}

/// Serializes `payload` to JSON and publishes it on `topic`.
pub fn publish_json<T: Serialize + ?Sized>(topic: &str, payload: &T) -> Result<(), EventError> {
    let json = serde_json::to_string(payload)
        .map_err(|e| EventError::Invalid(format!("cannot serialize the payload: {e}")))?;
    publish(topic, &json)
}
