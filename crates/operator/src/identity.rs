//! Who Catalyst's programs say they are to the API server: the `User-Agent` an audit log
//! records for each request. Without one, kube-client sends none and the audit log's
//! `userAgent` is empty, so no one can tell the operator's requests from anyone else's.

use http::{HeaderValue, header::USER_AGENT};

/// `program/version`, as kubectl's own `kubectl/v1.35.0 (...)` and client-go's default.
pub fn user_agent(program: &str) -> String {
    format!("{program}/{}", env!("CARGO_PKG_VERSION"))
}

/// Makes every request of a client built from `config` carry `program/version`.
pub fn identify(config: &mut kube::Config, program: &str) {
    let value = HeaderValue::from_str(&user_agent(program)).expect("a program name is a valid header value");
    config.headers.retain(|(name, _)| *name != USER_AGENT);
    config.headers.push((USER_AGENT, value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_names_the_program_and_its_version() {
        assert_eq!(user_agent("catalyst-operator"), format!("catalyst-operator/{}", env!("CARGO_PKG_VERSION")));
        let mut config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        identify(&mut config, "catalyst-operator");
        identify(&mut config, "catalyst-operator");
        let agents: Vec<_> = config.headers.iter().filter(|(name, _)| *name == USER_AGENT).collect();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].1, user_agent("catalyst-operator"));
    }
}
