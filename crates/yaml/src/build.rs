//! Builds the located tree from the event stream of `saphyr-parser`.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};

use super::{Entry, Error, Node, Pos, Scalar, Value};

/// Parses one YAML document into a located tree.
///
/// An empty document gives a null node at 1:1. On failure every problem found is returned:
/// duplicate keys are all collected, a syntax error ends the parse. Several documents in one
/// text are refused because configuration files hold one.
pub fn parse(text: &str) -> Result<Node, Vec<Error>> {
    match parse_with_errors(text) {
        (Some(root), errors) if errors.is_empty() => Ok(root),
        (_, errors) => Err(errors),
    }
}

/// Like [`parse`], but keeps the tree when the only problems are semantic (duplicate keys, bad
/// merges), so a caller can report those together with its own findings. The tree is `None`
/// after a syntax error. Errors come sorted by position.
pub fn parse_with_errors(text: &str) -> (Option<Node>, Vec<Error>) {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        if builder.stopped {
            break;
        }
        match event {
            Ok((event, span)) => builder.event(event, pos(span.start)),
            Err(err) => {
                builder.errors.push(Error {
                    pos: pos(*err.marker()),
                    path: String::new(),
                    message: format!(
                        "YAML syntax error: {}{}; fix the YAML at this place",
                        err.info(),
                        syntax_hint(err.info())
                    ),
                });
                builder.stopped = true;
                break;
            }
        }
    }
    let mut errors = builder.errors;
    errors.sort_by_key(|e| e.pos);
    if builder.stopped {
        return (None, errors);
    }
    let root = builder
        .root
        .unwrap_or_else(|| Node::null(Pos { line: 1, column: 1 }));
    (Some(root), errors)
}

/// saphyr counts lines from 1 and columns from 0; messages use 1-based columns like editors.
fn pos(marker: Marker) -> Pos {
    Pos {
        line: marker.line(),
        column: marker.col() + 1,
    }
}

/// A collection being filled while its events arrive.
struct Frame {
    node_pos: Pos,
    tag: Option<String>,
    anchor: usize,
    path: String,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<Entry>,
        pending_key: Option<Node>,
        /// First position of every scalar key, to report duplicates with both places.
        seen: HashMap<String, Pos>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    errors: Vec<Error>,
    /// Set when parsing stopped early; the partial tree is then not returned.
    stopped: bool,
    /// Nodes copied so far by alias expansion.
    expanded: usize,
}

/// The most nodes alias expansion may copy in one document.
const MAX_ALIAS_NODES: usize = 100_000;

/// How many nodes a subtree holds.
fn size(node: &Node) -> usize {
    1 + match &node.value {
        Value::Scalar(_) => 0,
        Value::Seq(items) => items.iter().map(size).sum(),
        Value::Map(entries) => entries.iter().map(|e| size(&e.key) + size(&e.value)).sum(),
    }
}

impl Builder {
    fn event(&mut self, event: Event<'_>, at: Pos) {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents == 2 {
                    self.errors.push(Error {
                        pos: at,
                        path: String::new(),
                        message: "a second YAML document starts here; expected one document; \
                                  remove the extra `---` and what follows or split the file"
                            .into(),
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = Node {
                    pos: at,
                    tag: tag_text(tag.as_deref()),
                    value: Value::Scalar(Scalar {
                        text: text.into_owned(),
                        quoted: style != ScalarStyle::Plain,
                    }),
                };
                self.finish(node, anchor);
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    // Aliases of aliases grow exponentially ("billion laughs"); a config file
                    // never needs this many nodes, so stop instead of exhausting memory.
                    self.expanded += size(node);
                    if self.expanded > MAX_ALIAS_NODES {
                        self.errors.push(Error {
                            pos: at,
                            path: self.child_path(),
                            message: format!(
                                "aliases expand to more than {MAX_ALIAS_NODES} nodes; expected a \
                                 configuration file; remove the nested aliases"
                            ),
                        });
                        self.stopped = true;
                        return;
                    }
                    let node = node.clone();
                    self.finish(node, 0);
                }
                None => {
                    let path = self.child_path();
                    self.errors.push(Error {
                        pos: at,
                        path,
                        message: "alias to an unknown anchor; define the `&anchor` before \
                                  using `*anchor`"
                            .into(),
                    });
                    self.finish(Node::null(at), 0);
                }
            },
            Event::SequenceStart(anchor, tag) => {
                self.open(at, anchor, tag.as_deref(), FrameKind::Seq(Vec::new()));
            }
            Event::MappingStart(anchor, tag) => {
                let kind = FrameKind::Map {
                    entries: Vec::new(),
                    pending_key: None,
                    seen: HashMap::new(),
                };
                self.open(at, anchor, tag.as_deref(), kind);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return;
                };
                let value = match frame.kind {
                    FrameKind::Seq(items) => Value::Seq(items),
                    FrameKind::Map { entries, .. } => {
                        Value::Map(self.apply_merges(entries, &frame.path))
                    }
                };
                let node = Node {
                    pos: frame.node_pos,
                    tag: frame.tag,
                    value,
                };
                self.finish(node, frame.anchor);
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }

    /// Starts filling a sequence or mapping.
    fn open(&mut self, at: Pos, anchor: usize, tag: Option<&Tag>, kind: FrameKind) {
        let path = self.child_path();
        self.stack.push(Frame {
            node_pos: at,
            tag: tag_text(tag),
            anchor,
            path,
            kind,
        });
    }

    /// The key path a node starting now will have.
    fn child_path(&self) -> String {
        let Some(frame) = self.stack.last() else {
            return String::new();
        };
        match &frame.kind {
            FrameKind::Seq(items) => format!("{}[{}]", frame.path, items.len()),
            FrameKind::Map {
                pending_key: Some(key),
                ..
            } => join_path(&frame.path, key.as_text().unwrap_or("?")),
            FrameKind::Map { .. } => frame.path.clone(),
        }
    }

    /// Hands a complete node to its parent (or makes it the document root).
    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some(frame) = self.stack.last_mut() else {
            if self.documents <= 1 {
                self.root = Some(node);
            }
            return;
        };
        match &mut frame.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map {
                entries,
                pending_key,
                seen,
            } => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    if let Some(text) = key.as_text().filter(|t| !is_merge_key(&key, t)) {
                        if let Some(first) = seen.get(text) {
                            self.errors.push(Error {
                                pos: key.pos,
                                path: join_path(&frame.path, text),
                                message: format!(
                                    "duplicate key '{text}' (first written at {first}); a \
                                     mapping may name a key once and YAML tools silently keep \
                                     only one of them; remove or rename one"
                                ),
                            });
                        } else {
                            seen.insert(text.to_owned(), key.pos);
                        }
                    }
                    entries.push(Entry {
                        key,
                        value: node,
                        merged: false,
                    });
                }
            },
        }
    }

    /// Resolves `<<` entries: keys written in the mapping win over merged ones, and in the list
    /// form an earlier mapping wins over a later one (YAML merge-key semantics).
    fn apply_merges(&mut self, entries: Vec<Entry>, path: &str) -> Vec<Entry> {
        if !entries
            .iter()
            .any(|e| e.key.as_text().is_some_and(|t| is_merge_key(&e.key, t)))
        {
            return entries;
        }
        let explicit: Vec<String> = entries
            .iter()
            .filter_map(|e| e.key.as_text().filter(|t| !is_merge_key(&e.key, t)))
            .map(str::to_owned)
            .collect();
        let mut merged_keys: Vec<String> = Vec::new();
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            if !entry
                .key
                .as_text()
                .is_some_and(|t| is_merge_key(&entry.key, t))
            {
                out.push(entry);
                continue;
            }
            let sources: Vec<&Node> = match &entry.value.value {
                Value::Map(_) => vec![&entry.value],
                Value::Seq(items) => items.iter().collect(),
                Value::Scalar(_) => vec![&entry.value],
            };
            for source in sources {
                let Some(source_entries) = source.as_map() else {
                    self.errors.push(Error {
                        pos: source.pos,
                        path: join_path(path, "<<"),
                        message: format!(
                            "merge key `<<` got {}; expected a mapping or a list of mappings \
                             (usually `*anchor`); point it at a mapping",
                            source.describe()
                        ),
                    });
                    continue;
                };
                for candidate in source_entries {
                    let Some(key) = candidate.key.as_text() else {
                        continue;
                    };
                    if explicit.iter().any(|k| k == key) || merged_keys.iter().any(|k| k == key) {
                        continue;
                    }
                    merged_keys.push(key.to_owned());
                    out.push(Entry {
                        merged: true,
                        ..candidate.clone()
                    });
                }
            }
        }
        out
    }
}

/// `<<` is a merge key only when written plain; `"<<"` is an ordinary key.
fn is_merge_key(key: &Node, text: &str) -> bool {
    text == "<<" && key.as_scalar().is_some_and(|s| !s.quoted)
}

fn tag_text(tag: Option<&Tag>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Plain-words help for the syntax errors people hit most in configuration files.
fn syntax_hint(info: &str) -> &'static str {
    if info.contains("anchor or alias") {
        " (a value starting with `*` or `&` is read as an alias or anchor: quote it, e.g. \"*\")"
    } else if info.contains("tab") {
        " (YAML indents with spaces, not tabs)"
    } else {
        ""
    }
}
