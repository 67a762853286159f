//! A small XML writer for EC2 responses.
//!
//! EC2 responses are flat element trees with no attributes except the root namespace, so a
//! string builder with correct escaping is all that is needed.

/// The namespace of API version 2016-11-15.
pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// Builds one response document.
#[derive(Debug)]
pub struct XmlWriter {
    out: String,
    stack: Vec<&'static str>,
    root: Option<String>,
}

/// Escapes text for element content.
pub fn escape(s: &str, out: &mut String) {
    // Most values need nothing escaped: copy them whole.
    // 0xEF leads U+FFFE and U+FFFF in UTF-8: such a value takes the careful path below.
    let special =
        |b: &u8| matches!(*b, b'&' | b'<' | b'>' | 0xEF) || (*b < 0x20 && !matches!(*b, b'\t' | b'\n' | b'\r'));
    if !s.as_bytes().iter().any(special) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(c),
            // XML 1.0 cannot carry other control characters at all, not even as references;
            // show a replacement character so an echoed value never silently changes meaning.
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

impl XmlWriter {
    /// Starts `<{Action}Response xmlns=…><requestId>…</requestId>`.
    pub fn response(action: &str, request_id: &str) -> Self {
        let mut out = String::with_capacity(1024);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
        out.push_str(action);
        out.push_str("Response xmlns=\"");
        out.push_str(NAMESPACE);
        out.push_str("\">");
        let mut w = XmlWriter { out, stack: Vec::new(), root: None };
        w.text("requestId", request_id);
        w.root = Some(format!("{action}Response"));
        w
    }

    /// Opens an element; close it with [`XmlWriter::end`].
    pub fn start(&mut self, name: &'static str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.stack.push(name);
        self
    }

    /// Closes the most recently opened element.
    pub fn end(&mut self) -> &mut Self {
        if let Some(name) = self.stack.pop() {
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
        }
        self
    }

    /// Writes `<name>escaped value</name>`.
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        escape(value, &mut self.out);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Writes an element only when the value is present.
    pub fn opt(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.text(name, v);
        }
        self
    }

    /// Writes a boolean as `true`/`false`.
    pub fn bool(&mut self, name: &str, value: bool) -> &mut Self {
        self.text(name, if value { "true" } else { "false" })
    }

    /// Writes a number.
    pub fn num(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        self.text(name, &value.to_string())
    }

    /// Writes `<name><item>…</item>…</name>`, always present even when empty.
    pub fn list<T>(&mut self, name: &'static str, items: &[T], mut each: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.start(name);
        for (i, item) in items.iter().enumerate() {
            let before = self.out.len();
            self.start("item");
            each(self, item);
            self.end();
            if i == 0 {
                // Items are alike in size: grow once instead of doubling through a long list.
                self.out.reserve((self.out.len() - before) * (items.len() - 1));
            }
        }
        self.end()
    }

    /// Like [`XmlWriter::list`] but omits the element entirely when there are no items, as EC2
    /// does for optional lists such as an untagged resource's `tagSet`.
    pub fn list_nonempty<T>(&mut self, name: &'static str, items: &[T], each: impl FnMut(&mut Self, &T)) -> &mut Self {
        if !items.is_empty() {
            self.list(name, items, each);
        }
        self
    }

    /// A list of plain strings: `<name><item>v</item></name>`.
    pub fn string_list(&mut self, name: &'static str, items: &[String]) -> &mut Self {
        self.start(name);
        for item in items {
            self.text("item", item);
        }
        self.end()
    }

    /// Closes every open element and the root, returning the document.
    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.end();
        }
        if let Some(root) = self.root.take() {
            self.out.push_str("</");
            self.out.push_str(&root);
            self.out.push('>');
        }
        self.out
    }
}

/// Renders the EC2 error envelope.
pub fn error_document(code: &str, message: &str, request_id: &str) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>");
    escape(code, &mut out);
    out.push_str("</Code><Message>");
    escape(message, &mut out);
    out.push_str("</Message></Error></Errors><RequestID>");
    escape(request_id, &mut out);
    out.push_str("</RequestID></Response>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_document_shape() {
        let mut w = XmlWriter::response("DescribeKeyPairs", "req-1");
        w.list("keySet", &["a<b", "c"], |w, name| {
            w.text("keyName", name);
        });
        w.list_nonempty("tagSet", &[] as &[&str], |_, _| {});
        assert_eq!(
            w.finish(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeKeyPairsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>req-1</requestId><keySet><item><keyName>a&lt;b</keyName></item><item><keyName>c</keyName></item></keySet></DescribeKeyPairsResponse>"
        );
    }

    #[test]
    fn error_document_shape() {
        assert_eq!(
            error_document("InvalidKeyPair.NotFound", "The key pair 'x&y' does not exist", "r"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidKeyPair.NotFound</Code><Message>The key pair 'x&amp;y' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>"
        );
    }

    #[test]
    fn control_characters_are_replaced_visibly() {
        let mut s = String::new();
        escape("a\u{1}b\tc", &mut s);
        assert_eq!(s, "a\u{FFFD}b\tc");
    }

    #[test]
    fn the_fast_path_agrees_with_the_careful_one() {
        for (raw, want) in [
            ("plain ünïcode ✓", "plain ünïcode ✓"),
            ("a<b>&c", "a&lt;b&gt;&amp;c"),
            ("x\u{FFFE}y\u{FFFF}", "x\u{FFFD}y\u{FFFD}"),
            ("\u{EFFF}\u{F000}", "\u{EFFF}\u{F000}"),
            ("line\nnext\r\n", "line\nnext\r\n"),
        ] {
            let mut s = String::new();
            escape(raw, &mut s);
            assert_eq!(s, want, "{raw:?}");
        }
    }
}
