//! Label selectors and the small JSONPath subset printer columns use.

use serde_json::Value;

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed `labelSelector` (equality and set-based terms).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector(Vec<Term>);

/// Splits on commas that are not inside parentheses.
fn terms(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut found) = (0, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                found.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    found.push(&text[start..]);
    found.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect()
}

fn set(values: &str) -> Vec<String> {
    values.trim().trim_start_matches('(').trim_end_matches(')').split(',').map(|v| v.trim().to_string()).collect()
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for term in terms(text) {
            let term = if let Some((key, value)) = term.split_once("!=") {
                Term::NotEquals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Term::Equals(key.trim().into(), value.trim().into())
            } else if let Some((key, values)) = term.split_once(" notin ") {
                Term::NotIn(key.trim().into(), set(values))
            } else if let Some((key, values)) = term.split_once(" in ") {
                Term::In(key.trim().into(), set(values))
            } else if let Some(key) = term.strip_prefix('!') {
                Term::Absent(key.trim().into())
            } else if term.chars().all(|c| c.is_ascii_alphanumeric() || "./-_".contains(c)) {
                Term::Exists(term.into())
            } else {
                return Err(format!("unable to parse requirement: {term:?}"));
            };
            parsed.push(term);
        }
        Ok(Selector(parsed))
    }

    pub fn matches(&self, labels: &Value) -> bool {
        let get = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|term| match term {
            Term::Equals(k, v) => get(k) == Some(v.as_str()),
            Term::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Term::Exists(k) => get(k).is_some(),
            Term::Absent(k) => get(k).is_none(),
            Term::In(k, values) => get(k).is_some_and(|l| values.iter().any(|v| v == l)),
            Term::NotIn(k, values) => get(k).is_none_or(|l| !values.iter().any(|v| v == l)),
        })
    }
}

impl Selector {
    /// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions` with In, NotIn,
    /// Exists, DoesNotExist), as a PodDisruptionBudget's `spec.selector` holds one.
    pub fn from_object(selector: &Value) -> Self {
        let mut terms = Vec::new();
        for (key, value) in selector["matchLabels"].as_object().into_iter().flatten() {
            terms.push(Term::Equals(key.clone(), value.as_str().unwrap_or_default().to_string()));
        }
        for expression in selector["matchExpressions"].as_array().into_iter().flatten() {
            let key = expression["key"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> = expression["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            terms.push(match expression["operator"].as_str() {
                Some("In") => Term::In(key, values),
                Some("NotIn") => Term::NotIn(key, values),
                Some("Exists") => Term::Exists(key),
                _ => Term::Absent(key),
            });
        }
        Selector(terms)
    }
}

/// Evaluates a printer-column JSONPath such as `.spec.cpu` or
/// `.status.conditions[?(@.type=="Ready")].status`.
pub fn json_path(object: &Value, path: &str) -> Option<Value> {
    let mut current = object.clone();
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(filter) = rest.strip_prefix("[?(@.") {
            let end = filter.find(")]")?;
            let (condition, after) = (&filter[..end], &filter[end + 2..]);
            let (field, wanted) = condition.split_once("==")?;
            let wanted = wanted.trim().trim_matches('"').trim_matches('\'');
            current = current
                .as_array()?
                .iter()
                .find(|item| item.get(field.trim()).and_then(Value::as_str) == Some(wanted))?
                .clone();
            rest = after.trim_start_matches('.');
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        current = current.get(&rest[..end])?.clone();
        rest = rest[end..].trim_start_matches('.');
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_match_equality_existence_and_sets() {
        let labels = json!({"app.kubernetes.io/managed-by": "catalyst", "tier": "fast"});
        for (selector, expected) in [
            ("app.kubernetes.io/managed-by=catalyst", true),
            ("app.kubernetes.io/managed-by==helm", false),
            ("tier!=slow", true),
            ("catalyst.io/vm", false),
            ("!catalyst.io/vm", true),
            ("tier in (fast,medium),app.kubernetes.io/managed-by", true),
            ("tier notin (fast)", false),
        ] {
            assert_eq!(Selector::parse(selector).unwrap().matches(&labels), expected, "{selector}");
        }
        assert!(Selector::parse("a b c").is_err());
    }

    #[test]
    fn json_paths_follow_fields_and_filters() {
        let object = json!({"spec": {"cpu": 8}, "status": {"conditions": [{"type": "Scheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}});
        assert_eq!(json_path(&object, ".spec.cpu"), Some(json!(8)));
        assert_eq!(json_path(&object, ".status.conditions[?(@.type==\"Ready\")].status"), Some(json!("False")));
        assert_eq!(json_path(&object, ".status.host"), None);
    }
}
