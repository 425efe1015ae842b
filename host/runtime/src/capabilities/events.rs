//! `convergio:platform/events`: plugins publish JSON events on the topics
//! they are granted (`events = ["run.*"]`); the host fans them out to
//! subscribers ([`crate::Runtime::subscribe`]).

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast;
use wasmtime::component::{HasData, Linker};

use super::{CapabilityHost, HostCapability, Services};
use crate::bindings::events;
use crate::config::{Platform, PluginSpec};
use crate::time::unix_ms;
use crate::{Capability, Result};

/// Largest event payload a plugin may publish.
pub const MAX_EVENT_PAYLOAD: usize = 64 * 1024;

/// An event published by a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Plugin that published it.
    pub source: String,
    /// Topic, e.g. `run.node.finished`.
    pub topic: String,
    /// JSON text.
    pub payload: String,
    /// Unix time in milliseconds.
    pub timestamp_ms: u64,
}

/// One entry of an `events` grant: a topic, or a prefix written with `*` at
/// its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicPattern {
    /// Exactly this topic.
    Exact(String),
    /// Every topic starting with this.
    Prefix(String),
}

impl TopicPattern {
    pub(crate) fn parse(text: &str) -> Self {
        match text.strip_suffix('*') {
            Some(prefix) => Self::Prefix(prefix.to_owned()),
            None => Self::Exact(text.to_owned()),
        }
    }

    pub(crate) fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Exact(t) => t == topic,
            Self::Prefix(p) => topic.starts_with(p.as_str()),
        }
    }
}

pub(crate) struct Events;

/// What the events capability holds for one plugin.
pub(crate) struct EventsCtx {
    topics: Vec<TopicPattern>,
    sender: broadcast::Sender<Event>,
}

impl HostCapability for Events {
    const CAPABILITY: Option<Capability> = Some(Capability::Events);
    /// Where every event goes.
    type Shared = broadcast::Sender<Event>;
    type Plugin = EventsCtx;
    type Store = ();

    fn provides(interface: &str) -> bool {
        interface == "convergio:platform/events"
    }

    fn open(_: &Platform, _: &Services) -> Result<Self::Shared> {
        Ok(broadcast::channel(1024).0)
    }

    fn prepare(
        shared: &Self::Shared,
        _: &Services,
        spec: &Arc<PluginSpec>,
    ) -> std::result::Result<EventsCtx, Vec<String>> {
        Ok(EventsCtx {
            topics: spec
                .grants
                .events
                .iter()
                .map(|t| TopicPattern::parse(t))
                .collect(),
            sender: shared.clone(),
        })
    }

    fn store(_: &EventsCtx) {}

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        events::add_to_linker::<T, EventsView<'static>>(linker, view::<T>)
    }
}

/// A store's view for `events`: the plugin's id and its context.
pub(crate) struct EventsView<'a> {
    plugin: &'a str,
    ctx: &'a EventsCtx,
}

impl HasData for EventsView<'static> {
    type Data<'a> = EventsView<'a>;
}

fn view<T: CapabilityHost>(host: &mut T) -> EventsView<'_> {
    let plugin = host.parts().plugin;
    EventsView {
        plugin: &plugin.spec.id,
        ctx: &plugin.events,
    }
}

impl events::Host for EventsView<'_> {
    fn publish(
        &mut self,
        topic: String,
        payload: String,
    ) -> std::result::Result<(), events::EventError> {
        let plugin = self.plugin;
        let _span =
            tracing::debug_span!("convergio.events.publish", plugin, topic = ?topic).entered();
        if !self.ctx.topics.iter().any(|p| p.matches(&topic)) {
            return Err(events::EventError::AccessDenied(format!(
                "plugin `{plugin}` may not publish on `{topic}`; grant it with events = [\"{topic}\"] under its [plugin.grants] in platform.toml"
            )));
        }
        if payload.len() > MAX_EVENT_PAYLOAD {
            return Err(events::EventError::Invalid(format!(
                "payload is {} bytes; the limit is {MAX_EVENT_PAYLOAD}",
                payload.len()
            )));
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&payload) {
            return Err(events::EventError::Invalid(format!(
                "payload is not JSON: {e}"
            )));
        }
        let timestamp_ms = unix_ms(SystemTime::now());
        tracing::info!(target: "event", plugin, topic = ?topic, payload = ?payload, "event");
        // No subscriber is not an error: events are fire-and-forget.
        let _ = self.ctx.sender.send(Event {
            source: plugin.to_owned(),
            topic,
            payload,
            timestamp_ms,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::TopicPattern;

    #[test]
    fn topics() {
        let granted = [TopicPattern::parse("run.*"), TopicPattern::parse("demo")];
        let allowed = |topic: &str| granted.iter().any(|p| p.matches(topic));
        assert!(allowed("run.node.finished"));
        assert!(allowed("demo"));
        assert!(!allowed("demo.more"));
        assert!(!allowed("rum"));
    }
}
