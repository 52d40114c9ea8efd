//! A flavor's extra specs as the CatalystVM fields that mean the same, each meaning as Nova
//! defines it (nova 33.0.0, `nova/api/validation/extra_specs/hw.py`,
//! `doc/source/admin/cpu-topologies.rst`, `doc/source/admin/huge-pages.rst`). What has no
//! equivalent is reported.

use catalyst_api::vm::HugepageSize;
use std::collections::BTreeMap;

/// What a flavor's extra specs ask of a CatalystVM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    pub hugepages: Option<HugepageSize>,
    pub numa_passthrough: bool,
    pub isolate_emulator_thread: bool,
}

/// Reads the specs of flavor `flavor`; `warn` hears what does not map or changes meaning.
pub fn read(flavor: &str, specs: &BTreeMap<String, String>, warn: &mut impl FnMut(String)) -> Asked {
    let mut asked = Asked::default();
    let mut say = |key: &str, value: &str, why: &str| warn(format!("flavor {flavor}: {key}={value} {why}"));
    let dedicated_by_resources = specs.contains_key("resources:PCPU");
    for (key, value) in specs {
        match key.as_str() {
            // shared (the default): guest CPUs may be overcommitted; dedicated: each pinned to a
            // host core of its own; mixed: some of each (hw:cpu_dedicated_mask).
            "hw:cpu_policy" => match value.as_str() {
                "dedicated" => {}
                other => say(key, other, "becomes dedicated cores: a CatalystVM pins every vCPU and never overcommits"),
            },
            "hw:cpu_dedicated_mask" | "hw:cpu_realtime_mask" | "hw:cpu_realtime" => {
                say(key, value, "is not mapped: every vCPU of a CatalystVM is dedicated")
            }
            // prefer (the default), require (hosts with SMT), isolate (hosts without).
            "hw:cpu_thread_policy" => match value.as_str() {
                "prefer" => {}
                other => say(
                    key,
                    other,
                    "is not mapped: choose hosts by spec.placement.hostSelector (a CatalystHost's threadsPerCore says whether it has SMT)",
                ),
            },
            // share: emulator threads on the shared pool (or the guest's cores); isolate: one more
            // dedicated core of their own, as KubeVirt's isolateEmulatorThread gives.
            "hw:emulator_threads_policy" => asked.isolate_emulator_thread = value == "isolate",
            // A size (a bare number is KiB), or small, large, any.
            "hw:mem_page_size" => match page_size(value) {
                Some(Page::Size(size)) => asked.hugepages = Some(size),
                Some(Page::Small) => {}
                Some(Page::Unsized) => say(
                    key,
                    value,
                    "is not mapped: set spec.hugepages to 2Mi or 1Gi, the page size a CatalystVM needs named",
                ),
                None => say(key, value, "is not mapped: KubeVirt backs guests with 2Mi or 1Gi pages only"),
            },
            "hw:numa_nodes" => asked.numa_passthrough = true,
            k if k.starts_with("hw:numa_cpus.") || k.starts_with("hw:numa_mem.") => say(
                key,
                value,
                "is not mapped: with numaPassthrough, the guest's cells are the host cells its vCPUs are pinned on",
            ),
            "resources:PCPU" | "resources:VCPU" | "resources:MEMORY_MB" | "resources:DISK_GB" => {}
            "hw:cpu_sockets" | "hw:cpu_cores" | "hw:cpu_threads" => {
                say(key, value, "is not mapped: the guest sees one socket of cores (threads on an SMT host)")
            }
            _ => say(key, value, "is not mapped"),
        }
    }
    if asked.numa_passthrough && asked.hugepages.is_none() {
        warn(format!(
            "flavor {flavor}: hw:numa_nodes is not mapped without hw:mem_page_size: KubeVirt's NUMA passthrough needs hugepages"
        ));
        asked.numa_passthrough = false;
    }
    if dedicated_by_resources && specs.get("hw:cpu_policy").is_some_and(|p| p != "dedicated") {
        warn(format!("flavor {flavor}: resources:PCPU asks dedicated cores, as a CatalystVM has"));
    }
    asked
}

enum Page {
    Size(HugepageSize),
    Small,
    /// `large` or `any`: the host chooses.
    Unsized,
}

/// `hw:mem_page_size`: `small`, `large`, `any`, or a size with an optional unit (Kb, KiB, MB,
/// MiB, GB, GiB, TB, ...: all binary) where a bare number is KiB (`huge-pages.rst`:
/// "Where a unit suffix is not provided, Kilobytes are assumed"; `get_requested_mem_page_size`
/// in `nova/virt/hardware.py`). `None` for a size KubeVirt cannot back a guest with.
fn page_size(value: &str) -> Option<Page> {
    match value {
        "small" => return Some(Page::Small),
        "large" | "any" => return Some(Page::Unsized),
        _ => {}
    }
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit.trim_end_matches("it").trim_end_matches('b').trim_end_matches('i');
    let kib = match unit {
        "" | "k" => number,
        "m" => number.checked_mul(1 << 10)?,
        "g" => number.checked_mul(1 << 20)?,
        "t" => number.checked_mul(1 << 30)?,
        _ => return None,
    };
    match kib {
        4 => Some(Page::Small),
        2048 => Some(Page::Size(HugepageSize::TwoMebibytes)),
        1_048_576 => Some(Page::Size(HugepageSize::OneGibibyte)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(specs: &[(&str, &str)]) -> (Asked, Vec<String>) {
        let specs = specs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut warnings = Vec::new();
        (read("f", &specs, &mut |w| warnings.push(w)), warnings)
    }

    #[test]
    fn page_sizes_read_as_nova_reads_them() {
        for one_gi in ["1GB", "1GiB", "1G", "1048576", "1024MB"] {
            assert!(matches!(page_size(one_gi), Some(Page::Size(HugepageSize::OneGibibyte))), "{one_gi}");
        }
        for two_mi in ["2MB", "2048", "2Mib", "2048KB"] {
            assert!(matches!(page_size(two_mi), Some(Page::Size(HugepageSize::TwoMebibytes))), "{two_mi}");
        }
        assert!(matches!(page_size("small"), Some(Page::Small)));
        assert!(matches!(page_size("4"), Some(Page::Small)));
        assert!(matches!(page_size("large"), Some(Page::Unsized)));
        assert!(page_size("16MB").is_none());
        assert!(page_size("lots").is_none());
    }

    #[test]
    fn a_pinned_numa_flavor_maps_and_the_rest_is_reported() {
        let (asked_for, warnings) = asked(&[
            ("hw:cpu_policy", "dedicated"),
            ("hw:emulator_threads_policy", "isolate"),
            ("hw:mem_page_size", "1GB"),
            ("hw:numa_nodes", "2"),
            ("quota:cpu_shares", "1024"),
        ]);
        let want =
            Asked { hugepages: Some(HugepageSize::OneGibibyte), numa_passthrough: true, isolate_emulator_thread: true };
        assert_eq!(asked_for, want);
        assert_eq!(warnings, ["flavor f: quota:cpu_shares=1024 is not mapped"]);
    }

    #[test]
    fn shared_cpus_and_numa_without_pages_are_reported() {
        let (asked_for, warnings) = asked(&[("hw:cpu_policy", "shared"), ("hw:numa_nodes", "1")]);
        assert_eq!(asked_for, Asked::default());
        assert!(warnings[0].contains("hw:cpu_policy=shared becomes dedicated cores"), "{warnings:?}");
        assert!(warnings[1].contains("NUMA passthrough needs hugepages"), "{warnings:?}");
    }
}
