//! The kubelet's PodResources service, on its unix socket.

use crate::podresources::pod_resources_lister_client::PodResourcesListerClient;
use crate::podresources::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, ListPodResourcesRequest, ListPodResourcesResponse,
};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Where the kubelet serves PodResources (`pkg/kubelet/apis/podresources`, the kubelet's
/// `--pod-resources-socket` default under its root directory).
pub const SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

/// The kubelet's answer about to be no answer: a call that takes longer is given up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("cannot reach the kubelet's PodResources socket {socket}: {source}")]
    Connect { socket: PathBuf, source: tonic::transport::Error },
    #[error("the kubelet's PodResources {call} failed: {source}")]
    Call { call: &'static str, source: tonic::Status },
}

/// What the kubelet says of its pods and of the CPUs it may give.
pub struct Snapshot {
    pub pods: ListPodResourcesResponse,
    pub allocatable: AllocatableResourcesResponse,
}

/// A connection to the kubelet's socket.
pub async fn connect(socket: &Path) -> Result<PodResourcesListerClient<Channel>, KubeletError> {
    let path = socket.to_path_buf();
    // The URI is required by tonic and unused: the connector dials the socket.
    let channel = Endpoint::from_static("http://kubelet.invalid")
        .timeout(CALL_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { tokio::net::UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| KubeletError::Connect { socket: socket.to_path_buf(), source })?;
    Ok(PodResourcesListerClient::new(channel))
}

/// The kubelet's pods and allocatable CPUs, now.
pub async fn snapshot(client: &mut PodResourcesListerClient<Channel>) -> Result<Snapshot, KubeletError> {
    let pods = client
        .list(ListPodResourcesRequest {})
        .await
        .map_err(|source| KubeletError::Call { call: "List", source })?
        .into_inner();
    let allocatable = client
        .get_allocatable_resources(AllocatableResourcesRequest {})
        .await
        .map_err(|source| KubeletError::Call { call: "GetAllocatableResources", source })?
        .into_inner();
    Ok(Snapshot { pods, allocatable })
}
