//! The value formats of the Compose Specification, read as Docker Compose reads them (the
//! reference implementation, compose-go v2.10.0, which Kompose v1.38.0 uses).

use serde_json::Value;

/// A byte value: a number of bytes, or `{amount}{unit}` with a unit of `b`, `k`, `m`, `g`, `t`
/// or `p` (any case, optionally followed by `b` or `ib`) and an amount that may be fractional.
/// The Compose Specification (`11-extension.md`, "Specifying byte values") does not say which
/// base; Docker reads 1024 (docker/go-units v0.5.0 `size.go`, `RAMInBytes`, which compose-go's
/// `types.UnitBytes` calls), so `42g` is 42 GiB, as a user of `docker compose` gets today.
pub fn bytes(value: &Value) -> Result<u64, String> {
    let text = match value {
        Value::Number(n) => {
            return n.as_u64().ok_or_else(|| format!("{n} is not a whole, non-negative number of bytes"));
        }
        Value::String(s) => s.trim(),
        other => return Err(format!("expected a byte value such as 42g, found {}", kind(other))),
    };
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (amount, unit) = text.split_at(split);
    let amount: f64 = amount.parse().map_err(|_| format!("{text:?} is not a byte value such as 42g or 512m"))?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b')).unwrap_or(&unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return Err(format!("{text:?}: unknown unit (b, k, m, g, t or p, as in 42g)")),
    };
    let bytes = amount * 1024f64.powi(power);
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes as u64)
}

/// A number of CPUs: a number or a string holding one (`'8'`, `0.5`; the schema's
/// `["number", "string"]`), not negative.
pub fn cpus(value: &Value) -> Result<f64, String> {
    let cpus = match value {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s.trim().parse().map_err(|_| format!("{s:?} is not a number of CPUs"))?,
        other => return Err(format!("expected a number of CPUs, found {}", kind(other))),
    };
    if cpus.is_finite() && cpus >= 0.0 { Ok(cpus) } else { Err(format!("{cpus} is not a number of CPUs")) }
}

/// A count (`deploy.replicas`, `scale`, `retries`): an integer, or a string holding one.
pub fn count(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("{n} is not a whole, non-negative number")),
        Value::String(s) => s.trim().parse().map_err(|_| format!("{s:?} is not a whole number")),
        other => Err(format!("expected a whole number, found {}", kind(other))),
    }
}

/// A duration in seconds: `{value}{unit}`, repeated (`1m30s`), units `us`, `ms`, `s`, `m`, `h`
/// (the Specification, "Specifying durations"), and, as compose-go reads them with
/// go-str2duration, `ns`, `d`, `w` and fractions (`2.5s`).
pub fn seconds(value: &Value) -> Result<f64, String> {
    let Value::String(text) = value else {
        return Err(format!("expected a duration such as 30s, found {}", kind(value)));
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("an empty duration".into());
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (amount, tail) = rest.split_at(split);
        let amount: f64 = amount.parse().map_err(|_| format!("{text:?} is not a duration such as 1m30s"))?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            _ => return Err(format!("{text:?}: unknown unit {unit:?} (us, ms, s, m or h)")),
        };
        total += amount * scale;
        rest = tail;
    }
    Ok(total)
}

/// A memory size as a Kubernetes quantity, in the largest binary unit that holds it whole.
pub fn quantity(bytes: u64) -> String {
    for (shift, suffix) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// What a YAML value is, for an error message.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn byte_values_are_1024_based_as_docker_reads_them() {
        assert_eq!(bytes(&s("42g")).unwrap(), 42 << 30);
        assert_eq!(bytes(&s("500g")).unwrap(), 500 << 30);
        assert_eq!(bytes(&s("0.5G")).unwrap(), 512 << 20);
        // go-units' own examples: 50M, 50mb and 50MiB are all 52,428,800.
        for text in ["50M", "50mb", "50MiB", "50 m"] {
            assert_eq!(bytes(&s(text)).unwrap(), 52_428_800, "{text}");
        }
        assert_eq!(bytes(&Value::Number(1_073_741_824u64.into())).unwrap(), 1 << 30);
        assert_eq!(bytes(&s("2048")).unwrap(), 2048);
        assert!(bytes(&s("42q")).unwrap_err().contains("unknown unit"));
        assert!(bytes(&s("lots")).is_err());
        assert!(bytes(&s("1e400g")).is_err());
    }

    #[test]
    fn quantities_take_the_largest_whole_binary_unit() {
        assert_eq!(quantity(42 << 30), "42Gi");
        assert_eq!(quantity(512 << 20), "512Mi");
        assert_eq!(quantity(750 << 30), "750Gi");
        assert_eq!(quantity(1 << 40), "1Ti");
        assert_eq!(quantity(1000), "1000");
    }

    #[test]
    fn cpus_durations_and_counts_read_numbers_and_strings() {
        assert_eq!(cpus(&s("8")).unwrap(), 8.0);
        assert_eq!(cpus(&serde_json::json!(0.5)).unwrap(), 0.5);
        assert!(cpus(&s("-1")).is_err());
        assert_eq!(seconds(&s("1m30s")).unwrap(), 90.0);
        assert_eq!(seconds(&s("2.5s")).unwrap(), 2.5);
        assert_eq!(seconds(&s("500ms")).unwrap(), 0.5);
        assert!(seconds(&s("10 parsecs")).is_err());
        assert!(seconds(&s("")).is_err());
        assert_eq!(count(&s("12")).unwrap(), 12);
        assert!(count(&Value::Number((-1).into())).is_err());
    }
}
