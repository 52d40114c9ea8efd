//! What a VM's virt-launcher pod asks of its host beyond the guest's cores and memory, as
//! KubeVirt computes it, release by release: the memory `GetMemoryOverhead` adds to the
//! compute container, scaled by the KubeVirt CR's `additionalGuestMemoryOverheadRatio`, and
//! the `guest-console-log` sidecar's requests.

use super::res::Res;
use crate::quantity::format_bytes;
use serde::{Serialize, Serializer};

/// The KubeVirt releases whose launcher figures the planner knows. KubeVirt's main branch
/// (commit c822873795, "hypervisor: bump QemuOverhead from 30Mi to 50Mi") counts 20Mi more for
/// QEMU; no release carries it yet, so neither does this table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum KubevirtRelease {
    #[serde(rename = "v1.4")]
    V1_4,
    #[serde(rename = "v1.5")]
    V1_5,
    #[serde(rename = "v1.6")]
    V1_6,
    #[serde(rename = "v1.7")]
    V1_7,
    #[serde(rename = "v1.8")]
    V1_8,
    #[serde(rename = "v1.9")]
    V1_9,
}

impl KubevirtRelease {
    pub const ALL: [KubevirtRelease; 6] = [Self::V1_4, Self::V1_5, Self::V1_6, Self::V1_7, Self::V1_8, Self::V1_9];
    pub const NEWEST: KubevirtRelease = KubevirtRelease::V1_9;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_4 => "v1.4",
            Self::V1_5 => "v1.5",
            Self::V1_6 => "v1.6",
            Self::V1_7 => "v1.7",
            Self::V1_8 => "v1.8",
            Self::V1_9 => "v1.9",
        }
    }

    /// `GetMemoryOverhead`'s constants for a VM as Catalyst renders it: dedicated CPUs, one
    /// IO thread, no graphics device (so no video RAM), no TPM, SEV, VFIO device or exec probe,
    /// on x86-64. Read at the tags v1.4.0 to v1.9.0: `pkg/virt-controller/services/template.go`
    /// and `renderresources.go` up to v1.7.0, `pkg/hypervisor/kvm/hypervisorbackend.go` from
    /// v1.8.0.
    fn figures(self) -> LauncherFigures {
        // virt-launcher-monitor 25Mi, virt-launcher 100Mi, qemu 30Mi and the IO thread's 8Mi
        // in every release; virtlogd and virtqemud grew from 20Mi and 35Mi in v1.5.0.
        let (virtlogd, virtqemud) = if self == Self::V1_4 { (20, 35) } else { (25, 40) };
        LauncherFigures {
            processes: (25 + 100 + virtlogd + virtqemud + 30 + 8) << 20,
            dedicated_cpus: 100 << 20,
            // Up to v1.5.0 the dedicated-CPU term was added after the ratio; v1.6.0 (commit
            // 22a94a3a4c) moved it before, so the ratio scales it.
            ratio_scales_dedicated: self >= Self::V1_6,
            per_vcpu: 8 << 20,
            pagetable_divisor: 512,
            container_disk: (!self.image_volume_by_default()).then_some(CONTAINER_DISK),
        }
    }
}

impl KubevirtRelease {
    /// Whether the `ImageVolume` feature gate exists: Alpha from v1.6.0, Beta from v1.7.0
    /// (`pkg/virt-config/featuregate/active.go`).
    pub fn has_image_volume_gate(self) -> bool {
        self >= Self::V1_6
    }

    /// Whether it is on unless the KubeVirt CR turns it off: from v1.9.0, whose Beta gates are
    /// on by default (commit 6a8dfaf64c, "Enable beta feature gates by default"); in v1.7 and
    /// v1.8 a Beta gate is off unless listed.
    pub fn image_volume_by_default(self) -> bool {
        self >= Self::V1_9
    }
}

/// `pkg/container-disk/container-disk.go`: a `volume<name>` container per containerDisk, 10m
/// and 40M for a dedicated-CPU VM (its limits, which are its requests then). Under the
/// ImageVolume gate the image is mounted as an image volume instead, and only an init container
/// of the same name and size remains, which adds nothing to a pod whose containers ask more.
const CONTAINER_DISK: Res = Res { millicores: 10, memory: 40_000_000, ..Res::ZERO };

impl std::str::FromStr for KubevirtRelease {
    type Err = String;

    /// `v1.9`, `1.9` or a patch release such as `v1.9.0`.
    fn from_str(text: &str) -> Result<Self, String> {
        let minor = text.trim_start_matches('v').split('.').take(2).collect::<Vec<_>>().join(".");
        Self::ALL.into_iter().find(|release| release.as_str()[1..] == minor).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|r| r.as_str()).collect();
            format!("KubeVirt {text} is not a release the planner knows (known: {})", known.join(", "))
        })
    }
}

struct LauncherFigures {
    /// The launcher's processes and the one IO thread.
    processes: u64,
    /// The term for a VM with dedicated CPUs, which every Catalyst VM is.
    dedicated_cpus: u64,
    ratio_scales_dedicated: bool,
    per_vcpu: u64,
    pagetable_divisor: u64,
    /// The requests of the container that serves a containerDisk boot disk, where there is one.
    container_disk: Option<Res>,
}

/// The `guest-console-log` sidecar's requests, equal to its limits for a dedicated-CPU VM
/// (kubevirt v1.9.0 `pkg/virt-controller/services/serialconsolelog.go`): 15m of CPU and 60M
/// of memory. Its millicores are why a host is never planned down to its last core.
pub const CONSOLE_LOG: Res = Res { millicores: 15, memory: 60_000_000, ..Res::ZERO };

/// The launcher-pod model the planner uses: a KubeVirt release's constants, and the KubeVirt
/// CR's settings that change what a launcher pod asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overhead {
    pub kubevirt: KubevirtRelease,
    /// The processes and the IO thread.
    #[serde(serialize_with = "as_quantity")]
    pub fixed: u64,
    /// The dedicated-CPU term.
    #[serde(serialize_with = "as_quantity")]
    pub dedicated_cpus: u64,
    /// Whether the ratio scales the dedicated-CPU term (from v1.6).
    pub ratio_scales_dedicated: bool,
    #[serde(serialize_with = "as_quantity")]
    pub per_vcpu: u64,
    pub pagetable_divisor: u64,
    /// The console-log sidecar's requests; `None` when the KubeVirt CR sets `disableSerialConsoleLog`.
    pub console_log: Option<Res>,
    /// What serving a containerDisk boot disk adds, in releases where it takes a container.
    pub container_disk: Option<Res>,
    /// `additionalGuestMemoryOverheadRatio` in thousandths (1000 = 1.0, no extra).
    pub ratio_thousandths: u64,
    /// The `AlignCPUs` feature gate: a VM with an even vCPU count gets two emulator-thread cores.
    pub align_cpus: bool,
}

fn as_quantity<S: Serializer>(bytes: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_bytes(*bytes))
}

impl Default for Overhead {
    fn default() -> Self {
        Self::of_release(KubevirtRelease::NEWEST)
    }
}

impl Overhead {
    /// A release's figures under KubeVirt's defaults: the console-log sidecar runs, no extra
    /// ratio, no `AlignCPUs`.
    pub fn of_release(release: KubevirtRelease) -> Self {
        let figures = release.figures();
        Self {
            kubevirt: release,
            fixed: figures.processes,
            dedicated_cpus: figures.dedicated_cpus,
            ratio_scales_dedicated: figures.ratio_scales_dedicated,
            per_vcpu: figures.per_vcpu,
            pagetable_divisor: figures.pagetable_divisor,
            console_log: Some(CONSOLE_LOG),
            container_disk: figures.container_disk,
            ratio_thousandths: 1000,
            align_cpus: false,
        }
    }

    /// What KubeVirt's `GetMemoryOverhead` gives for a guest of `memory` bytes and `vcpus`
    /// vCPUs. The ratio adds `(ratio - 1) x overhead`, counted in whole kilobytes (the
    /// overhead rounded up to one, the addition truncated), as its `MultiplyMemory` does.
    pub fn launcher(&self, memory: u64, vcpus: u64) -> u64 {
        let mut base = self.fixed + self.per_vcpu * vcpus.max(1) + memory.div_ceil(self.pagetable_divisor.max(1));
        if self.ratio_scales_dedicated {
            base += self.dedicated_cpus;
        }
        let kilobytes = u128::from(base.div_ceil(1000));
        let addition = kilobytes * u128::from(self.ratio_thousandths.saturating_sub(1000)) / 1000 * 1000;
        let scaled = base.saturating_add(u64::try_from(addition).unwrap_or(u64::MAX));
        if self.ratio_scales_dedicated { scaled } else { scaled + self.dedicated_cpus }
    }

    /// The cores a VM's launcher pod pins: its vCPUs, and its emulator thread's when isolated
    /// (`renderresources.go`, `WithCPUPinning`): one, or two under `AlignCPUs` when the vCPU
    /// count is even, so the emulator threads complete the pod to whole physical cores.
    pub fn pinned_cores(&self, vcpus: u64, isolate_emulator_thread: bool) -> u64 {
        let emulator = match (isolate_emulator_thread, self.align_cpus && vcpus.is_multiple_of(2)) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        };
        vcpus + emulator
    }

    /// Everything the launcher pod asks beyond the guest's cores and memory.
    pub fn of_vm(&self, memory: u64, vcpus: u64, container_disk: bool) -> Res {
        let disk = if container_disk { self.container_disk.unwrap_or(Res::ZERO) } else { Res::ZERO };
        Res::millicores(0, self.launcher(memory, vcpus)) + self.console_log.unwrap_or(Res::ZERO) + disk
    }
}

/// `additionalGuestMemoryOverheadRatio` as KubeVirt accepts it, in thousandths.
pub fn parse_ratio(text: &str) -> Result<u64, String> {
    let refused =
        || format!("additionalGuestMemoryOverheadRatio {text:?}: expected a number of at least 1.0, such as 1.5");
    let thousandths = crate::quantity::parse_millicores(text).map_err(|_| refused())?;
    if thousandths < 1000 || text.contains(|c: char| c.is_ascii_alphabetic()) {
        return Err(refused());
    }
    Ok(thousandths)
}

/// The KubeVirt CR's settings the planner follows, as flags of `kubectl catalyst plan` and the
/// operator (the same names, so one can be read off the other).
#[cfg(feature = "cli")]
#[derive(Debug, Clone, clap::Args)]
pub struct KubevirtArgs {
    /// The KubeVirt release whose launcher-pod overhead the plan follows.
    #[arg(long, env = "CATALYST_KUBEVIRT_VERSION", default_value = KubevirtRelease::NEWEST.as_str())]
    pub kubevirt_version: KubevirtRelease,
    /// The KubeVirt CR sets `spec.configuration.virtualMachineOptions.disableSerialConsoleLog`:
    /// launcher pods have no guest-console-log sidecar (15m CPU, 60M memory).
    #[arg(long, env = "CATALYST_DISABLE_SERIAL_CONSOLE_LOG")]
    pub disable_serial_console_log: bool,
    /// The KubeVirt CR's `additionalGuestMemoryOverheadRatio`: the launcher's memory overhead
    /// is multiplied by it.
    #[arg(long, env = "CATALYST_ADDITIONAL_GUEST_MEMORY_OVERHEAD_RATIO", default_value = "1.0", value_parser = parse_ratio)]
    pub additional_guest_memory_overhead_ratio: u64,
    /// KubeVirt's `AlignCPUs` feature gate is on and the KubeVirt CR carries the annotation
    /// `alpha.kubevirt.io/EmulatorThreadCompleteToEvenParity`: a VM with an even vCPU count
    /// isolates its emulator thread on two cores. KubeVirt copies the annotation onto each VMI
    /// only with both (`pkg/virt-api/webhooks/mutating-webhook/mutators/vmi-mutator.go`).
    #[arg(long, env = "CATALYST_ALIGN_CPUS")]
    pub align_cpus: bool,
    /// KubeVirt's `ImageVolume` feature gate (v1.6 on): `true` or `false` as the KubeVirt CR
    /// sets it; unset, the release's default (on from v1.9). Off, each containerDisk is served
    /// by a container of 10m and 40M in the launcher pod.
    #[arg(long, env = "CATALYST_IMAGE_VOLUME")]
    pub image_volume: Option<bool>,
}

#[cfg(feature = "cli")]
impl From<&KubevirtArgs> for Overhead {
    fn from(args: &KubevirtArgs) -> Self {
        Self {
            console_log: (!args.disable_serial_console_log).then_some(CONSOLE_LOG),
            ratio_thousandths: args.additional_guest_memory_overhead_ratio,
            align_cpus: args.align_cpus,
            container_disk: {
                let release = args.kubevirt_version;
                let mounted =
                    release.has_image_volume_gate() && args.image_volume.unwrap_or(release.image_volume_by_default());
                (!mounted).then_some(CONTAINER_DISK)
            },
            ..Self::of_release(args.kubevirt_version)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1 << 20;

    /// KubeVirt v1.9.0's `GetMemoryOverhead` for a 96-vCPU, 512Gi VM with dedicated CPUs and no
    /// graphics device: 1024Mi of page tables + 220Mi of processes + 8Mi IO thread + 768Mi for
    /// the vCPUs + 100Mi for dedicated CPUs = 2,120Mi; the console-log sidecar adds 15m and 60M.
    #[test]
    fn the_launcher_overhead_is_kubevirts() {
        let overhead = Overhead::default();
        assert_eq!(overhead.kubevirt, KubevirtRelease::V1_9);
        assert_eq!(overhead.launcher(512 << 30, 96), 2120 * MI);
        assert_eq!(overhead.of_vm(512 << 30, 96, false), Res::millicores(15, 2120 * MI + 60_000_000));
        // v1.4.0 counted virtlogd at 20Mi and virtqemud at 35Mi.
        assert_eq!(Overhead::of_release(KubevirtRelease::V1_4).launcher(512 << 30, 96), 2110 * MI);
        let without_sidecar = Overhead { console_log: None, ..Overhead::default() };
        assert_eq!(without_sidecar.of_vm(512 << 30, 96, false), Res::millicores(0, 2120 * MI));
    }

    /// `MultiplyMemory` adds `(ratio - 1) x overhead` in whole kilobytes; from v1.6.0 the
    /// dedicated-CPU term is inside what is multiplied, before it was added afterwards.
    #[test]
    fn the_ratio_scales_the_overhead_as_kubevirt_does() {
        let v1_9 = Overhead { ratio_thousandths: 1500, ..Overhead::default() };
        // 2,120Mi = 2,222,981,120 bytes: 2,222,982 kB, half of it 1,111,491 kB.
        assert_eq!(v1_9.launcher(512 << 30, 96), 2_222_981_120 + 1_111_491_000);
        let v1_5 = Overhead { ratio_thousandths: 1500, ..Overhead::of_release(KubevirtRelease::V1_5) };
        // 2,020Mi scaled (2,118,124 kB, half 1,059,062 kB), then the 100Mi.
        assert_eq!(v1_5.launcher(512 << 30, 96), 2_118_123_520 + 1_059_062_000 + 100 * MI);
        assert_eq!(parse_ratio("1.5"), Ok(1500));
        assert_eq!(parse_ratio("1"), Ok(1000));
        for refused in ["0.9", "abc", "1.5Gi", "-2", ""] {
            assert!(parse_ratio(refused).is_err(), "{refused:?}");
        }
    }

    /// `WithCPUPinning`: one emulator-thread core, two under `AlignCPUs` for an even vCPU count.
    #[test]
    fn align_cpus_completes_even_vms_to_whole_cores() {
        let aligned = Overhead { align_cpus: true, ..Overhead::default() };
        assert_eq!(aligned.pinned_cores(96, true), 98);
        assert_eq!(aligned.pinned_cores(95, true), 96);
        assert_eq!(aligned.pinned_cores(96, false), 96);
        assert_eq!(Overhead::default().pinned_cores(96, true), 97);
    }

    /// Up to v1.8 a containerDisk is served by a `volume<name>` container (10m, 40M for a
    /// dedicated-CPU VM); from v1.9 the ImageVolume gate mounts it instead.
    #[test]
    fn a_container_disk_costs_a_container_until_image_volumes() {
        let v1_8 = Overhead::of_release(KubevirtRelease::V1_8);
        let extra = v1_8.of_vm(4 << 30, 2, true) - v1_8.of_vm(4 << 30, 2, false);
        assert_eq!(extra, Res::millicores(10, 40_000_000));
        let v1_9 = Overhead::default();
        assert_eq!(v1_9.of_vm(4 << 30, 2, true), v1_9.of_vm(4 << 30, 2, false));
    }

    /// The gate as the KubeVirt CR sets it: on by default from v1.9 (Beta gates on), off by
    /// default in v1.7 and v1.8 (Beta, off unless listed), absent before v1.6.
    #[cfg(feature = "cli")]
    #[test]
    fn the_image_volume_gate_decides_whether_a_container_disk_costs_a_container() {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            kubevirt: KubevirtArgs,
        }
        let container = |args: &[&str]| {
            let flags = Flags::try_parse_from(std::iter::once("plan").chain(args.iter().copied())).unwrap();
            Overhead::from(&flags.kubevirt).container_disk.is_some()
        };
        assert!(!container(&[]), "v1.9: image volumes");
        assert!(container(&["--image-volume=false"]), "v1.9 with the gate disabled");
        assert!(container(&["--kubevirt-version=v1.8"]));
        assert!(!container(&["--kubevirt-version=v1.8", "--image-volume=true"]));
        assert!(container(&["--kubevirt-version=v1.5", "--image-volume=true"]), "no such gate before v1.6");
    }

    #[test]
    fn releases_are_named_as_kubevirt_tags_them() {
        assert_eq!("v1.9.0".parse(), Ok(KubevirtRelease::V1_9));
        assert_eq!("1.7".parse(), Ok(KubevirtRelease::V1_7));
        let refused = "v2.0".parse::<KubevirtRelease>().unwrap_err();
        assert!(refused.contains("v1.4, v1.5, v1.6, v1.7, v1.8, v1.9"), "{refused}");
    }
}
