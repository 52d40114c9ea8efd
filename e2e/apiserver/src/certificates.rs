//! CertificateSigningRequests as the API server keeps them (kubernetes
//! `pkg/registry/certificates/certificates/strategy.go` and
//! `pkg/apis/certificates/validation/validation.go`, v1.32): who asked is the server's to say,
//! never the body's; the request must be a PEM certificate request; and a decision is made
//! through the `approval` subresource, which changes only `status.conditions`, where Approved and
//! Denied exclude each other and, once made, stay. Not modelled: the request's signature check.

use crate::auth::User;
use crate::store::ApiError;
use serde_json::{Value, json};
use x509_cert::der::DecodePem;

pub const PLURAL: &str = "certificatesigningrequests";

fn invalid(name: &str, cause: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("CertificateSigningRequest.certificates.k8s.io \"{name}\" is invalid: {cause}"),
    )
}

/// `PrepareForCreate` and `ValidateCertificateSigningRequestCreate`: the requester is the
/// authenticated user, the status starts empty, and the request parses.
pub fn prepare_for_create(object: &mut Value, user: &User) -> Result<(), ApiError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    if object["spec"]["signerName"].as_str().is_none_or(str::is_empty) {
        return Err(invalid(&name, "spec.signerName: Required value"));
    }
    let request = object["spec"]["request"].as_str().unwrap_or_default();
    let pem: k8s_openapi::ByteString = serde_json::from_value(json!(request))
        .map_err(|_| invalid(&name, "spec.request: Invalid value: not base64"))?;
    x509_cert::request::CertReq::from_pem(&pem.0)
        .map_err(|e| invalid(&name, format!("spec.request: Invalid value: []byte{{...}}: {e}")))?;
    object["spec"]["username"] = json!(user.name);
    object["spec"]["groups"] = json!(user.groups);
    if let Some(spec) = object["spec"].as_object_mut() {
        spec.remove("uid");
        spec.remove("extra");
    }
    if let Some(fields) = object.as_object_mut() {
        fields.remove("status");
    }
    Ok(())
}

/// The object an `approval` write leaves: the current one with the body's conditions.
pub fn approve(current: &Value, body: &Value) -> Result<Value, ApiError> {
    let name = current["metadata"]["name"].as_str().unwrap_or_default();
    let conditions = body["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let decided = |list: &[Value], type_: &str| list.iter().any(|c| c["type"] == type_ && c["status"] == "True");
    if decided(&conditions, "Approved") && decided(&conditions, "Denied") {
        return Err(invalid(
            name,
            "status.conditions: Invalid value: Approved and Denied conditions are mutually exclusive",
        ));
    }
    let before = current["status"]["conditions"].as_array().cloned().unwrap_or_default();
    for type_ in ["Approved", "Denied"] {
        if decided(&before, type_) && !decided(&conditions, type_) {
            return Err(invalid(
                name,
                format!("status.conditions: Forbidden: updates may not remove a condition of type {type_:?}"),
            ));
        }
    }
    let mut next = current.clone();
    next["status"]["conditions"] = json!(conditions);
    Ok(next)
}
