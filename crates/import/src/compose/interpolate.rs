//! Compose interpolation (`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
//! `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, nesting, `$$`), as the Compose Specification
//! (`12-interpolation.md`) and its reference implementation (compose-go v2.10.0,
//! `template/template.go`) define it: string values only, never keys; an unset variable without
//! a default becomes empty and is reported by name; a default is read only when it is used.

use serde_json::Value;
use std::collections::BTreeMap;

/// What interpolation found: each unset variable (by name) with the first place that used it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unset(pub BTreeMap<String, String>);

/// A `${VAR:?message}` whose variable is missing, or a `${` that never closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    #[error("{path}: required variable {name} is missing a value: {message}")]
    Required { path: String, name: String, message: String },
    #[error("{path}: invalid interpolation in {text:?}: {what}")]
    Invalid { path: String, text: String, what: &'static str },
}

/// Interpolates every string value under `value` (`path` names it in messages).
pub fn interpolate(
    value: &mut Value,
    variables: &BTreeMap<String, String>,
    path: &str,
    unset: &mut Unset,
) -> Result<(), InterpolationError> {
    match value {
        Value::String(text) => {
            if text.contains('$') {
                *text = substitute(text, variables, path, unset)?;
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                interpolate(item, variables, &format!("{path}[{index}]"), unset)?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                interpolate(item, variables, &path, unset)?;
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// One string, interpolated.
pub fn substitute(
    text: &str,
    variables: &BTreeMap<String, String>,
    path: &str,
    unset: &mut Unset,
) -> Result<String, InterpolationError> {
    let invalid = |what| InterpolationError::Invalid { path: path.to_string(), text: text.to_string(), what };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let close = closing_brace(inner).ok_or_else(|| invalid("a ${ without its }"))?;
            out.push_str(
                &braced(&inner[..close], variables, path, unset)
                    .map_err(|e| e.unwrap_or_else(|| invalid("not ${NAME} followed by :-, -, :?, ?, :+ or +")))?,
            );
            rest = &inner[close + 1..];
        } else if after.starts_with(is_name_start) {
            let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            out.push_str(&lookup(&after[..end], variables, path, unset));
            rest = &after[end..];
        } else {
            // A `$` not followed by a name or `{` stays as it is.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` closing a `${`, nested `${...}` counted.
fn closing_brace(inner: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn lookup(name: &str, variables: &BTreeMap<String, String>, path: &str, unset: &mut Unset) -> String {
    match variables.get(name) {
        Some(value) => value.clone(),
        None => {
            unset.0.entry(name.to_string()).or_insert_with(|| path.to_string());
            String::new()
        }
    }
}

/// The inside of `${...}`; `Err(None)` when it is not a valid expression.
fn braced(
    inner: &str,
    variables: &BTreeMap<String, String>,
    path: &str,
    unset: &mut Unset,
) -> Result<String, Option<InterpolationError>> {
    let end = inner.find(|c: char| !is_name(c)).unwrap_or(inner.len());
    let (name, operation) = inner.split_at(end);
    if !name.starts_with(is_name_start) {
        return Err(None);
    }
    let value = variables.get(name);
    let nested = |text: &str, unset: &mut Unset| substitute(text, variables, path, unset).map_err(Some);
    let set_and_not_empty = value.is_some_and(|v| !v.is_empty());
    for (operator, when_empty_too) in [(":-", true), ("-", false)] {
        if let Some(default) = operation.strip_prefix(operator) {
            let chosen = if when_empty_too { set_and_not_empty } else { value.is_some() };
            return if chosen { Ok(value.cloned().unwrap_or_default()) } else { nested(default, unset) };
        }
    }
    for (operator, when_empty_too) in [(":?", true), ("?", false)] {
        if let Some(message) = operation.strip_prefix(operator) {
            let present = if when_empty_too { set_and_not_empty } else { value.is_some() };
            return if present {
                Ok(value.cloned().unwrap_or_default())
            } else {
                let message = nested(message, unset)?;
                Err(Some(InterpolationError::Required { path: path.to_string(), name: name.to_string(), message }))
            };
        }
    }
    for (operator, when_empty_too) in [(":+", true), ("+", false)] {
        if let Some(alternative) = operation.strip_prefix(operator) {
            let present = if when_empty_too { set_and_not_empty } else { value.is_some() };
            return if present { nested(alternative, unset) } else { Ok(String::new()) };
        }
    }
    if operation.is_empty() { Ok(lookup(name, variables, path, unset)) } else { Err(None) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("SET", "value"), ("EMPTY", ""), ("PORT", "8080")].into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn run(text: &str) -> (Result<String, InterpolationError>, Unset) {
        let mut unset = Unset::default();
        (substitute(text, &vars(), "services.x.image", &mut unset), unset)
    }

    #[test]
    fn the_specifications_forms() {
        let cases = [
            ("$SET", "value"),
            ("${SET}", "value"),
            ("a-${SET}-b", "a-value-b"),
            ("${UNSET:-default}", "default"),
            ("${EMPTY:-default}", "default"),
            ("${EMPTY-default}", ""),
            ("${UNSET-default}", "default"),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${UNSET:-${PORT}}", "8080"),
            ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
            ("$$SET", "$SET"),
            ("cost: 5$", "cost: 5$"),
            ("$1", "$1"),
            ("${SET:?never}", "value"),
        ];
        for (text, want) in cases {
            let (got, unset) = run(text);
            assert_eq!(got.unwrap(), want, "{text}");
            assert!(unset.0.is_empty(), "{text}: {unset:?}");
        }
    }

    #[test]
    fn an_unset_variable_is_blank_and_named_once_with_where_it_was_used() {
        let (got, unset) = run("postgres://app:${DB_PASSWORD}@db/$DB_PASSWORD");
        assert_eq!(got.unwrap(), "postgres://app:@db/");
        assert_eq!(unset.0, BTreeMap::from([("DB_PASSWORD".to_string(), "services.x.image".to_string())]));
        // A default that is not used is not read: no variable in it is reported.
        let (_, unset) = run("${SET:-${NOT_READ}}");
        assert!(unset.0.is_empty());
    }

    #[test]
    fn required_and_malformed_expressions_are_errors() {
        let (got, _) = run("${DB_PASSWORD:?set it in .env}");
        assert_eq!(
            got.unwrap_err().to_string(),
            "services.x.image: required variable DB_PASSWORD is missing a value: set it in .env"
        );
        assert!(matches!(run("${EMPTY?fine}").0, Ok(ref s) if s.is_empty()));
        assert!(run("${EMPTY:?no}").0.is_err());
        for bad in ["${SET", "${}", "${1X}", "${SET/a/b}"] {
            assert!(matches!(run(bad).0, Err(InterpolationError::Invalid { .. })), "{bad}");
        }
    }

    #[test]
    fn values_are_interpolated_and_keys_are_not() {
        let mut value: Value = catalyst_core::yaml::from_str("${SET}: ${SET}\nlist: [$PORT, 3]\n").unwrap();
        let mut unset = Unset::default();
        interpolate(&mut value, &vars(), "", &mut unset).unwrap();
        assert_eq!(value, serde_json::json!({"${SET}": "value", "list": ["8080", 3]}));
    }
}
