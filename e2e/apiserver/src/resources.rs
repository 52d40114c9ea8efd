//! The kinds the emulator serves: a fixed set of built-in ones and whatever CRDs register.

use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub json_path: String,
}

/// A CRD version's schema, with its CEL rules and patterns compiled once, when the CRD is registered (as
/// the API server does), not at every write.
pub struct Schema {
    pub tree: Value,
    pub rules: kube::core::cel::CompiledSchema,
    pub patterns: crate::structural::Patterns,
}

impl Schema {
    fn new(tree: &Value) -> Self {
        Self {
            tree: tree.clone(),
            rules: kube::core::cel::compile_schema(tree),
            patterns: crate::structural::Patterns::of(tree),
        }
    }
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.tree.fmt(f)
    }
}

/// One served resource.
#[derive(Debug, Clone)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub status_subresource: bool,
    pub short_names: Vec<String>,
    /// The CRD's structural schema (custom resources only): validated, defaulted, CEL-checked.
    pub schema: Option<Arc<Schema>>,
    pub printer_columns: Vec<PrinterColumn>,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool, status: bool) -> Self {
        Resource {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            status_subresource: status,
            short_names: Vec::new(),
            schema: None,
            printer_columns: Vec::new(),
        }
    }

    /// The discovery entry (`APIResource`).
    pub fn discovery(&self) -> Vec<Value> {
        let verbs = ["create", "delete", "get", "list", "patch", "update", "watch"];
        let mut entries = vec![json!({
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": verbs, "shortNames": self.short_names,
        })];
        if self.status_subresource {
            entries.push(
                json!({"name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced,
                "kind": self.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
        entries
    }
}

/// The built-in kinds the operator, the suite and kubectl touch.
pub fn builtins() -> Vec<Resource> {
    let short = |mut resource: Resource, names: &[&str]| {
        resource.short_names = names.iter().map(|n| n.to_string()).collect();
        resource
    };
    vec![
        short(Resource::builtin("", "v1", "namespaces", "Namespace", false, true), &["ns"]),
        short(Resource::builtin("", "v1", "nodes", "Node", false, true), &["no"]),
        Resource::builtin("", "v1", "secrets", "Secret", true, false),
        short(Resource::builtin("", "v1", "services", "Service", true, true), &["svc"]),
        Resource::builtin("", "v1", "configmaps", "ConfigMap", true, false),
        Resource::builtin("", "v1", "pods", "Pod", true, true),
        Resource::builtin("", "v1", "events", "Event", true, false),
        short(Resource::builtin("apps", "v1", "statefulsets", "StatefulSet", true, true), &["sts"]),
        Resource::builtin("apps", "v1", "deployments", "Deployment", true, true),
        Resource::builtin("events.k8s.io", "v1", "events", "Event", true, false),
        Resource::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, false),
        short(Resource::builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, true), &["pdb"]),
        short(
            Resource::builtin(
                "certificates.k8s.io",
                "v1",
                "certificatesigningrequests",
                "CertificateSigningRequest",
                false,
                true,
            ),
            &["csr"],
        ),
        short(
            Resource::builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                true,
            ),
            &["crd", "crds"],
        ),
    ]
}

/// The resources a CRD object declares (one per served version).
pub fn from_crd(crd: &Value) -> Vec<Resource> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"] != false)
        .map(|version| Resource {
            group: text(&spec["group"]),
            version: text(&version["name"]),
            plural: text(&names["plural"]),
            singular: names["singular"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| text(&names["kind"]).to_lowercase()),
            kind: text(&names["kind"]),
            namespaced: spec["scope"] == "Namespaced",
            status_subresource: version["subresources"].get("status").is_some(),
            short_names: names["shortNames"].as_array().into_iter().flatten().map(text).collect(),
            schema: version["schema"].get("openAPIV3Schema").map(|tree| Arc::new(Schema::new(tree))),
            printer_columns: version["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| PrinterColumn {
                    name: text(&c["name"]),
                    type_: text(&c["type"]),
                    json_path: text(&c["jsonPath"]),
                })
                .collect(),
        })
        .collect()
}

/// What a request path names.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`
    Discovery { group: Option<String>, version: Option<String>, core: bool },
    /// A collection or an object, maybe a subresource of it.
    Object {
        group: String,
        version: String,
        plural: String,
        namespace: Option<String>,
        name: Option<String>,
        subresource: Option<String>,
    },
}

pub fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Some(Target::Discovery { group: None, version: None, core: true }),
        ["apis"] => return Some(Target::Discovery { group: None, version: None, core: false }),
        ["api", version] => {
            return Some(Target::Discovery { group: None, version: Some(version.to_string()), core: true });
        }
        ["apis", group] => {
            return Some(Target::Discovery { group: Some(group.to_string()), version: None, core: false });
        }
        ["apis", group, version] => {
            return Some(Target::Discovery {
                group: Some(group.to_string()),
                version: Some(version.to_string()),
                core: false,
            });
        }
        ["api", version, rest @ ..] => (String::new(), version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (group.to_string(), version.to_string(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        // A Namespace's own subresources, not a resource inside it.
        ["namespaces", _, "status" | "finalize"] => (None, rest),
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some(namespace.to_string()), rest),
        rest => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(name.to_string()), None),
        [plural, name, sub] => (plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    Some(Target::Object { group, version, plural: plural.to_string(), namespace, name, subresource })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_collections_objects_and_subresources() {
        let object = |g: &str, p: &str, ns: Option<&str>, n: Option<&str>, s: Option<&str>| Target::Object {
            group: g.into(),
            version: if g.is_empty() { "v1".into() } else { "v1alpha1".into() },
            plural: p.into(),
            namespace: ns.map(String::from),
            name: n.map(String::from),
            subresource: s.map(String::from),
        };
        assert_eq!(parse_path("/api/v1/namespaces"), Some(object("", "namespaces", None, None, None)));
        assert_eq!(parse_path("/api/v1/namespaces/team"), Some(object("", "namespaces", None, Some("team"), None)));
        assert_eq!(
            parse_path("/api/v1/namespaces/team/secrets/s"),
            Some(object("", "secrets", Some("team"), Some("s"), None))
        );
        assert_eq!(
            parse_path("/apis/catalyst.io/v1alpha1/namespaces/team/catalystvms/vm/status"),
            Some(object("catalyst.io", "catalystvms", Some("team"), Some("vm"), Some("status")))
        );
        assert_eq!(
            parse_path("/apis/catalyst.io/v1alpha1/catalysthosts"),
            Some(object("catalyst.io", "catalysthosts", None, None, None))
        );
        assert!(matches!(parse_path("/apis/catalyst.io/v1alpha1"), Some(Target::Discovery { .. })));
    }
}
