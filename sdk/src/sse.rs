//! A parser for `text/event-stream` (server-sent events), as the streaming
//! APIs of OpenAI, Anthropic and Gemini send them. It follows the WHATWG
//! event-stream rules: lines end in LF, CRLF or CR; `data:` lines of one
//! event are joined with LF; a blank line dispatches the event; lines that
//! start with `:` are comments; one space after the colon is dropped.
//!
//! The parser is fed bytes as they arrive, in chunks of any size:
//!
//! ```
//! use convergio_sdk::sse::SseParser;
//!
//! let mut parser = SseParser::default();
//! let mut events = parser.push(b"event: delta\ndata: {\"a\"");
//! assert!(events.is_empty());
//! events = parser.push(b":1}\n\n");
//! assert_eq!(events[0].event.as_deref(), Some("delta"));
//! assert_eq!(events[0].data, "{\"a\":1}");
//! ```

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (the spec's default type is `message`).
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

/// Incremental event-stream parser.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a following LF belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
}

impl SseParser {
    /// Feed bytes; returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        let line = String::from_utf8_lossy(&line);
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseEvent {
                    event: self.event.take(),
                    data,
                    id: self.id.clone(),
                });
            }
            self.event = None;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        chunks.iter().flat_map(|c| parser.push(c)).collect()
    }

    #[test]
    fn one_byte_at_a_time_equals_all_at_once() {
        let stream = b"data: {\"x\":1}\n\n: keep-alive\n\nevent: message_stop\ndata: {}\n\n";
        let whole = all(&[stream]);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(all(&bytes), whole);
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[1].event.as_deref(), Some("message_stop"));
    }

    #[test]
    fn line_endings_and_multi_line_data() {
        let events = all(&[b"data: a\r\ndata: b\r", b"\n\r\ndata:c\r\rdata:  d\n\n"]);
        assert_eq!(events[0].data, "a\nb");
        assert_eq!(events[1].data, "c");
        assert_eq!(events[2].data, " d", "only one space is dropped");
    }

    #[test]
    fn comments_and_empty_events_dispatch_nothing() {
        assert!(all(&[b": ping\n\n\n\nevent: x\n\n"]).is_empty());
        // An event without its blank line is not dispatched.
        assert!(all(&[b"data: partial"]).is_empty());
    }

    #[test]
    fn ids_persist_and_unknown_fields_are_ignored() {
        let events = all(&[b"id: 7\nretry: 10\ndata: a\n\ndata: b\n\n"]);
        assert_eq!(events[0].id.as_deref(), Some("7"));
        assert_eq!(events[1].id.as_deref(), Some("7"));
        assert_eq!(events[1].data, "b");
    }
}
