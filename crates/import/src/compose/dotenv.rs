//! `env_file` and `.env` files, as the Compose Specification reads them (`05-services.md`,
//! "Env_file format"; compose-go v2.10.0 `dotenv/`): `VAR=VAL` lines, `#` comments, blank lines;
//! unquoted values end at ` #` and are trimmed; `"..."` values take `\n`, `\r`, `\t`, `\\` and
//! `\"` and may span lines; `'...'` values are literal. Unquoted and double-quoted values are
//! interpolated. `VAR=` is empty; `VAR` alone is left out (it would come from the shell).

use super::interpolate::{InterpolationError, Unset, substitute};
use std::collections::BTreeMap;

/// A line that is not `VAR=VAL`, or a quote that never closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    #[error("{file}:{line}: {message}")]
    Syntax { file: String, line: usize, message: String },
    #[error(transparent)]
    Interpolation(#[from] InterpolationError),
}

/// The variables of one file, in order (`file` names it in messages).
pub fn parse(
    file: &str,
    text: &str,
    variables: &BTreeMap<String, String>,
    unset: &mut Unset,
) -> Result<Vec<(String, String)>, DotenvError> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let syntax = |message: String| DotenvError::Syntax { file: file.to_string(), line: index + 1, message };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, raw)) = line.split_once('=') else {
            if !line.trim().chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                return Err(syntax(format!("{line:?} is not VAR=VALUE")));
            }
            continue;
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c == '_' || c == '.' || c == '-' || c.is_ascii_alphanumeric()) {
            return Err(syntax(format!("{name:?} is not a variable name")));
        }
        let raw = raw.trim_start();
        let place = format!("{file}:{}", index + 1);
        let value = match raw.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let mut body = raw[1..].to_string();
                let close = loop {
                    if let Some(at) = closing_quote(&body, quote) {
                        break at;
                    }
                    let Some((_, next)) = lines.next() else {
                        return Err(syntax(format!("the {quote} quote never closes")));
                    };
                    body.push('\n');
                    body.push_str(next);
                };
                let inner = &body[..close];
                if quote == '\'' { inner.to_string() } else { substitute(&unescape(inner), variables, &place, unset)? }
            }
            _ => {
                let value = raw.find(" #").map_or(raw, |at| &raw[..at]).trim_end();
                substitute(value, variables, &place, unset)?
            }
        };
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// The index of the quote that closes a value (a `\"` does not, in double quotes).
fn closing_quote(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in body.char_indices() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(at),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other @ ('\\' | '"' | '$')) => out.push(other),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<(String, String)> {
        let variables = BTreeMap::from([("HOME".to_string(), "/root".to_string())]);
        parse("test.env", text, &variables, &mut Unset::default()).unwrap()
    }

    #[test]
    fn quoting_comments_and_interpolation() {
        let text = "# a comment\n\nPLAIN=value # comment\nEMPTY=\nALONE\nexport EXPORTED=1\n\
                    DOUBLE=\"a\\nb \\\"q\\\" $HOME\"\nSINGLE='$HOME \\n'\nMULTI=\"one\ntwo\"\nHASH=a#b\n";
        assert_eq!(
            read(text),
            [
                ("PLAIN", "value"),
                ("EMPTY", ""),
                ("EXPORTED", "1"),
                ("DOUBLE", "a\nb \"q\" /root"),
                ("SINGLE", "$HOME \\n"),
                ("MULTI", "one\ntwo"),
                ("HASH", "a#b"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let error = parse("app.env", "OK=1\nnot a line\n", &BTreeMap::new(), &mut Unset::default()).unwrap_err();
        assert_eq!(error.to_string(), "app.env:2: \"not a line\" is not VAR=VALUE");
        let error = parse("app.env", "A=\"open\n", &BTreeMap::new(), &mut Unset::default()).unwrap_err();
        assert!(error.to_string().contains("never closes"), "{error}");
    }
}
