//! The operator's HTTP endpoints: `/metrics` (Prometheus), `/healthz` (the process answers) and
//! `/readyz` (ready to do its job: leading with synced caches, or standing by).

use crate::metrics::Metrics;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Where the replica is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    StandingBy = 1,
    Syncing = 2,
    Leading = 3,
}

#[derive(Default)]
pub struct Health {
    phase: AtomicU8,
}

impl Health {
    pub fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    pub fn ready(&self) -> bool {
        matches!(self.phase.load(Ordering::SeqCst), 1 | 3)
    }
}

/// The response to one request.
pub fn respond(path: &str, metrics: &Metrics, health: &Health) -> (StatusCode, &'static str, String) {
    match path {
        "/metrics" => (StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", metrics.encode()),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" if health.ready() => (StatusCode::OK, "text/plain", "ready\n".into()),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n".into()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Serves until the process ends.
/// Serves /metrics, /healthz and /readyz on `listener` (bound by the caller, so that an
/// address already in use stops the process at start instead of leaving the probes to fail).
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    }
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Such as too many open files: the next connection may well be accepted.
            Err(error) => {
                tracing::warn!(%error, "could not accept a metrics connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, health) = (metrics.clone(), health.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let (status, content_type, body) = respond(request.uri().path(), &metrics, &health);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .body(Full::new(Bytes::from(body)));
                async move { response }
            });
            if let Err(error) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                tracing::debug!(%error, "metrics connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_when_standing_by_or_leading_with_synced_caches() {
        let (metrics, health) = (Metrics::default(), Health::default());
        assert_eq!(respond("/readyz", &metrics, &health).0, StatusCode::SERVICE_UNAVAILABLE);
        for (phase, ready) in [(Phase::StandingBy, true), (Phase::Syncing, false), (Phase::Leading, true)] {
            health.set(phase);
            assert_eq!(respond("/readyz", &metrics, &health).0 == StatusCode::OK, ready, "{phase:?}");
        }
        assert_eq!(respond("/healthz", &metrics, &health).0, StatusCode::OK);
        assert!(respond("/metrics", &metrics, &health).2.ends_with("# EOF\n"));
        assert_eq!(respond("/nope", &metrics, &health).0, StatusCode::NOT_FOUND);
    }
}
