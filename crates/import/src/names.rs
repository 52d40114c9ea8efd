//! Names users gave (`VM-SMS-Services`, `sms_service_1`) as names Kubernetes accepts.

/// A DNS label (RFC 1123, as Kubernetes names most objects): lowercase letters, digits and
/// `-`, starting and ending with a letter or digit, at most 63 characters. Other characters
/// become `-`; runs of `-` collapse. Empty when nothing usable is left.
pub fn dns_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    let mut label: String = trimmed.chars().take(63).collect();
    while label.ends_with('-') {
        label.pop();
    }
    label
}

/// A DNS subdomain (as Kubernetes names cluster-scoped objects and nodes): DNS labels joined
/// by dots, at most 253 characters.
pub fn dns_subdomain(text: &str) -> String {
    let labels: Vec<String> = text.split('.').map(dns_label).filter(|l| !l.is_empty()).collect();
    let mut name = labels.join(".");
    name.truncate(253);
    name.trim_end_matches(['.', '-']).to_string()
}

#[cfg(test)]
mod tests {
    use super::{dns_label, dns_subdomain};

    #[test]
    fn host_names_keep_their_dots() {
        assert_eq!(dns_subdomain("Compute-01.Example.COM"), "compute-01.example.com");
        assert_eq!(dns_subdomain("a..b_c"), "a.b-c");
    }

    #[test]
    fn user_names_become_dns_labels() {
        assert_eq!(dns_label("VM-SMS-Services"), "vm-sms-services");
        assert_eq!(dns_label("sms_service_1"), "sms-service-1");
        assert_eq!(dns_label("  --Billing & Fraud--  "), "billing-fraud");
        assert_eq!(dns_label("db.primary"), "db-primary");
        assert_eq!(dns_label("日本"), "");
        assert_eq!(dns_label(&format!("{}-x", "a".repeat(62))), "a".repeat(62));
    }
}
