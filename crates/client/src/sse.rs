//! A small Server-Sent Events parser (the WHATWG event-stream format) over
//! byte chunks: lines end with CRLF, LF or CR; `field: value` lines build an
//! event, a blank line dispatches it, lines starting with `:` are comments.

/// One item of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A dispatched event: its `event:` (default `message`), its `data:`
    /// lines joined by `\n`, and its `id:`.
    Event {
        event: String,
        data: String,
        id: Option<String>,
    },
    /// A comment line, without its leading `:`.
    Comment(String),
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    buffer: Vec<u8>,
    /// The last chunk ended with CR: an LF first in the next one is its pair.
    pending_cr: bool,
    event: String,
    data: Vec<String>,
    id: Option<String>,
}

impl Parser {
    /// Parses a chunk; the items it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Item> {
        let mut chunk = chunk;
        if self.pending_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.pending_cr = false;
        self.buffer.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < self.buffer.len() {
            let b = self.buffer[i];
            if b == b'\n' || b == b'\r' {
                let line = String::from_utf8_lossy(&self.buffer[start..i]).into_owned();
                if b == b'\r' {
                    if self.buffer.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    } else if i + 1 == self.buffer.len() {
                        self.pending_cr = true;
                    }
                }
                i += 1;
                start = i;
                self.line(line, &mut out);
            } else {
                i += 1;
            }
        }
        self.buffer.drain(..start);
        out
    }

    fn line(&mut self, line: String, out: &mut Vec<Item>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                let event = std::mem::take(&mut self.event);
                out.push(Item::Event {
                    event: if event.is_empty() { "message".into() } else { event },
                    data: std::mem::take(&mut self.data).join("\n"),
                    id: self.id.take(),
                });
            }
            self.event.clear();
            self.data.clear();
            self.id = None;
            return;
        }
        if let Some(c) = line.strip_prefix(':') {
            out.push(Item::Comment(c.strip_prefix(' ').unwrap_or(c).to_owned()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => self.data.push(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_ends() {
        let mut p = Parser::default();
        let mut items = p.push(b": watching after revision 4\r");
        items.extend(p.push(b"\nevent: change\nid: 5\ndata: {\"a\"\r\ndata: 1}\n"));
        items.extend(p.push(b"\n"));
        assert_eq!(
            items,
            vec![
                Item::Comment("watching after revision 4".into()),
                Item::Event {
                    event: "change".into(),
                    data: "{\"a\"\n1}".into(),
                    id: Some("5".into())
                },
            ]
        );
    }
}
