//! A pool of CatalystHosts, chosen by a label selector: the hosts one operator (and one `plan`)
//! may place VMs on. Several operators, or a canary beside the main one, then share a cluster
//! without touching each other's hosts.
//!
//! The selector is written as the API server takes `labelSelector` (`key=value`, `key!=value`,
//! `key in (a,b)`, `key notin (a,b)`, `key`, `!key`, comma-separated, all must hold; the
//! grammar of apimachinery's `labels.Parse`). It is parsed here so that a typo is refused when
//! the operator starts, and so that `plan` selects offline exactly what the watch selects.

use kube::core::{Expression, Selector, SelectorExt};
use std::collections::BTreeMap;
use std::fmt;

/// The hosts of one pool; the default takes every host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostPool {
    selector: Selector,
    text: String,
}

/// A label selector that does not parse, naming the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host selector {selector:?}: {problem}")]
pub struct SelectorError {
    pub selector: String,
    pub problem: String,
}

impl HostPool {
    /// Parses a label selector; the empty string selects every host.
    pub fn parse(text: &str) -> Result<HostPool, SelectorError> {
        let error = |problem: String| SelectorError { selector: text.to_string(), problem };
        let mut selector = Selector::default();
        for requirement in split_requirements(text).map_err(error)? {
            selector.extend(parse_requirement(&requirement).map_err(error)?);
        }
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(HostPool { selector, text })
    }

    /// Whether a host with these labels belongs to the pool.
    pub fn contains(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.matches(labels)
    }

    /// Every host is in the pool.
    pub fn is_everything(&self) -> bool {
        self.selector.selects_all()
    }

    /// The `labelSelector` of a list or watch of the pool's hosts; none for every host.
    pub fn label_selector(&self) -> Option<&str> {
        (!self.is_everything()).then_some(self.text.as_str())
    }
}

/// The selector as given, for the API server's `labelSelector`.
impl fmt::Display for HostPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits at the commas that separate requirements (not those inside `in (a,b)`).
fn split_requirements(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut depth = 0u32;
    for c in text.chars() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err("nested parentheses".into()),
            ')' if depth == 1 => depth = 0,
            ')' => return Err("a ')' without its '('".into()),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if depth != 0 {
        return Err("a '(' without its ')'".into());
    }
    parts.push(current);
    if parts.len() == 1 && parts[0].trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(parts)
}

fn parse_requirement(requirement: &str) -> Result<Expression, String> {
    let requirement = requirement.trim();
    if requirement.is_empty() {
        return Err("an empty requirement (two commas in a row, or one at an end)".into());
    }
    if let Some(key) = requirement.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(label_key(key.trim())?));
    }
    for (operator, build) in [
        ("!=", Expression::NotEqual as fn(String, String) -> Expression),
        ("==", Expression::Equal),
        ("=", Expression::Equal),
    ] {
        if let Some((key, value)) = requirement.split_once(operator) {
            return Ok(build(label_key(key.trim())?, label_value(value.trim())?));
        }
    }
    let words: Vec<&str> = requirement.splitn(2, char::is_whitespace).collect();
    match words.as_slice() {
        [key] => Ok(Expression::Exists(label_key(key)?)),
        [key, rest] => {
            let rest = rest.trim_start();
            let (negated, list) = if let Some(list) = rest.strip_prefix("notin") {
                (true, list)
            } else if let Some(list) = rest.strip_prefix("in") {
                (false, list)
            } else {
                return Err(format!("{requirement:?}: expected =, ==, !=, in or notin after the key"));
            };
            let list = list.trim();
            let inner = list
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(|| format!("{requirement:?}: the values of in and notin go in parentheses"))?;
            let values = inner.split(',').map(|v| label_value(v.trim())).collect::<Result<_, _>>()?;
            let key = label_key(key)?;
            Ok(if negated { Expression::NotIn(key, values) } else { Expression::In(key, values) })
        }
        _ => unreachable!("splitn(2) gives one or two words"),
    }
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of up to 63 characters
/// (apimachinery `validation.IsQualifiedName`).
fn label_key(key: &str) -> Result<String, String> {
    crate::validation::qualified_name(key).map_err(|why| format!("label key {key:?}: {why}"))?;
    Ok(key.to_string())
}

/// A label value: empty, or up to 63 alphanumerics, `-`, `_` and `.`, alphanumeric at both ends
/// (apimachinery `validation.IsValidLabelValue`).
fn label_value(value: &str) -> Result<String, String> {
    crate::validation::label_value(value).map_err(|why| format!("label value {value:?}: {why}"))?;
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_empty_selector_takes_every_host() {
        let pool = HostPool::parse("").unwrap();
        assert!(pool.is_everything());
        assert!(pool.contains(&labels(&[])));
        assert_eq!(pool.to_string(), "");
    }

    #[test]
    fn every_requirement_must_hold() {
        let pool = HostPool::parse("catalyst.io/pool=blue, tier in (fast,nvme),!cordoned,zone notin (a)").unwrap();
        assert!(pool.contains(&labels(&[("catalyst.io/pool", "blue"), ("tier", "fast"), ("zone", "b")])));
        assert!(pool.contains(&labels(&[("catalyst.io/pool", "blue"), ("tier", "nvme")])));
        assert!(!pool.contains(&labels(&[("catalyst.io/pool", "green"), ("tier", "fast")])));
        assert!(!pool.contains(&labels(&[("catalyst.io/pool", "blue"), ("tier", "slow")])));
        assert!(!pool.contains(&labels(&[("catalyst.io/pool", "blue"), ("tier", "fast"), ("cordoned", "")])));
        assert!(!pool.contains(&labels(&[("catalyst.io/pool", "blue"), ("tier", "fast"), ("zone", "a")])));
        assert!(HostPool::parse("gpu").unwrap().contains(&labels(&[("gpu", "")])));
        assert!(HostPool::parse("pool!=red").unwrap().contains(&labels(&[])));
        assert!(HostPool::parse("pool==red").unwrap().contains(&labels(&[("pool", "red")])));
    }

    #[test]
    fn a_malformed_selector_is_refused_naming_the_part() {
        for (text, part) in [
            ("pool=blue,", "empty requirement"),
            ("pool in blue", "parentheses"),
            ("pool in (a", "without its ')'"),
            ("pool=bar,baz=1=2", "label value \"1=2\""),
            ("pool is blue", "expected =, ==, !=, in or notin"),
            ("-pool=blue", "label key \"-pool\""),
            ("pool=a b", "label value \"a b\""),
        ] {
            let error = HostPool::parse(text).unwrap_err().to_string();
            assert!(error.contains(part), "{text}: {error}");
            assert!(error.contains(&format!("{text:?}")), "the error names the selector: {error}");
        }
    }
}
