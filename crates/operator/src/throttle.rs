//! Client-side rate limiting of the operator's requests: `--client-qps` and `--client-burst`,
//! as client-go's `rest.Config` `QPS` and `Burst` (`k8s.io/client-go/rest/config.go`).
//!
//! Off by default, unlike client-go's 5 requests a second with bursts of 10: the API server's
//! own API Priority and Fairness (`flowcontrol.apiserver.k8s.io/v1`, GA in Kubernetes 1.29)
//! queues and sheds load per client fairly, and `--reconcile-concurrency` already bounds the
//! operator's requests in flight (a reconcile makes them one after another). At 5 a second, the
//! 12,000 requests of a layout of 1,000 VMs and 1,000 groups would take 40 minutes. A platform
//! that wants a client-side ceiling as well (a shared control plane, say) sets one here.
//!
//! The ceiling is tower's `RateLimit`: at most `burst` requests in each window of
//! `burst / qps` seconds, so `qps` on average, and at most `burst` at once after a quiet spell.
//! A watch counts once, when it starts.

use std::time::Duration;
use tower::limit::RateLimitLayer;

/// A ceiling on the operator's request rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientLimit {
    qps: f64,
    burst: u32,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LimitError {
    #[error("--client-qps must be 0 (no client-side limit) or more, not {0}")]
    NegativeQps(f64),
    #[error("--client-burst must be at least 1 when --client-qps is set")]
    NoBurst,
}

impl ClientLimit {
    /// The limit for these flags; `None` for `qps` 0 (no limit). As client-go's
    /// `RESTClientFor`, a rate without a burst is refused.
    pub fn new(qps: f64, burst: u32) -> Result<Option<Self>, LimitError> {
        if qps.is_nan() || qps < 0.0 {
            return Err(LimitError::NegativeQps(qps));
        }
        if qps == 0.0 {
            return Ok(None);
        }
        if burst == 0 {
            return Err(LimitError::NoBurst);
        }
        Ok(Some(Self { qps, burst }))
    }

    /// The window in which `burst` requests may go.
    fn window(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.burst) / self.qps)
    }

    pub fn layer(&self) -> RateLimitLayer {
        RateLimitLayer::new(u64::from(self.burst), self.window())
    }
}

/// A client for `config`, limited to `limit` when one is set.
///
/// Without kube's default retry of 429, 503 and 504 (kube-client 5.0.0 `client/builder.rs`:
/// `RetryPolicy::server_retry`, 15 attempts with delays up to 1,000 s): a reconcile waiting
/// that out would hold its place for minutes, and a 429 is not always passing (an eviction a
/// disruption budget refuses, `pkg/registry/core/pod/storage/eviction.go`). A failed call fails
/// the reconcile, which backs off per object ([`crate::controller::Backoff`]) and tries again.
pub fn client(mut config: kube::Config, limit: Option<ClientLimit>) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(match limit {
        Some(limit) => builder.with_layer(&limit.layer()).build(),
        None => builder.build(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Service, ServiceExt};

    #[test]
    fn flags_as_client_go_takes_them() {
        assert_eq!(ClientLimit::new(0.0, 0), Ok(None));
        assert_eq!(ClientLimit::new(-1.0, 10), Err(LimitError::NegativeQps(-1.0)));
        assert_eq!(ClientLimit::new(50.0, 0), Err(LimitError::NoBurst));
        assert_eq!(ClientLimit::new(50.0, 100).unwrap().unwrap().window(), Duration::from_secs(2));
    }

    /// 50 requests a second with bursts of 10: the first 10 go at once, and 30 take 0.4 s of
    /// (paused) time, 50 a second on average.
    #[tokio::test(start_paused = true)]
    async fn holds_requests_to_the_rate_after_a_burst() {
        let limit = ClientLimit::new(50.0, 10).unwrap().unwrap();
        let started = tokio::time::Instant::now();
        let mut sent = Vec::new();
        let mut service = tower::ServiceBuilder::new()
            .layer(limit.layer())
            .service_fn(|()| async { Ok::<_, std::convert::Infallible>(tokio::time::Instant::now()) });
        for _ in 0..30 {
            sent.push(service.ready().await.unwrap().call(()).await.unwrap() - started);
        }
        assert!(sent[..10].iter().all(|at| at.is_zero()), "{sent:?}");
        assert_eq!(sent[10], Duration::from_millis(200));
        assert_eq!(sent[29], Duration::from_millis(400));
    }
}
