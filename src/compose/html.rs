//! HTML → plain text for an SMS: no link footnotes, no markdown-like
//! decoration, no wrapping; block quotes keep their "> " so that the quoted
//! reply can be dropped like in a text/plain mail.

use html2text::render::TextDecorator;

/// Wide enough that no paragraph of a mail is wrapped: a wrapped line would
/// end up as a line break in the SMS.
const NO_WRAP_WIDTH: usize = 10_000;

/// Deeper than any real mail's layout. Parsing and rendering take time in
/// size × nesting depth: a crafted megabyte of nested `<div>`s would hold a
/// worker for minutes, so such markup gets the crude linear conversion.
const MAX_DEPTH: usize = 256;

/// Elements that never hold others, or that the HTML parser closes by itself
/// when a sibling starts: they do not deepen the tree however they are written.
const FLAT_ELEMENTS: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr", "p", "li",
    "dt", "dd", "tr", "td", "th", "option",
];

/// The text of an HTML body part; markup nested deeper than `MAX_DEPTH` gets
/// mail-parser's cruder, linear conversion.
pub(super) fn to_text(markup: &str) -> String {
    let config = html2text::config::with_decorator(SmsDecorator)
        .link_footnotes(false)
        .no_table_borders()
        .allow_width_overflow();
    Some(markup)
        .filter(|markup| nesting_depth(markup) <= MAX_DEPTH)
        .and_then(|markup| config.string_from_read(markup.as_bytes(), NO_WRAP_WIDTH).ok())
        // mail-parser's cruder conversion still recovers the words.
        .unwrap_or_else(|| mail_parser::decoders::html::html_to_text(markup))
}

/// How deep the markup's elements nest, estimated in one pass over the tags
/// (an overestimate for sloppy markup, which then gets the crude conversion).
fn nesting_depth(markup: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for tag in markup.split('<').skip(1) {
        let closing = tag.starts_with('/');
        let name_start = usize::from(closing);
        let name: String = tag[name_start..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let self_closing = tag.split('>').next().is_some_and(|t| t.ends_with('/'));
        if name.is_empty() || self_closing || FLAT_ELEMENTS.contains(&name.as_str()) {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
        } else {
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    deepest
}

/// Renders text only: links as their words, images as their alt text.
#[derive(Clone, Copy, Debug)]
struct SmsDecorator;

impl TextDecorator for SmsDecorator {
    type Annotation = ();

    fn decorate_link_start(&mut self, _url: &str) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_link_end(&mut self) -> String {
        String::new()
    }
    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_em_end(&self) -> String {
        String::new()
    }
    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strong_end(&self) -> String {
        String::new()
    }
    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }
    fn decorate_code_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_code_end(&self) -> String {
        String::new()
    }
    fn decorate_preformat_first(&self) {}
    fn decorate_preformat_cont(&self) {}
    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, ()) {
        (title.to_owned(), ())
    }
    fn header_prefix(&self, _level: usize) -> String {
        String::new()
    }
    fn quote_prefix(&self) -> String {
        "> ".to_owned()
    }
    fn unordered_item_prefix(&self) -> String {
        "- ".to_owned()
    }
    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }
    fn make_subblock_decorator(&self) -> Self {
        *self
    }
    fn decorate_superscript_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_superscript_end(&self) -> String {
        String::new()
    }
}
