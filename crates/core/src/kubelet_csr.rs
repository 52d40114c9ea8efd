//! Which kubelet client certificates the operator approves: only the one a VM's own bootstrap
//! token asks for, for that VM's node.
//!
//! kube-controller-manager's approver lets any holder of a token in kubeadm's node group have a
//! client certificate for any `system:node:<name>`: its `nodeclient` check never ties the
//! requester to the certificate's name (kubernetes
//! `pkg/controller/certificates/approver/sarapprove.go`, `isNodeClientCert`; only
//! `selfnodeclient` compares `spec.username` with the CN). So each VM's token carries
//! Catalyst's own group ([`NODE_BOOTSTRAP_GROUP`]), which no role lets be auto-approved, and the
//! operator approves a request from that group only when its requester is the token minted for
//! a VM and its subject is that VM's node, in the form kubelets ask for
//! (`pkg/apis/certificates/helpers.go`, `ValidateKubeletClientCSR`).

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use std::collections::BTreeSet;
use x509_cert::der::DecodePem;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::ext::pkix::name::DirectoryString;
use x509_cert::request::CertReq;

/// The group of every token the operator mints: a bootstrap token's extra group must match
/// `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]` (k8s.io/cluster-bootstrap
/// `token/api/types.go`, `BootstrapGroupPattern`). The chart binds it to what `kubeadm join`
/// reads and to `system:node-bootstrapper`, never to the auto-approval role.
pub const NODE_BOOTSTRAP_GROUP: &str = "system:bootstrappers:catalyst:vm-nodes";
/// The signer of kubelet client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// A bootstrap token's user: this and its id (`BootstrapUserPrefix`).
pub const BOOTSTRAP_USER_PREFIX: &str = "system:bootstrap:";

const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const ORGANIZATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const EXTENSION_REQUEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");

/// What the operator does with a certificate signing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    /// Another's to decide: another signer, another group, or decided already.
    NotOurs,
    /// Catalyst's token asks for its own VM's node: approve.
    Approve { node: String, message: String },
    /// Catalyst's token asks for something else: deny, with the condition's reason.
    Deny { reason: &'static str, message: String },
}

/// Reviews `csr`; `node_of_token` gives the node name of the VM a token id was minted for.
pub fn review(csr: &CertificateSigningRequest, node_of_token: impl Fn(&str) -> Option<String>) -> Review {
    let spec = &csr.spec;
    let decided = csr.status.iter().flat_map(|s| s.conditions.iter().flatten());
    if decided.into_iter().any(|c| matches!(c.type_.as_str(), "Approved" | "Denied" | "Failed"))
        || spec.signer_name != KUBELET_CLIENT_SIGNER
        || !spec.groups.iter().flatten().any(|g| g == NODE_BOOTSTRAP_GROUP)
    {
        return Review::NotOurs;
    }
    let deny = |reason, message: String| Review::Deny { reason, message };
    let user = spec.username.as_deref().unwrap_or_default();
    let Some(token) = user.strip_prefix(BOOTSTRAP_USER_PREFIX) else {
        return deny("NotABootstrapToken", format!("{user} is not a bootstrap token's user"));
    };
    let Some(node) = node_of_token(token) else {
        return deny("UnknownToken", format!("bootstrap token {token} was not minted for any CatalystVM"));
    };
    match kubelet_client_subject(&spec.request.0, spec.usages.iter().flatten()) {
        Err(why) => deny("NotAKubeletClientRequest", why),
        Ok(cn) if cn != format!("system:node:{node}") => {
            deny("NotThisVMsNode", format!("bootstrap token {token} is node {node}'s, and asks a certificate for {cn}"))
        }
        Ok(_) => Review::Approve {
            message: format!("node {node}'s kubelet, with the bootstrap token minted for its CatalystVM"),
            node,
        },
    }
}

/// The subject's common name of a kubelet client request, as `ValidateKubeletClientCSR` wants it:
/// organization exactly `system:nodes`, no subject alternative names, a common name under
/// `system:node:`, and the usages `digital signature` and `client auth` (with `key encipherment`
/// for an RSA key, or without it).
fn kubelet_client_subject<'a>(pem: &[u8], usages: impl Iterator<Item = &'a String>) -> Result<String, String> {
    let request = CertReq::from_pem(pem).map_err(|e| format!("spec.request is not a PEM certificate request: {e}"))?;
    let subject = &request.info.subject;
    let values = |oid: ObjectIdentifier| -> Result<Vec<String>, String> {
        subject
            .iter()
            .filter(|attribute| attribute.oid == oid)
            .map(|attribute| {
                let text = DirectoryString::try_from(&attribute.value).map_err(|e| format!("the subject: {e}"))?;
                Ok(text.value().into_owned())
            })
            .collect()
    };
    let organizations = values(ORGANIZATION)?;
    if organizations != ["system:nodes"] {
        return Err(format!("the subject's organization must be system:nodes alone, not {organizations:?}"));
    }
    let names = values(COMMON_NAME)?;
    let [cn] = names.as_slice() else { return Err(format!("the subject must have one common name, not {names:?}")) };
    if !cn.starts_with("system:node:") {
        return Err(format!("the common name {cn} is not under system:node:"));
    }
    if request.info.attributes.iter().any(|attribute| attribute.oid == EXTENSION_REQUEST) {
        return Err("a kubelet client certificate has no extensions, subject alternative names included".into());
    }
    let usages: BTreeSet<&str> = usages.map(String::as_str).collect();
    let with_rsa = BTreeSet::from(["digital signature", "key encipherment", "client auth"]);
    let without_rsa = BTreeSet::from(["digital signature", "client auth"]);
    if usages != with_rsa && usages != without_rsa {
        return Err(format!(
            "the usages must be digital signature and client auth (and key encipherment), not {usages:?}"
        ));
    }
    Ok(cn.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A request a kubelet makes: an EC P-256 key, CN `system:node:<node>`, O `system:nodes`,
    /// made with rcgen (the kubelet makes the same with Go's crypto/x509).
    fn pem(cn: &str, organizations: &[&str], san: Option<&str>) -> String {
        let mut params = rcgen::CertificateParams::new(san.map(|s| vec![s.to_string()]).unwrap_or_default()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        for organization in organizations {
            params.distinguished_name.push(rcgen::DnType::OrganizationName, *organization);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr(user: &str, groups: &[&str], request: &str, usages: &[&str]) -> CertificateSigningRequest {
        serde_json::from_value(json!({
            "metadata": {"name": "node-csr-1"},
            "spec": {"signerName": KUBELET_CLIENT_SIGNER, "username": user, "groups": groups,
                     "usages": usages, "request": k8s_openapi::ByteString(request.as_bytes().to_vec())}
        }))
        .unwrap()
    }

    const USAGES: [&str; 2] = ["digital signature", "client auth"];
    const GROUPS: [&str; 3] = ["system:bootstrappers", NODE_BOOTSTRAP_GROUP, "system:authenticated"];

    fn token_owner(id: &str) -> Option<String> {
        (id == "abcdef").then(|| "api-a.team".to_string())
    }

    #[test]
    fn a_vms_token_gets_its_own_nodes_certificate_and_nothing_else() {
        let own =
            csr("system:bootstrap:abcdef", &GROUPS, &pem("system:node:api-a.team", &["system:nodes"], None), &USAGES);
        assert!(matches!(review(&own, token_owner), Review::Approve { node, .. } if node == "api-a.team"));
        // The same token asking for another VM's node: what kubeadm's auto-approval would sign.
        let other =
            csr("system:bootstrap:abcdef", &GROUPS, &pem("system:node:api-b.team", &["system:nodes"], None), &USAGES);
        let Review::Deny { reason, message } = review(&other, token_owner) else { panic!() };
        assert_eq!(reason, "NotThisVMsNode");
        assert_eq!(
            message,
            "bootstrap token abcdef is node api-a.team's, and asks a certificate for system:node:api-b.team"
        );
        let unknown =
            csr("system:bootstrap:zzzzzz", &GROUPS, &pem("system:node:api-a.team", &["system:nodes"], None), &USAGES);
        assert!(matches!(review(&unknown, token_owner), Review::Deny { reason: "UnknownToken", .. }));
    }

    /// `ValidateKubeletClientCSR`: O exactly system:nodes, no SANs, the usages of a client cert.
    #[test]
    fn only_a_kubelet_client_request_passes() {
        let user = "system:bootstrap:abcdef";
        let cn = "system:node:api-a.team";
        let bad = [
            csr(user, &GROUPS, &pem(cn, &["system:masters"], None), &USAGES),
            csr(user, &GROUPS, &pem(cn, &["system:nodes", "system:masters"], None), &USAGES),
            csr(user, &GROUPS, &pem(cn, &["system:nodes"], Some("api-a.team")), &USAGES),
            csr(user, &GROUPS, &pem(cn, &["system:nodes"], None), &["digital signature", "server auth"]),
            csr(
                user,
                &GROUPS,
                "-----BEGIN CERTIFICATE REQUEST-----\nnot der\n-----END CERTIFICATE REQUEST-----\n",
                &USAGES,
            ),
        ];
        for request in bad {
            assert!(matches!(review(&request, token_owner), Review::Deny { reason: "NotAKubeletClientRequest", .. }));
        }
        let rsa_usages = ["digital signature", "key encipherment", "client auth"];
        assert!(matches!(
            review(&csr(user, &GROUPS, &pem(cn, &["system:nodes"], None), &rsa_usages), token_owner),
            Review::Approve { .. }
        ));
    }

    /// kubeadm's own tokens, other signers and decided requests are left to others.
    #[test]
    fn what_is_not_catalysts_is_left_alone() {
        let request = pem("system:node:api-a.team", &["system:nodes"], None);
        let kubeadm = csr(
            "system:bootstrap:abcdef",
            &["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token"],
            &request,
            &USAGES,
        );
        assert_eq!(review(&kubeadm, token_owner), Review::NotOurs);
        let mut serving = csr("system:bootstrap:abcdef", &GROUPS, &request, &USAGES);
        serving.spec.signer_name = "kubernetes.io/kubelet-serving".into();
        assert_eq!(review(&serving, token_owner), Review::NotOurs);
        let mut approved = csr("system:bootstrap:abcdef", &GROUPS, &request, &USAGES);
        approved.status =
            serde_json::from_value(json!({"conditions": [{"type": "Approved", "status": "True"}]})).unwrap();
        assert_eq!(review(&approved, token_owner), Review::NotOurs);
        let node_user = csr("system:node:api-a.team", &GROUPS, &request, &USAGES);
        assert!(matches!(review(&node_user, token_owner), Review::Deny { reason: "NotABootstrapToken", .. }));
    }
}
