//! Who makes a request: the emulator's one authenticator is the API server's bootstrap-token
//! authenticator (kubernetes `plugin/pkg/auth/authenticator/token/bootstrap/bootstrap.go`, with
//! k8s.io/cluster-bootstrap `token/api/types.go` and `util/secrets/secrets.go`, v1.32). A request
//! without credentials is the cluster's administrator, as the suite's own client is; a bearer
//! token that is not a valid bootstrap token is refused with 401, as a real server refuses a
//! token no authenticator accepts.

use crate::store::{ApiError, Store};
use k8s_openapi::api::core::v1::Secret;

/// An authenticated user, as `spec.username` and `spec.groups` of a CSR record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    /// The requests that carry no credentials: the suite's and the operator's.
    pub fn admin() -> Self {
        Self { name: "system:admin".into(), groups: vec!["system:authenticated".into(), "system:masters".into()] }
    }
}

/// The user of a request with this `Authorization` header value (empty when none).
pub fn authenticate(store: &Store, authorization: &str) -> Result<User, ApiError> {
    if authorization.is_empty() {
        return Ok(User::admin());
    }
    let unauthorized = || ApiError::new(401, "Unauthorized", "Unauthorized");
    let token = authorization.strip_prefix("Bearer ").ok_or_else(unauthorized)?;
    bootstrap_user(store, token.trim()).ok_or_else(unauthorized)
}

/// `\A([a-z0-9]{6})\.([a-z0-9]{16})\z` (`BootstrapTokenPattern`).
fn split(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let part = |text: &str, len: usize| {
        text.len() == len && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (part(id, 6) && part(secret, 16)).then_some((id, secret))
}

/// `\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z` (`BootstrapGroupPattern`).
fn valid_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else { return false };
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    rest.len() <= 256
        && rest.bytes().last().is_some_and(allowed)
        && rest.bytes().all(|b| allowed(b) || b == b':' || b == b'-')
}

/// The checks of `TokenAuthenticator.AuthenticateToken`, in its order: the Secret
/// `kube-system/bootstrap-token-<id>` exists and is not being deleted, has the bootstrap-token
/// type, the secret and the id match, it has not expired (an expiration that does not parse
/// counts as expired), it may authenticate, and every extra group is valid.
fn bootstrap_user(store: &Store, token: &str) -> Option<User> {
    let (id, secret) = split(token)?;
    let stored = store.get("", "secrets", Some("kube-system"), &format!("bootstrap-token-{id}")).ok()?;
    let object: Secret = serde_json::from_value(stored).ok()?;
    if object.metadata.deletion_timestamp.is_some() || object.type_.as_deref() != Some("bootstrap.kubernetes.io/token")
    {
        return None;
    }
    let data = object.data.unwrap_or_default();
    let value = |key: &str| data.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok());
    if value("token-secret")? != secret || value("token-id")? != id {
        return None;
    }
    if let Some(expiration) = value("expiration") {
        let expires = expiration.parse::<k8s_openapi::jiff::Timestamp>().ok()?;
        if expires <= k8s_openapi::jiff::Timestamp::now() {
            return None;
        }
    }
    if value("usage-bootstrap-authentication").as_deref() != Some("true") {
        return None;
    }
    let mut groups = vec!["system:bootstrappers".to_string()];
    for group in value("auth-extra-groups").unwrap_or_default().split(',').map(str::trim).filter(|g| !g.is_empty()) {
        if !valid_group(group) {
            return None;
        }
        groups.push(group.to_string());
    }
    groups.sort();
    groups.dedup();
    // The API server adds this group to every authenticated user (`group.NewAuthenticatedGroupAdder`).
    groups.push("system:authenticated".into());
    Some(User { name: format!("system:bootstrap:{id}"), groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_groups_follow_the_pattern() {
        assert!(valid_group("system:bootstrappers:catalyst:vm-nodes"));
        assert!(valid_group("system:bootstrappers:kubeadm:default-node-token"));
        for bad in ["system:masters", "system:bootstrappers:", "system:bootstrappers:Nodes", "system:bootstrappers:a-"]
        {
            assert!(!valid_group(bad), "{bad}");
        }
        assert_eq!(split("abcdef.0123456789abcdef"), Some(("abcdef", "0123456789abcdef")));
        assert_eq!(split("abcdef.0123456789ABCDEF"), None);
    }
}
