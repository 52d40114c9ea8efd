//! Services that differ only by an index (`sms-service-1` ... `sms-service-12`, each with its
//! `SERVICE_ID=sms-1` and host port) fold into one group of N replicas. The index becomes the
//! replica's ordinal: a ServiceGroup's StatefulSet counts from 1 (`ordinals.start: 1`), and its
//! pods carry their ordinal in the label `apps.kubernetes.io/pod-index` (Kubernetes
//! `pkg/controller/statefulset/stateful_set_utils.go`; the PodIndexLabel feature, on by default
//! since v1.28 and GA in v1.32), which an env var reads. Values that carried the index are
//! written with it (`sms-$(CATALYST_REPLICA_INDEX)`), which the kubelet expands.

use super::service::Converted;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};
use std::collections::BTreeMap;

/// The env var each folded replica finds its index in.
pub const INDEX_VAR: &str = "CATALYST_REPLICA_INDEX";
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// A group to write: its name, what it is, and the compose services it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub converted: Converted,
    pub services: Vec<String>,
}

/// `name` split before the decimal digits it ends with (`sms-7` → (`sms-`, `7`); `sms` → (`sms`, ``)).
pub fn trailing_digits(name: &str) -> (&str, &str) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    name.split_at(name.len() - digits)
}

/// `name` split into what comes before its index and the index (`sms-service-7` → (`sms-service`,
/// 7)); `None` when it does not end in a number without leading zeros after a separator or letter.
fn indexed(name: &str) -> Option<(&str, u64)> {
    let (prefix, index) = trailing_digits(name);
    let group = prefix.trim_end_matches(['-', '_']);
    if index.is_empty() || index.starts_with('0') || group.is_empty() {
        return None;
    }
    Some((group, index.parse().ok()?))
}

/// `value` with each whole decimal run equal to `index` replaced by `$(INDEX_VAR)`.
fn templated(value: &str, index: u64) -> String {
    let wanted = index.to_string();
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..start]);
        let run = &rest[start..];
        let end = run.find(|c: char| !c.is_ascii_digit()).unwrap_or(run.len());
        if run[..end] == wanted {
            out.push_str(&format!("$({INDEX_VAR})"));
        } else {
            out.push_str(&run[..end]);
        }
        rest = &run[end..];
    }
    out.push_str(rest);
    out
}

/// The services as groups: each set of services that differ only by an index running 1..N folds
/// into one group of N replicas; every other service is a group of its own (`note` says why a
/// set that looked foldable was not).
pub fn fold(services: Vec<(String, Converted)>, note: &mut impl FnMut(String)) -> Vec<Group> {
    let mut by_prefix: BTreeMap<String, Vec<(u64, String, Converted)>> = BTreeMap::new();
    let mut groups = Vec::new();
    let taken: Vec<String> = services.iter().map(|(name, _)| name.clone()).collect();
    for (name, converted) in services {
        match indexed(&name) {
            Some((prefix, index)) if converted.replicas == 1 && !taken.iter().any(|t| t == prefix) => {
                by_prefix.entry(prefix.to_string()).or_default().push((index, name, converted))
            }
            _ => groups.push(Group { name: name.clone(), converted, services: vec![name] }),
        }
    }
    for (prefix, mut members) in by_prefix {
        members.sort_by_key(|(index, _, _)| *index);
        let singles = |members: Vec<(u64, String, Converted)>| {
            members.into_iter().map(|(_, name, converted)| Group {
                name: name.clone(),
                converted,
                services: vec![name],
            })
        };
        if members.len() < 2 {
            groups.extend(singles(members));
            continue;
        }
        let names: Vec<String> = members.iter().map(|(_, name, _)| name.clone()).collect();
        let runs_from_one = members.iter().enumerate().all(|(i, (index, _, _))| *index == i as u64 + 1);
        match alike(&members) {
            Some(converted) if runs_from_one => {
                groups.push(Group { name: prefix, converted, services: names });
            }
            Some(_) => {
                note(format!(
                    "services {} differ only by their index, but it does not run 1..{}: they stay groups of their own",
                    names.join(", "),
                    members.len()
                ));
                groups.extend(singles(members));
            }
            None => groups.extend(singles(members)),
        }
    }
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    groups
}

/// The one group the members make, if they differ only in env values that carry their index.
fn alike(members: &[(u64, String, Converted)]) -> Option<Converted> {
    let (_, _, first) = &members[0];
    let without_env = |c: &Converted| {
        let mut c = c.clone();
        c.template.env.clear();
        c
    };
    let shape = without_env(first);
    let keys = |c: &Converted| c.template.env.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    if members.iter().any(|(_, _, c)| without_env(c) != shape || keys(c) != keys(first)) {
        return None;
    }
    let mut env = Vec::with_capacity(first.template.env.len() + 1);
    let mut uses_index = false;
    for (position, var) in first.template.env.iter().enumerate() {
        let values: Vec<Option<&String>> =
            members.iter().map(|(_, _, c)| c.template.env[position].value.as_ref()).collect();
        if values.iter().all(|v| *v == values[0]) {
            env.push(var.clone());
            continue;
        }
        let forms: Vec<Option<String>> =
            members.iter().zip(&values).map(|((index, _, _), value)| value.map(|v| templated(v, *index))).collect();
        if forms.iter().any(|f| *f != forms[0]) || forms[0].is_none() {
            return None;
        }
        uses_index = true;
        env.push(EnvVar { value: forms[0].clone(), ..var.clone() });
    }
    if uses_index {
        let field = format!("metadata.labels['{POD_INDEX_LABEL}']");
        let from_label = EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: field, api_version: None }),
            ..EnvVarSource::default()
        };
        env.insert(0, EnvVar { name: INDEX_VAR.into(), value: None, value_from: Some(from_label) });
    }
    let mut converted = shape;
    converted.template.env = env;
    converted.replicas = members.len() as u64;
    Some(converted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_a_trailing_number_without_leading_zeros() {
        assert_eq!(indexed("sms-service-12"), Some(("sms-service", 12)));
        assert_eq!(indexed("kafka_3"), Some(("kafka", 3)));
        assert_eq!(indexed("web2"), Some(("web", 2)));
        assert_eq!(indexed("node-01"), None);
        assert_eq!(indexed("sms"), None);
        assert_eq!(indexed("42"), None);
    }

    #[test]
    fn only_the_whole_index_is_templated() {
        assert_eq!(templated("sms-1", 1), "sms-$(CATALYST_REPLICA_INDEX)");
        assert_eq!(templated("node-1-of-10", 1), "node-$(CATALYST_REPLICA_INDEX)-of-10");
        assert_eq!(templated("8001", 1), "8001");
        assert_eq!(templated("12", 12), "$(CATALYST_REPLICA_INDEX)");
    }
}
