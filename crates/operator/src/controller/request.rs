//! Writes whose answer is read only in part, or not at all. kube's `Api` methods decode the
//! whole object the API server answers with; for a write whose object the watch brings anyway,
//! that decoding was about a tenth of the operator's CPU at 1,000 VMs.

use kube::Api;

/// A request to `api`'s resource, made by `make`, named `verb` in the client's traces as kube's
/// own methods name theirs.
pub fn to<K: kube::Resource>(
    api: &Api<K>,
    verb: &'static str,
    make: impl FnOnce(kube::core::Request) -> Result<http::Request<Vec<u8>>, kube::core::request::Error>,
) -> Result<http::Request<Vec<u8>>, kube::Error> {
    let mut request = make(kube::core::Request::new(api.resource_url())).map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert(verb);
    Ok(request)
}

/// Sends `request`: the API server's errors as kube reports them, and the object it answers
/// with not decoded.
pub async fn send_unread(client: &kube::Client, request: http::Request<Vec<u8>>) -> Result<(), kube::Error> {
    client.request_text(request).await.map(drop)
}
