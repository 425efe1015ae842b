//! The `completion-stream` resource of an upstream that streams
//! server-sent events: [`SseStream`] reads the events as
//! [`GuestCompletionStream::next`] asks for them and hands each to the
//! adapter's [`EventDecoder`], which alone knows the API's events.
//!
//! ```no_run
//! use convergio_sdk::client::Response;
//! use convergio_sdk::provider::{
//!     self, CompletionStream, Delta, EventDecoder, ModelError, SseStream, Upstream,
//! };
//! use convergio_sdk::sse::SseEvent;
//!
//! /// An API whose events carry text and end with `data: [END]`.
//! struct Lines {
//!     finished: bool,
//! }
//!
//! impl EventDecoder for Lines {
//!     fn event(&mut self, event: &SseEvent) -> provider::Result<Option<Delta>> {
//!         self.finished = event.data == "[END]";
//!         Ok(Some(Delta {
//!             content: if self.finished { String::new() } else { event.data.clone() },
//!             tool_calls: Vec::new(),
//!             finish_reason: self.finished.then_some(provider::FinishReason::Stop),
//!             usage: None,
//!         }))
//!     }
//!
//!     fn finished(&self) -> bool {
//!         self.finished
//!     }
//!
//!     fn end(&mut self) -> provider::Result<Delta> {
//!         Err(ModelError::Upstream("the stream ended before [END]".into()))
//!     }
//! }
//!
//! // In `Guest`: `type CompletionStream = SseStream<Lines>;` and in `stream`:
//! fn stream(upstream: &Upstream, response: Response) -> CompletionStream {
//!     CompletionStream::new(SseStream::new(upstream, response.events(), Lines { finished: false }))
//! }
//! ```

use std::cell::RefCell;

use crate::client::{Events, HttpError};
use crate::provider::{Delta, GuestCompletionStream, Result, Upstream};
use crate::sse::SseEvent;

/// Turns an upstream's events into deltas: the part of a streaming adapter
/// that is specific to its API.
pub trait EventDecoder {
    /// Decodes one event: the delta it completes, `None` to read on, or the
    /// error it carries (which ends the stream).
    fn event(&mut self, event: &SseEvent) -> Result<Option<Delta>>;

    /// Whether the answer is complete: the stream ends after the delta
    /// just returned (or now, if none was).
    fn finished(&self) -> bool;

    /// The body ended before [`finished`](Self::finished): the last delta
    /// (for an API whose last event may still be followed by usage), or
    /// the error of a stream that was cut off. Never silence: a stream that
    /// just stops is an error.
    fn end(&mut self) -> Result<Delta>;
}

/// Where the events come from: a response's [`Events`], or a list in tests.
pub trait EventSource {
    /// The next event; `None` when the body has ended.
    fn next_event(&mut self) -> core::result::Result<Option<SseEvent>, HttpError>;
}

impl EventSource for Events {
    fn next_event(&mut self) -> core::result::Result<Option<SseEvent>, HttpError> {
        Events::next_event(self)
    }
}

/// A streamed completion: `events` decoded by `D` as the host asks for the
/// next delta. Once a delta finishes the answer or an error is returned,
/// `next` answers `None`.
#[derive(Debug)]
pub struct SseStream<D, S = Events>(RefCell<State<D, S>>);

#[derive(Debug)]
struct State<D, S> {
    events: S,
    decoder: D,
    /// Maps a body that fails to read.
    upstream: Upstream,
    /// The last delta or an error was returned.
    done: bool,
}

impl<D: EventDecoder, S: EventSource> SseStream<D, S> {
    /// `events` of a response from `upstream`, decoded by `decoder`.
    pub fn new(upstream: &Upstream, events: S, decoder: D) -> Self {
        Self(RefCell::new(State {
            events,
            decoder,
            upstream: upstream.clone(),
            done: false,
        }))
    }

    /// The next delta, the error that ends the stream, or `None` once it
    /// has ended. A body that fails to read is the upstream's
    /// [`stream_error`](Upstream::stream_error).
    pub fn next_delta(&self) -> Option<Result<Delta>> {
        let mut state = self.0.borrow_mut();
        let State {
            events,
            decoder,
            upstream,
            done,
        } = &mut *state;
        if *done {
            return None;
        }
        loop {
            let event = match events.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => {
                    *done = true;
                    return Some(decoder.end());
                }
                Err(e) => {
                    *done = true;
                    return Some(Err(upstream.stream_error(&e)));
                }
            };
            match decoder.event(&event) {
                Ok(Some(delta)) => {
                    *done = decoder.finished();
                    return Some(Ok(delta));
                }
                Ok(None) if decoder.finished() => {
                    *done = true;
                    return None;
                }
                Ok(None) => {}
                Err(e) => {
                    *done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl<D, S> GuestCompletionStream for SseStream<D, S>
where
    D: EventDecoder + 'static,
    S: EventSource + 'static,
{
    fn next(&self) -> Option<Result<Delta>> {
        self.next_delta()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::provider::{FinishReason, KeyName, ModelError};

    /// Events from a list, then the end of the body or a read failure.
    #[derive(Debug)]
    struct Script(VecDeque<core::result::Result<SseEvent, HttpError>>);

    impl EventSource for Script {
        fn next_event(&mut self) -> core::result::Result<Option<SseEvent>, HttpError> {
            self.0.pop_front().transpose()
        }
    }

    /// `text` events are text deltas, `stop` finishes, `bad` is an error;
    /// with `hold_last`, `stop` is held back until the body ends.
    #[derive(Debug, Default)]
    struct Decoder {
        finished: bool,
        hold_last: bool,
        held: Option<Delta>,
    }

    fn delta(content: &str, finish: Option<FinishReason>) -> Delta {
        Delta {
            content: content.to_owned(),
            tool_calls: Vec::new(),
            finish_reason: finish,
            usage: None,
        }
    }

    impl EventDecoder for Decoder {
        fn event(&mut self, event: &SseEvent) -> Result<Option<Delta>> {
            match event.event.as_deref() {
                Some("text") => Ok(Some(delta(&event.data, None))),
                Some("stop") if self.hold_last => {
                    self.held = Some(delta("", Some(FinishReason::Stop)));
                    Ok(None)
                }
                Some("stop") => {
                    self.finished = true;
                    Ok(Some(delta("", Some(FinishReason::Stop))))
                }
                Some("silent-stop") => {
                    self.finished = true;
                    Ok(None)
                }
                Some("bad") => Err(ModelError::MalformedResponse(event.data.clone())),
                _ => Ok(None),
            }
        }

        fn finished(&self) -> bool {
            self.finished
        }

        fn end(&mut self) -> Result<Delta> {
            self.held
                .take()
                .ok_or_else(|| ModelError::Upstream("cut off".to_owned()))
        }
    }

    fn event(name: &str, data: &str) -> core::result::Result<SseEvent, HttpError> {
        Ok(SseEvent {
            event: Some(name.to_owned()),
            data: data.to_owned(),
            id: None,
        })
    }

    fn run(
        decoder: Decoder,
        events: Vec<core::result::Result<SseEvent, HttpError>>,
    ) -> Vec<Result<Delta>> {
        let key = KeyName::parse("default", "acme").unwrap();
        let upstream = Upstream::new("Acme API", "https://api.acme.test", key);
        let stream = SseStream::new(&upstream, Script(events.into()), decoder);
        let out: Vec<_> = std::iter::from_fn(|| stream.next_delta())
            .take(20)
            .collect();
        assert!(stream.next_delta().is_none(), "an ended stream stays ended");
        out
    }

    #[test]
    fn deltas_until_the_decoder_finishes() {
        let out = run(
            Decoder::default(),
            vec![
                event("ping", ""),
                event("text", "a"),
                event("text", "b"),
                event("stop", ""),
                event("text", "after the end"),
            ],
        );
        let texts: Vec<_> = out
            .iter()
            .map(|d| d.as_ref().unwrap().content.as_str())
            .collect();
        assert_eq!(texts, ["a", "b", ""]);
        assert!(out[2].as_ref().unwrap().finish_reason.is_some());
        let out = run(
            Decoder::default(),
            vec![
                event("text", "a"),
                event("silent-stop", ""),
                event("text", "x"),
            ],
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn the_end_of_the_body_gives_the_held_delta_or_an_error() {
        let hold = || Decoder {
            hold_last: true,
            ..Decoder::default()
        };
        let out = run(hold(), vec![event("text", "a"), event("stop", "")]);
        assert_eq!(out.len(), 2);
        assert!(out[1].as_ref().unwrap().finish_reason.is_some());
        let out = run(Decoder::default(), vec![event("text", "a")]);
        assert!(matches!(&out[1], Err(ModelError::Upstream(m)) if m == "cut off"));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn errors_end_the_stream() {
        let out = run(
            Decoder::default(),
            vec![event("bad", "x"), event("text", "never")],
        );
        assert!(matches!(&out[..], [Err(ModelError::MalformedResponse(_))]));
        let out = run(
            Decoder::default(),
            vec![
                event("text", "a"),
                Err(HttpError::Stream("HttpResponseTimeout".into())),
                event("text", "never"),
            ],
        );
        assert!(matches!(&out[..], [Ok(_), Err(ModelError::Timeout(_))]));
        let out = run(
            Decoder::default(),
            vec![Err(HttpError::Stream("the stream closed".into()))],
        );
        assert!(matches!(&out[..], [Err(ModelError::Upstream(m))] if m.contains("broke off")));
    }
}
