//! XML as CAP reads it: quick-xml events into a small tree that keeps each element's
//! line, refusing what a hostile sender could use (a DTD and so any custom or external
//! entity, entities other than XML's five, deep nesting, floods of elements).

use quick_xml::events::Event;

/// Deepest element nesting accepted (CAP needs 4: alert, info, area, geocode/value).
const MAX_DEPTH: usize = 12;
/// Most elements in one alert.
const MAX_ELEMENTS: usize = 20_000;
/// Most parser events of any kind (text, references, comments…) in one alert.
const MAX_EVENTS: usize = 100_000;
/// Most attributes on one element (quick-xml compares each with all before it).
const MAX_ATTRIBUTES: usize = 32;

/// A refusal: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CapError {
    pub(crate) line: usize,
    pub(crate) element: String,
    pub(crate) message: String,
}

impl std::fmt::Display for CapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not valid CAP 1.2: line {}, <{}>: {}",
            self.line, self.element, self.message
        )
    }
}

/// One element as read: local name, line, text and children.
#[derive(Debug, Default)]
pub(super) struct El {
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) text: String,
    pub(super) children: Vec<El>,
    /// `xmlns` / `xmlns:*` values declared on it.
    pub(super) namespaces: Vec<String>,
}

impl El {
    pub(super) fn err(&self, message: impl Into<String>) -> CapError {
        CapError {
            line: self.line,
            element: self.name.clone(),
            message: message.into(),
        }
    }
    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    pub(super) fn first(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }
    pub(super) fn text_of(&self, name: &str) -> Option<&str> {
        self.first(name).map(|e| e.text.trim())
    }
    pub(super) fn required(&self, name: &str) -> Result<&El, CapError> {
        match self.first(name) {
            Some(e) if !e.text.trim().is_empty() => Ok(e),
            Some(e) => Err(e.err("must not be empty")),
            None => Err(self.err(format!("needs a <{name}> element"))),
        }
    }
}

fn too_many(line: usize, element: String) -> CapError {
    CapError {
        line,
        element,
        message: format!(
            "too deep or too many elements (at most {MAX_DEPTH} levels, {MAX_ELEMENTS} elements)"
        ),
    }
}

/// Reads XML into a tree, refusing DTDs, unknown entities, deep nesting and floods.
pub(super) fn read_tree(xml: &str) -> Result<El, CapError> {
    // Where every line starts, once: an element's line is a binary search, not a scan
    // from the top (which would make a document of many elements quadratic).
    let newlines: Vec<usize> = xml
        .bytes()
        .enumerate()
        .filter_map(|(i, b)| (b == b'\n').then_some(i))
        .collect();
    let line_at = |pos: u64| newlines.partition_point(|&n| n < pos as usize) + 1;
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<El> = Vec::new();
    let mut count = 0usize;
    let open = |e: &quick_xml::events::BytesStart<'_>, line: usize| -> Result<El, CapError> {
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        let mut namespaces = Vec::new();
        for (n, a) in e.attributes().enumerate() {
            if n >= MAX_ATTRIBUTES {
                return Err(CapError {
                    line,
                    element: name.clone(),
                    message: format!("more than {MAX_ATTRIBUTES} attributes"),
                });
            }
            let a = a.map_err(|err| CapError {
                line,
                element: name.clone(),
                message: format!("bad attribute: {err}"),
            })?;
            let key = a.key.as_ref();
            if key == b"xmlns" || key.starts_with(b"xmlns:") {
                namespaces.push(String::from_utf8_lossy(&a.value).into_owned());
            }
        }
        Ok(El {
            name,
            line,
            namespaces,
            ..El::default()
        })
    };
    let mut events = 0usize;
    loop {
        events += 1;
        if events > MAX_EVENTS {
            return Err(CapError {
                line: line_at(reader.buffer_position()),
                element: stack_name(&stack),
                message: format!(
                    "more than {MAX_EVENTS} pieces of XML (text, references, comments)"
                ),
            });
        }
        let pos = reader.buffer_position();
        let line = line_at(pos);
        let event = reader.read_event().map_err(|e| CapError {
            line: line_at(reader.error_position()),
            element: stack.last().map(|e| e.name.clone()).unwrap_or_default(),
            message: format!("not well-formed XML: {e}"),
        })?;
        let here = || stack_name(&stack);
        match event {
            Event::DocType(_) => {
                return Err(CapError {
                    line,
                    element: "!DOCTYPE".into(),
                    message: "a DTD is not accepted (no entities, no external references)".into(),
                });
            }
            Event::Start(e) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(too_many(line, here()));
                }
                stack.push(open(&e, line)?);
            }
            Event::Empty(e) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(too_many(line, here()));
                }
                let el = open(&e, line)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().expect("quick-xml checks end tags");
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => {
                if let Some(el) = stack.last_mut() {
                    let text = t.decode().map_err(|e| CapError {
                        line,
                        element: el.name.clone(),
                        message: format!("bad text: {e}"),
                    })?;
                    el.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                let el_name = here();
                let Some(el) = stack.last_mut() else { continue };
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => {
                        let name = String::from_utf8_lossy(&r).into_owned();
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => s.to_owned(),
                            None => {
                                return Err(CapError {
                                    line,
                                    element: el_name,
                                    message: format!(
                                        "entity &{name}; is not accepted (only the five of XML and character references)"
                                    ),
                                });
                            }
                        }
                    }
                };
                el.text.push_str(&resolved);
            }
            Event::CData(t) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => {
                return Err(CapError {
                    line,
                    element: here(),
                    message: "the document ends before its root element does".into(),
                });
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
}

fn stack_name(stack: &[El]) -> String {
    stack
        .last()
        .map(|e| e.name.clone())
        .unwrap_or_else(|| "alert".into())
}
