//! Kubernetes releases as a VM-node names them (`spec.node.software.kubernetesVersion`), and
//! the rules that tie a node's release to its API server's and to what the node must run.

use std::fmt;

/// The oldest release a VM-node may run: the rendered JoinConfiguration is
/// `kubeadm.k8s.io/v1beta4`, which kubeadm reads from v1.31 (kubernetes `CHANGELOG-1.31`,
/// "kubeadm: introduce v1beta4").
pub const OLDEST_MINOR: u32 = 31;

/// From this minor release kubeadm's preflight no longer needs `conntrack` in the node's PATH:
/// below it the check is unconditional (kubernetes `cmd/kubeadm/app/preflight/checks_linux.go`,
/// made conditional by kubernetes#126953 in v1.32).
pub const CONNTRACK_NOT_NEEDED_FROM_MINOR: u32 = 32;

/// From this minor release the node needs containerd 2.0 or later: "The SIG Node community has
/// designated v1.35 as the last release to support the containerd v1.X series" (kubernetes/website
/// `content/en/blog/_posts/2025-12-17-kubernetes-v1-35-release/index.md`, "Final call for containerd v1.X").
pub const CONTAINERD_2_FROM_MINOR: u32 = 36;

/// A release `v1.<minor>` or `v1.<minor>.<patch>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub minor: u32,
    pub patch: Option<u32>,
}

impl Release {
    /// `v1.34` or `v1.34.2`: `v1.`, a minor release of 1 to 3 digits without a leading zero,
    /// and maybe a patch release of 1 to 3 digits, as [`catalyst_api::rules::VM_KUBERNETES_VERSION`]
    /// reads them. Any other text, including a release older than [`OLDEST_MINOR`], is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("v1.")?;
        let mut parts = rest.split('.');
        let number = |part: &str| {
            ((1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())).then(|| part.parse().ok())?
        };
        let minor_text = parts.next()?;
        let minor = number(minor_text).filter(|_| !minor_text.starts_with('0'))?;
        let patch = match parts.next() {
            Some(part) => Some(number(part)?),
            None => None,
        };
        (parts.next().is_none() && minor >= OLDEST_MINOR).then_some(Self { minor, patch })
    }

    /// pkgs.k8s.io's repository of this minor release, as its path names it: `v1.34`.
    pub fn minor_name(&self) -> String {
        format!("v1.{}", self.minor)
    }

    pub fn needs_conntrack(&self) -> bool {
        self.minor < CONNTRACK_NOT_NEEDED_FROM_MINOR
    }

    pub fn needs_containerd_2(&self) -> bool {
        self.minor >= CONTAINERD_2_FROM_MINOR
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(patch) => write!(f, "v1.{}.{patch}", self.minor),
            None => write!(f, "v1.{}", self.minor),
        }
    }
}

/// The API server's minor release from its `/version` (`minor` may carry a `+`, as managed
/// clusters write it: `"34+"`).
pub fn server_minor(major: &str, minor: &str) -> Option<u32> {
    (major == "1").then(|| minor.trim_end_matches('+').parse().ok())?
}

/// Why a node of `node` cannot join an API server of minor `server`, if it cannot: the kubelet
/// must not be newer than kube-apiserver (kubernetes/website `releases/version-skew-policy.md`),
/// and kubeadm joins a control plane of its own minor release or the next one (kubeadm's
/// `MinimumControlPlaneVersion` is its own minor less one, `cmd/kubeadm/app/constants/constants.go`;
/// "kubeadm can be used with Kubernetes components that are the same version as kubeadm or one
/// version older", `create-cluster-kubeadm.md`, "Version skew policy").
pub fn skew(node: Release, server: u32) -> Option<String> {
    if node.minor > server {
        return Some(format!(
            "the kubelet of {node} would be newer than the API server's v1.{server}: a kubelet must not be newer than kube-apiserver"
        ));
    }
    if node.minor + 1 < server {
        return Some(format!(
            "kubeadm {node} cannot join an API server of v1.{server}: kubeadm joins a control plane of its own minor release or the next one (use v1.{} or v1.{server})",
            server - 1
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_from_v1_31_parse_and_nothing_else_does() {
        assert_eq!(Release::parse("v1.34"), Some(Release { minor: 34, patch: None }));
        assert_eq!(Release::parse("v1.34.2"), Some(Release { minor: 34, patch: Some(2) }));
        assert_eq!(Release::parse("v1.34.2").unwrap().to_string(), "v1.34.2");
        assert_eq!(Release::parse("v1.100").unwrap().minor_name(), "v1.100");
        for bad in
            ["v1.30", "v1.30.9", "1.34", "v2.1", "v1.34.", "v1.34.2.1", "v1.3x", "v1.34; rm -rf /", "v1.1234", "v1.034"]
        {
            assert_eq!(Release::parse(bad), None, "{bad}");
        }
    }

    /// kubeadm's preflight (conntrack below v1.32) and the v1.35 release's last call for
    /// containerd 1.x.
    #[test]
    fn what_a_release_needs_on_the_node() {
        let release = |text| Release::parse(text).unwrap();
        assert!(release("v1.31").needs_conntrack());
        assert!(!release("v1.32").needs_conntrack());
        assert!(!release("v1.35").needs_containerd_2());
        assert!(release("v1.36").needs_containerd_2());
    }

    #[test]
    fn a_node_joins_its_own_minor_release_or_the_next() {
        let node = Release::parse("v1.34.2").unwrap();
        assert_eq!(skew(node, 34), None);
        assert_eq!(skew(node, 35), None);
        assert!(skew(node, 33).unwrap().contains("newer than the API server's v1.33"));
        assert!(skew(node, 36).unwrap().contains("use v1.35 or v1.36"));
        assert_eq!(server_minor("1", "34+"), Some(34));
        assert_eq!(server_minor("1", "x"), None);
        assert_eq!(server_minor("2", "0"), None);
    }
}
