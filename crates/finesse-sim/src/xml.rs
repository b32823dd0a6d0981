//! Just enough XML: escaping for the documents we write, and a small element
//! tree for the ones we read (REST bodies, XMPP stanzas, one per WebSocket
//! message as RFC 7395 frames them).

use quick_xml::events::Event;
use quick_xml::Reader;
use std::borrow::Cow;

/// Escapes text and attribute values.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['<', '>', '&', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// One parsed element. Names are local (prefix dropped); attributes keep
/// their full names (`xmlns`, `xml:lang`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    /// The text of a direct child, trimmed.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

/// Documents deeper than this are refused (nobody sends them legitimately).
const MAX_DEPTH: usize = 32;

/// Parses one document (one root element; nothing after it but space).
pub fn parse(input: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(input);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let _ = e;
                return Err("content after the root element".into());
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err("XML nested too deeply".into());
                }
                stack.push(element_of(&e)?);
            }
            Event::Empty(e) => {
                let el = element_of(&e)?;
                attach(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced end tag")?;
                attach(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| format!("bad text: {e}"))?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&text),
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::CData(c) => {
                let text = String::from_utf8(c.into_inner().into_owned())
                    .map_err(|_| "CDATA is not UTF-8")?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&text),
                    None => return Err("CDATA outside the root element".into()),
                }
            }
            Event::Eof => break,
            // declarations, comments, processing instructions, doctypes
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::DocType(_) => return Err("DOCTYPE is not accepted".into()),
        }
    }
    if !stack.is_empty() {
        return Err("unclosed element".into());
    }
    root.ok_or_else(|| "no element".into())
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn element_of(e: &quick_xml::events::BytesStart<'_>) -> Result<Element, String> {
    let name = String::from_utf8(e.local_name().as_ref().to_vec()).map_err(|_| "bad name")?;
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("bad attribute: {e}"))?;
        let key = String::from_utf8(a.key.as_ref().to_vec()).map_err(|_| "bad attribute")?;
        let value = a
            .unescape_value()
            .map_err(|e| format!("bad attribute value: {e}"))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        ..Element::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stanza_with_namespaces_and_text() {
        let el = parse(
            r#"<iq type="set" id="b1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>desk &amp; top</resource></bind></iq>"#,
        )
        .expect("parse");
        assert_eq!(el.name, "iq");
        assert_eq!(el.attr("id"), Some("b1"));
        let bind = el.child("bind").expect("bind");
        assert_eq!(bind.attr("xmlns"), Some("urn:ietf:params:xml:ns:xmpp-bind"));
        assert_eq!(bind.child_text("resource"), Some("desk & top"));
    }

    #[test]
    fn prefixes_are_dropped_from_names() {
        let el = parse(r#"<stream:features xmlns:stream="http://etherx.jabber.org/streams"/>"#)
            .expect("parse");
        assert_eq!(el.name, "features");
    }

    #[test]
    fn refuses_garbage_doctypes_and_two_roots() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a/><b/>").is_err());
        assert!(parse("<!DOCTYPE x [<!ENTITY e 'x'>]><a>&e;</a>").is_err());
        assert!(parse("").is_err());
        assert!(parse("just text").is_err());
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }
}
