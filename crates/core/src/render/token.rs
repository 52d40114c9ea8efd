//! Per-VM bootstrap tokens: instead of one long-lived token that any holder can use to
//! register nodes, each VM joins with a token of its own, which exists only while the VM runs
//! and has not joined, and expires unless the operator extends it. Its Secret is the API
//! server's bootstrap-token format (k8s.io/cluster-bootstrap `token/api/types.go`: the name,
//! type and keys), and it carries Catalyst's own group
//! ([`crate::kubelet_csr::NODE_BOOTSTRAP_GROUP`]) rather than kubeadm's, whose client
//! certificates kube-controller-manager approves for any node name: the operator approves this
//! token's only for its VM's node.

use super::{labels, managed_labels};
use crate::kubelet_csr::NODE_BOOTSTRAP_GROUP;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Where the API server looks for bootstrap tokens.
pub const TOKEN_NAMESPACE: &str = "kube-system";
/// When the token expires, also in the Secret's metadata, so that the operator's metadata
/// watch of the tokens sees it without reading the Secret.
pub const EXPIRES_ANNOTATION: &str = "catalyst.io/expires";
/// The key of the VM's cloud-init Secret that keeps its token, so the operator finds it again
/// (KubeVirt reads only `userdata` and `networkdata`).
pub const CLOUD_INIT_TOKEN_KEY: &str = "joinToken";

/// What a bootstrap token's Secret is named: this and the token id (`BootstrapTokenSecretPrefix`).
pub const SECRET_PREFIX: &str = "bootstrap-token-";

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}` (`BootstrapTokenPattern`).
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

/// Never prints the secret part.
impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BootstrapToken {{ id: {}, secret: <redacted> }}", self.id)
    }
}

impl BootstrapToken {
    /// A token from random bytes: each byte below 252 (7 x 36, so every character is as
    /// likely) gives a character; `None` when fewer than 22 bytes qualify.
    pub fn from_random(bytes: &[u8]) -> Option<Self> {
        let chars: String =
            bytes.iter().filter(|&&b| b < 252).map(|&b| ALPHABET[usize::from(b % 36)] as char).take(22).collect();
        (chars.len() == 22).then(|| Self { id: chars[..6].to_string(), secret: chars[6..].to_string() })
    }

    /// `id.secret`, as kubeadm takes it; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (id, secret) = text.split_once('.')?;
        let valid = |part: &str, len: usize| part.len() == len && part.bytes().all(|b| ALPHABET.contains(&b));
        (valid(id, 6) && valid(secret, 16)).then(|| Self { id: id.to_string(), secret: secret.to_string() })
    }

    /// `id.secret`.
    pub fn reveal(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The name of its Secret in `kube-system`.
    pub fn secret_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.id)
    }

    /// The token id, which the API server names its user by (`system:bootstrap:<id>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bootstrap-token Secret for the VM whose node is `vm_node` (`name.namespace`), valid
    /// until `expires` (RFC 3339): for authentication (`kubeadm join`) and for signing the
    /// `cluster-info` ConfigMap its discovery reads. Its label names that node, the only one
    /// whose client certificate the operator approves for this token.
    pub fn secret(&self, vm_node: &str, expires: &str) -> Secret {
        let data = [
            ("token-id", self.id.clone()),
            ("token-secret", self.secret.clone()),
            ("expiration", expires.to_string()),
            ("usage-bootstrap-authentication", "true".into()),
            ("usage-bootstrap-signing", "true".into()),
            ("auth-extra-groups", NODE_BOOTSTRAP_GROUP.into()),
            ("description", format!("Catalyst: the join of the VM-node {vm_node}")),
        ];
        Secret {
            metadata: ObjectMeta {
                name: Some(self.secret_name()),
                namespace: Some(TOKEN_NAMESPACE.into()),
                labels: Some(managed_labels([(labels::JOIN_TOKEN_OF, vm_node.to_string())])),
                annotations: Some([(EXPIRES_ANNOTATION.to_string(), expires.to_string())].into()),
                ..ObjectMeta::default()
            },
            type_: Some("bootstrap.kubernetes.io/token".into()),
            data: Some(data.into_iter().map(|(k, v)| (k.to_string(), ByteString(v.into_bytes()))).collect()),
            ..Secret::default()
        }
    }

    /// The token a VM's cloud-init Secret keeps, if it keeps one.
    pub fn kept_in(cloud_init: &Secret) -> Option<Self> {
        let data: &BTreeMap<String, ByteString> = cloud_init.data.as_ref()?;
        Self::parse(std::str::from_utf8(&data.get(CLOUD_INIT_TOKEN_KEY)?.0).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_has_kubeadms_shape_and_every_character_is_as_likely() {
        let bytes: Vec<u8> = (0..=255).collect();
        let token = BootstrapToken::from_random(&bytes).unwrap();
        assert_eq!(token.reveal(), "012345.6789abcdefghijkl");
        assert!(BootstrapToken::parse(&token.reveal()).is_some());
        // Bytes from 252 up are skipped, so none is more likely than another.
        assert_eq!(BootstrapToken::from_random(&[252; 64]), None);
        for bad in ["abcdef.0123456789abcde", "ABCDEF.0123456789abcdef", "abcdef0123456789abcdef", "abc.def"] {
            assert_eq!(BootstrapToken::parse(bad), None, "{bad}");
        }
        assert_eq!(format!("{token:?}"), "BootstrapToken { id: 012345, secret: <redacted> }");
    }

    /// The API server's bootstrap-token authenticator reads these keys
    /// (k8s.io/cluster-bootstrap `token/api/types.go`).
    #[test]
    fn its_secret_is_the_api_servers_bootstrap_token_format() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let secret = token.secret("api-a.team", "2026-11-29T11:00:00Z");
        assert_eq!(secret.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(secret.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
        let data = secret.data.clone().unwrap();
        let value = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
        assert_eq!(value("token-id"), "abcdef");
        assert_eq!(value("token-secret"), "0123456789abcdef");
        assert_eq!(value("usage-bootstrap-authentication"), "true");
        assert_eq!(value("usage-bootstrap-signing"), "true");
        // Catalyst's group, which no role auto-approves, never kubeadm's default-node-token.
        assert_eq!(value("auth-extra-groups"), "system:bootstrappers:catalyst:vm-nodes");
        assert_eq!(value("expiration"), "2026-11-29T11:00:00Z");
        assert_eq!(secret.metadata.annotations.unwrap()["catalyst.io/expires"], "2026-11-29T11:00:00Z");
    }
}
