//! The planner's view of the API objects: plain numbers, resolved defaults, interned names.

pub use super::kubelet::{HostCells, Launcher};
use super::overhead::Overhead;
use super::res::Res;
use crate::key::ObjectKey;
use crate::quantity::{parse_bytes, parse_millicores};
use catalyst_api::vm::{HugepageSize, MoveStrategy};
use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use kube::ResourceExt;
use std::collections::BTreeMap;

/// A host as the planner sees it.
#[derive(Debug, Clone)]
pub struct HostModel {
    pub name: String,
    pub node_name: String,
    pub failure_domain: String,
    pub schedulable: bool,
    pub labels: BTreeMap<String, String>,
    /// capacity - reserved, with the hugepage pools apart from ordinary memory.
    pub allocatable: Res,
    /// Hardware threads per physical core: a launcher's pinned CPUs must be a multiple of it.
    pub threads_per_core: u64,
    /// Its NUMA cells and how its kubelet places launchers on them, when it declares cells.
    pub numa: Option<HostCells>,
}

impl HostModel {
    /// Whether `cpus` pinned CPUs make whole physical cores here, as the host kubelet's
    /// `full-pcpus-only` demands (`SMTAlignmentError` otherwise).
    pub fn takes_whole_cores(&self, cpus: u64) -> bool {
        cpus.is_multiple_of(self.threads_per_core.max(1))
    }

    /// Whether `vm` runs here on whole physical cores, on the host and in its guest: its launcher
    /// pins whole cores, and its vCPUs make whole guest cores of this host's threads. A guest of
    /// 15 single-thread cores on pairs of sibling threads would let its kubelet give two halves of
    /// one physical core to two replicas as if each were exclusive.
    pub fn whole_cores_for(&self, vm: &VmModel) -> bool {
        self.takes_whole_cores(vm.pinned_cpus) && self.takes_whole_cores(vm.vcpus)
    }

    /// Reads a validated host. The hugepage pools leave ordinary memory, as the kubelet takes
    /// pre-allocated hugepages out of allocatable memory.
    pub fn from_host(host: &CatalystHost) -> Self {
        let spec = &host.spec;
        let pools = &spec.hugepages;
        let capacity = Res::cores(spec.capacity.cpu.into(), bytes(&spec.capacity.memory.0));
        let reserved = Res::cores(spec.reserved.cpu.into(), bytes(&spec.reserved.memory.0));
        let mut allocatable = capacity - reserved - Res::millicores(0, pools.bytes());
        allocatable.hugepages_1gi = u64::from(pools.pages_1gi) << 30;
        allocatable.hugepages_2mi = u64::from(pools.pages_2mi) << 21;
        Self {
            name: host.name_any(),
            node_name: spec.node_name.clone(),
            failure_domain: spec.failure_domain.clone().unwrap_or_else(|| host.name_any()),
            // A host in maintenance is drained: it takes no new VMs.
            schedulable: spec.schedulable && !spec.maintenance,
            labels: host.labels().clone(),
            allocatable,
            threads_per_core: spec.threads(),
            numa: (!spec.numa.is_empty()).then(|| HostCells::from_spec(spec)),
        }
    }
}

/// A VM as the planner sees it.
#[derive(Debug, Clone)]
pub struct VmModel {
    pub key: ObjectKey,
    /// What the VM takes from its host: cores (plus the emulator thread's) and memory plus overhead.
    pub demand: Res,
    /// The CPUs its launcher's compute container pins: vCPUs and emulator-thread cores.
    pub pinned_cpus: u64,
    pub vcpus: u64,
    /// `node.reservedCpu`, which a guest with SMT rounds up to whole cores.
    pub reserved_cpu: u64,
    /// The host the user pinned it to.
    pub pinned: Option<String>,
    /// The host its status names: it runs there and is never moved.
    pub placed: Option<String>,
    pub spread_group: Option<ObjectKey>,
    pub host_selector: BTreeMap<String, String>,
    /// NUMA passthrough: KubeVirt binds its guest memory to the cells its vCPUs land on.
    pub passthrough: bool,
    /// Its guest memory in hugepages, where it has them: the size and the count of pages.
    pub hugepages: Option<(HugepageSize, u64)>,
    /// What the VM offers ServiceGroups on a host without SMT ([`offered_to_groups`]).
    pub for_groups: Res,
    /// Whether it joins the cluster as a node (`spec.node.joinSecretName` is set): a VM that
    /// does not never takes a replica, whatever room it has.
    pub joins: bool,
    /// How it leaves a drained or fenced host ([`Moves::of`]).
    pub moves: Moves,
    /// Why KubeVirt cannot live-migrate it, as far as its spec tells.
    pub migration_blocker: Option<String>,
}

/// How a VM leaves a host it must leave: `spec.moveStrategy`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Moves {
    LiveMigrate,
    Restart,
    Never,
}

impl Moves {
    /// `spec.moveStrategy`; unset, live migration where nothing in the spec blocks it, a restart
    /// otherwise.
    pub fn of(spec: &catalyst_api::CatalystVMSpec) -> Self {
        match spec.move_strategy {
            Some(MoveStrategy::LiveMigrate) => Moves::LiveMigrate,
            Some(MoveStrategy::Restart) => Moves::Restart,
            Some(MoveStrategy::None) => Moves::Never,
            None if migration_blocker(spec).is_some() => Moves::Restart,
            None => Moves::LiveMigrate,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Moves::LiveMigrate => "LiveMigrate",
            Moves::Restart => "Restart",
            Moves::Never => "None",
        }
    }
}

/// What in a VM's spec keeps KubeVirt from live-migrating it, if anything (kubevirt v1.9.0,
/// `pkg/virt-handler/vm.go`, `calculateLiveMigrationCondition`): a bridge on the pod network
/// (`pkg/network/vmispec/interface.go`, `VerifyVMIMigratable`: the guest would keep an address
/// the target pod does not have), or a boot volume that is not ReadWriteMany (a DataVolume not
/// asked as one; an existing claim, whose mode Catalyst cannot see, unless `moveStrategy:
/// LiveMigrate` says it is). A containerDisk migrates: the target pulls the same image.
pub fn migration_blocker(spec: &catalyst_api::CatalystVMSpec) -> Option<String> {
    let disk = &spec.boot_disk;
    if spec.network.is_pod_network() {
        return Some(
            "its interface is bridged on the pod network, which KubeVirt cannot live-migrate (VerifyVMIMigratable); \
             name a Multus network in spec.network, or let it restart (moveStrategy Restart)"
                .into(),
        );
    }
    if let Some(volume) = &disk.data_volume
        && volume.access_mode != Some(catalyst_api::vm::AccessMode::ReadWriteMany)
    {
        return Some(
            "its boot DataVolume is not ReadWriteMany, and KubeVirt migrates only shared disks: set \
             bootDisk.dataVolume.accessMode ReadWriteMany (Ceph RBD in block mode gives it), or let it restart"
                .into(),
        );
    }
    if disk.persistent_volume_claim.is_some() && spec.move_strategy != Some(MoveStrategy::LiveMigrate) {
        return Some(
            "its boot disk is an existing claim, which KubeVirt migrates only when it is ReadWriteMany, and Catalyst \
             cannot see its mode: set moveStrategy LiveMigrate if it is"
                .into(),
        );
    }
    None
}

impl VmModel {
    pub fn from_vm(vm: &CatalystVM, overhead: &Overhead) -> Self {
        let spec = &vm.spec;
        let memory = bytes(&spec.memory.0);
        let vcpus = u64::from(spec.cpu);
        let cores = overhead.pinned_cores(vcpus, spec.isolate_emulator_thread);
        Self {
            key: ObjectKey::of(vm),
            demand: Self::demand_of(vm, overhead),
            pinned_cpus: cores,
            pinned: spec.host.clone(),
            placed: vm.status.as_ref().and_then(|s| s.host.clone()),
            spread_group: spread_group(vm),
            host_selector: spec.placement.host_selector.clone(),
            passthrough: spec.numa_passthrough && spec.hugepages.is_some(),
            hugepages: spec.hugepages.map(|size| (size, memory / size.bytes())),
            for_groups: offered_to_groups(spec),
            vcpus,
            reserved_cpu: spec.node.reserved_cpu.into(),
            joins: spec.node.join_secret_name.is_some(),
            moves: Moves::of(spec),
            migration_blocker: migration_blocker(spec),
        }
    }

    /// What the VM takes of its host, without the rest of its model: the reconciles that only
    /// add VMs up (a host's allocation, a resize's check) ask this of every VM on a host.
    pub fn demand_of(vm: &CatalystVM, overhead: &Overhead) -> Res {
        let spec = &vm.spec;
        let memory = bytes(&spec.memory.0);
        let vcpus = u64::from(spec.cpu);
        let cores = overhead.pinned_cores(vcpus, spec.isolate_emulator_thread);
        let container_disk = spec.boot_disk.container_disk.is_some();
        // A hugepage VM's launcher asks `hugepages-<size>` for the guest and ordinary memory
        // only for the overhead (`renderresources.go`, `WithHugePages`).
        let guest = match spec.hugepages {
            Some(size) => Res::hugepages(size, memory),
            None => Res::millicores(0, memory),
        };
        Res::cores(cores, 0) + guest + overhead.of_vm(memory, vcpus, container_disk)
    }

    /// What its launcher pod asks of a host of `host_threads`, as the host's kubelet sees it.
    pub fn launcher(&self, host_threads: u64) -> Launcher {
        Launcher {
            cpus: u32::try_from(self.pinned_cpus).unwrap_or(u32::MAX),
            vcpus: u32::try_from(self.vcpus).unwrap_or(u32::MAX),
            guest_threads: self.guest_threads(host_threads) as u32,
            passthrough: self.passthrough,
            hugepages: self.hugepages,
            memory: self.demand.memory,
        }
    }

    /// The threads per core its guest sees on a host of `host_threads` ([`guest_threads`]).
    pub fn guest_threads(&self, host_threads: u64) -> u64 {
        guest_threads(self.vcpus, host_threads)
    }

    /// What it offers ServiceGroups on a host of `host_threads`: a guest with SMT reserves
    /// whole cores ([`reserved_cpus`]), so it offers less than `for_groups` by the rounding.
    pub fn offer(&self, host_threads: u64) -> Res {
        let rounding = reserved_cpus(self.reserved_cpu, self.guest_threads(host_threads)) - self.reserved_cpu;
        self.for_groups - Res::cores(rounding, 0)
    }
}

/// The key of a VM's spread group: its namespace and `spec.placement.spreadGroup` (groups are
/// per namespace).
pub fn spread_group(vm: &CatalystVM) -> Option<ObjectKey> {
    Some(ObjectKey::beside(vm, vm.spec.placement.spread_group.as_ref()?))
}

/// Memory the guest kernel keeps out of the kubelet's sight: its page structures, 64 bytes
/// for every 4 KiB page, are taken at boot and never counted in MemTotal.
pub const GUEST_MEMMAP_DIVISOR: u64 = 64;

/// The kubelet's hard eviction threshold for memory, as Catalyst renders it into the VM's
/// node: the kubelet's own default (see [`EVICTION_HARD`]).
pub const EVICTION_HARD_MEMORY: u64 = 100 << 20;

/// The kubelet's default hard-eviction thresholds on Linux (kubernetes
/// `pkg/kubelet/eviction/defaults_linux.go`, `DefaultEvictionHard`; `imagefs.inodesFree` since
/// v1.30, "Added imagefs.inodesfree to default EvictionHard settings", kubernetes#121834, so in
/// every release a VM-node may run, v1.31 on). The kubelet applies them only when `evictionHard`
/// is unset: a config that sets one signal sets the others to zero (unless
/// `mergeDefaultEvictionSettings`, v1.33 on and off by default), disk-pressure eviction
/// included. So Catalyst renders all of them.
pub const EVICTION_HARD: [(&str, &str); 5] = [
    ("memory.available", "100Mi"),
    ("nodefs.available", "10%"),
    ("nodefs.inodesFree", "5%"),
    ("imagefs.available", "15%"),
    ("imagefs.inodesFree", "5%"),
];

/// The threads per core the guest sees: its host's, when its vCPUs make whole cores of them,
/// so the guest's exclusive cores are the host's physical cores (two guest "cores" on sibling
/// threads would share one); one otherwise.
pub fn guest_threads(vcpus: u64, host_threads: u64) -> u64 {
    if host_threads > 1 && vcpus.is_multiple_of(host_threads) { host_threads } else { 1 }
}

/// The CPUs the guest kubelet keeps for the system (`reservedSystemCPUs`): `node.reservedCpu`,
/// rounded up to whole guest cores, as `full-pcpus-only` gives replicas only whole cores.
pub fn reserved_cpus(reserved_cpu: u64, guest_threads: u64) -> u64 {
    reserved_cpu.next_multiple_of(guest_threads.max(1))
}

/// What the VM's node offers pods (its allocatable) on a host without SMT: cores less
/// `node.reservedCpu`; memory less the guest kernel's page structures, `node.reservedMemory`
/// and the eviction threshold.
pub fn node_allocatable(spec: &catalyst_api::CatalystVMSpec) -> Res {
    let memory = bytes(&spec.memory.0);
    let kept = memory.div_ceil(GUEST_MEMMAP_DIVISOR) + bytes(&spec.node.reserved_memory.0) + EVICTION_HARD_MEMORY;
    Res::cores(u64::from(spec.cpu), memory) - Res::cores(spec.node.reserved_cpu.into(), kept)
}

/// What the VM's node offers ServiceGroups on a host without SMT: its allocatable less the
/// headroom kept for node-level DaemonSets ([`VmModel::offer`] on any host).
pub fn offered_to_groups(spec: &catalyst_api::CatalystVMSpec) -> Res {
    let headroom = &spec.node.headroom;
    node_allocatable(spec) - Res::millicores(parse_millicores(&headroom.cpu.0).unwrap_or(0), bytes(&headroom.memory.0))
}

/// A ServiceGroup as the planner sees it.
#[derive(Debug, Clone)]
pub struct GroupModel {
    pub key: ObjectKey,
    pub vm: ObjectKey,
    pub replicas: u64,
    /// Cores per replica.
    pub cpu: u64,
    /// replicas x per-replica
    pub demand: Res,
}

impl GroupModel {
    pub fn from_group(group: &ServiceGroup) -> Self {
        let spec = &group.spec;
        let replicas = u64::try_from(spec.replicas).unwrap_or(0);
        Self {
            key: ObjectKey::of(group),
            vm: ObjectKey::beside(group, &spec.vm),
            replicas,
            cpu: spec.cpu.into(),
            demand: Res::cores(replicas * u64::from(spec.cpu), replicas.saturating_mul(bytes(&spec.memory.0))),
        }
    }
}

/// Quantities were validated before planning; an invalid one counts as zero rather than panicking.
fn bytes(quantity: &str) -> u64 {
    parse_bytes(quantity).unwrap_or(0)
}
