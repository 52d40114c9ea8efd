//! A kubelet client certificate request, as a kubelet makes one (an EC P-256 key; CN
//! `system:node:<node>`, O `system:nodes`; the usages of a client certificate), for the tests
//! that play a kubelet: the emulator's and the end-to-end suite's (`#[path]`-included by both).

pub fn kubelet_csr(name: &str, cn: &str) -> k8s_openapi::api::certificates::v1::CertificateSigningRequest {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
    let pem = params.serialize_request(&rcgen::KeyPair::generate().unwrap()).unwrap().pem().unwrap();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                 "usages": ["digital signature", "client auth"],
                 "request": k8s_openapi::ByteString(pem.into_bytes())}
    }))
    .unwrap()
}
