//! Reading a rendered feed back as an XML 1.0 parser must.

use super::*;

/// Text as an XML 1.0 parser hands it over: `\r\n` and a lone `\r` become `\n`.
pub fn xml_line_ends(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Whether XML 1.0 allows `c` in a document (production `Char`).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        || c >= '\u{10000}'
}

/// What [`read_xml`] found: the text of every element and the value of every attribute, keyed by
/// path, such as `rss/channel/item/title` and `rss/channel/podcast:locked@owner`, in document
/// order.
#[derive(Debug, Default)]
pub struct XmlValues(pub HashMap<String, Vec<String>>);

impl XmlValues {
    /// Every value at `path`.
    pub fn all(&self, path: &str) -> &[String] {
        self.0.get(path).map_or(&[], Vec::as_slice)
    }

    /// The one value at `path`, or why there is not exactly one.
    pub fn one(&self, path: &str) -> Result<&str, String> {
        match self.all(path) {
            [v] => Ok(v),
            other => Err(format!("{path}: {} values, expected one", other.len())),
        }
    }
}

/// Reads an XML document the way a conforming XML 1.0 parser with namespaces must: every
/// character allowed, tags balanced, attributes unique, references defined, prefixes declared,
/// one root element. Text is unescaped and its line ends normalized ([`xml_line_ends`]);
/// attribute values are normalized as XML 1.0 says.
pub fn read_xml(xml: &[u8]) -> Result<XmlValues, String> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    use quick_xml::reader::NsReader;

    let text = std::str::from_utf8(xml).map_err(|e| format!("not UTF-8: {e}"))?;
    if let Some((at, c)) = text.char_indices().find(|&(_, c)| !xml_char(c)) {
        return Err(format!(
            "character {c:?} at byte {at} is not allowed in XML"
        ));
    }
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut values = XmlValues::default();
    // Open elements: name, and the text collected so far.
    let mut open: Vec<(String, String)> = Vec::new();
    let mut roots = 0;
    let path_of = |open: &[(String, String)]| {
        open.iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join("/")
    };
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {at}: {e}"))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let (ns, _) = reader.resolver().resolve_element(e.name());
                if let ResolveResult::Unknown(prefix) = ns {
                    return Err(format!(
                        "at byte {at}: prefix {:?} is not declared",
                        String::from_utf8_lossy(&prefix)
                    ));
                }
                if open.is_empty() {
                    roots += 1;
                }
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                open.push((name, String::new()));
                let path = path_of(&open);
                for attr in e.attributes() {
                    let attr = attr.map_err(|e| format!("at byte {at}: {e}"))?;
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| format!("at byte {at}: {e}"))?;
                    if value.chars().any(|c| !xml_char(c)) {
                        return Err(format!(
                            "at byte {at}: an attribute holds a forbidden character"
                        ));
                    }
                    let key = format!("{path}@{}", String::from_utf8_lossy(attr.key.as_ref()));
                    values.0.entry(key).or_default().push(value.into_owned());
                }
                if matches!(event, Event::Empty(_)) {
                    open.pop();
                    values.0.entry(path).or_default().push(String::new());
                }
            }
            Event::End(_) => {
                let path = path_of(&open);
                let (_, text) = open.pop().ok_or("an end tag without a start")?;
                values.0.entry(path).or_default().push(text);
            }
            Event::Text(t) => {
                let t = t
                    .xml10_content()
                    .map_err(|e| format!("at byte {at}: {e}"))?;
                match open.last_mut() {
                    Some((_, text)) => text.push_str(&t),
                    None if t.trim().is_empty() => {}
                    None => return Err(format!("at byte {at}: text outside the root element")),
                }
            }
            Event::CData(c) => {
                let c = c
                    .xml10_content()
                    .map_err(|e| format!("at byte {at}: {e}"))?;
                let (_, text) = open
                    .last_mut()
                    .ok_or(format!("at byte {at}: CDATA outside the root element"))?;
                text.push_str(&c);
            }
            Event::GeneralRef(r) => {
                let resolved = match r
                    .resolve_char_ref()
                    .map_err(|e| format!("at byte {at}: {e}"))?
                {
                    Some(c) if xml_char(c) => c.to_string(),
                    Some(c) => return Err(format!("at byte {at}: reference to {c:?}")),
                    None => {
                        let name = r.decode().map_err(|e| format!("at byte {at}: {e}"))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or(format!("at byte {at}: entity &{name}; is not defined"))?
                            .to_owned()
                    }
                };
                let (_, text) = open.last_mut().ok_or(format!(
                    "at byte {at}: a reference outside the root element"
                ))?;
                text.push_str(&resolved);
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::DocType(_) => return Err("a feed has no DOCTYPE".into()),
            Event::Eof => break,
        }
    }
    if !open.is_empty() {
        return Err(format!("{} elements are not closed", open.len()));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(values)
}
