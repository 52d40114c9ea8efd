//! What the loader refuses before it parses: input larger than [`MAX_INPUT_BYTES`], and flow
//! collections (`[...]`, `{...}`) nested deeper than [`MAX_FLOW_DEPTH`].
//!
//! Both keep a pull-request gate fast whatever it is fed. The YAML parser's time grows with the
//! square of the flow nesting depth (libyaml keeps one pending simple key per flow level and
//! looks at all of them at every token): 200 KB of `[[[[...]]]]` took over 20 seconds. Past
//! 128 levels the parser refuses the document anyway (its recursion limit), so a document that
//! deep was never valid; the scan below says so in linear time, before the parser sees it.

/// The most bytes one run reads, over all its files: 4 MiB, about 18,000 CatalystVMs, read and
/// validated in about 0.3 s on one core (8 MiB took 0.7 s).
pub const MAX_INPUT_BYTES: u64 = 4 << 20;

/// The deepest nesting of flow collections a document may have: serde_norway's recursion
/// limit (it refuses deeper documents with "recursion limit exceeded").
pub const MAX_FLOW_DEPTH: usize = 128;

/// Where a flow collection opens one level deeper than [`MAX_FLOW_DEPTH`]: 1-based line and
/// column. Brackets inside quoted scalars and comments do not count, nor brackets inside a
/// plain scalar outside flow collections (`image: repo[1]`).
pub fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    // Whether the next character may begin a node (after an indicator or at a line's start).
    let mut node_start = true;
    let mut chars = text.chars().peekable();
    let (mut line, mut column) = (1, 0);
    while let Some(c) = chars.next() {
        column += 1;
        match c {
            '\n' => {
                (line, column) = (line + 1, 0);
                node_start = true;
                continue;
            }
            ' ' | '\t' | '\r' => continue,
            '#' => {
                // A comment runs to the end of the line (a `#` inside a plain scalar not after
                // a space is part of it, but scanning past it loses at most brackets).
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
                continue;
            }
            '"' | '\'' if node_start => {
                skip_quoted(c, &mut chars, &mut line, &mut column);
                node_start = false;
                continue;
            }
            '[' | '{' if node_start || depth > 0 => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some((line, column));
                }
                node_start = true;
                continue;
            }
            ']' | '}' if depth > 0 => depth -= 1,
            ',' if depth > 0 => {
                node_start = true;
                continue;
            }
            // `:`, `-` and `?` are indicators only before a space (`key: [`, `- [`).
            ':' | '-' | '?' => {
                node_start = chars.peek().is_none_or(|n| n.is_whitespace());
                continue;
            }
            _ => {}
        }
        node_start = false;
    }
    None
}

/// Skips a quoted scalar whose opening `quote` was just read: `\` escapes in double quotes,
/// `''` in single quotes.
fn skip_quoted(quote: char, chars: &mut std::iter::Peekable<std::str::Chars>, line: &mut usize, column: &mut usize) {
    while let Some(c) = chars.next() {
        *column += 1;
        match c {
            '\n' => (*line, *column) = (*line + 1, 0),
            '\\' if quote == '"' => {
                chars.next();
                *column += 1;
            }
            '\'' if quote == '\'' && chars.peek() == Some(&'\'') => {
                chars.next();
                *column += 1;
            }
            c if c == quote => return,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn flow_collections_deeper_than_the_limit_are_found_where_they_pass_it() {
        assert_eq!(too_deep(&nested(MAX_FLOW_DEPTH)), None);
        assert_eq!(too_deep(&nested(MAX_FLOW_DEPTH + 1)), Some((1, 3 + MAX_FLOW_DEPTH + 1)));
        assert_eq!(too_deep(&nested(100_000)), Some((1, 3 + MAX_FLOW_DEPTH + 1)));
        let mixed = format!("x: 1\ny: {}\n", "{a: [".repeat(65));
        assert_eq!(too_deep(&mixed), Some((2, 3 + 5 * 64 + 1)));
    }

    #[test]
    fn brackets_in_scalars_and_comments_do_not_count() {
        let deep = "[".repeat(1000);
        for text in [
            format!("a: \"{deep}\"\n"),
            format!("a: '{deep}'\n"),
            format!("a: 'it''s {deep}'\n"),
            format!("a: \"\\\" {deep}\"\n"),
            format!("image: repo{deep}\n"),
            format!("image: my-repo:{deep}\n"),
            format!("a: 1 # {deep}\n"),
            format!("a: [x, \"{deep}\", '{deep}']\n"),
            format!("script: |\n  echo {deep}\n"),
        ] {
            assert_eq!(too_deep(&text), None, "{text}");
        }
    }

    #[test]
    fn large_hostile_documents_are_scanned_to_the_end() {
        let text = "{a: ".repeat(2_000_000);
        assert!(too_deep(&text).is_some());
        let quoted = format!("a: \"{}\"", "[".repeat(4 << 20));
        assert_eq!(too_deep(&quoted), None);
    }
}
