//! Desired state: what the operator creates for each CatalystVM and ServiceGroup, as pure,
//! deterministic functions of the objects. The reconcilers and `kubectl catalyst render` both
//! call these, so a reviewer sees in a pull request exactly what a merge will do.

mod node;
pub mod token;

pub use node::{
    DISCOVERY_TIMEOUT, JOIN_KEYS, JOIN_SCRIPT, JoinCredentials, NODE_IP_SCRIPT, REDACTED, cloud_init_user_data,
    install_script, topology_manager_policy,
};

use crate::planner::model::guest_threads;
use crate::validation::node_name;
use catalyst_api::kubevirt::{
    ClaimRef, CloudInitNoCloud, ContainerDisk, Cpu, DataVolumeRef, DataVolumeSource, DataVolumeSpec,
    DataVolumeTemplate, Devices, Disk, DiskTarget, Domain, Empty, Hugepages, InstanceSpec, InstanceTemplate, Interface,
    Memory, MultusNetwork, Network, Numa, Resources, StorageResources, StorageSpec, TemplateMeta, UrlSource,
    VirtualMachine, VirtualMachineInstanceMigration, VirtualMachineInstanceMigrationSpec, VirtualMachineSpec, Volume,
};
use catalyst_api::vm::{RunStrategy, VmNetwork};
use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetOrdinals, StatefulSetSpec};
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::api::core::v1::{
    Container, LocalObjectReference, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec,
    Secret, Service, ServicePort, ServiceSpec, Toleration, Volume as PodVolume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// The one field manager every write of the operator uses.
pub const FIELD_MANAGER: &str = "catalyst-operator";

/// Labels and taints Catalyst sets and selects on.
pub mod labels {
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGER: &str = "catalyst";
    /// On a VM's node, its VirtualMachine and launcher pod: `name.namespace` of the CatalystVM, as its node is named.
    pub const VM: &str = "catalyst.io/vm";
    /// On a ServiceGroup's StatefulSet, Service and pods: the group's name.
    pub const SERVICE_GROUP: &str = "catalyst.io/service-group";
    /// On a VM's node, set by the operator once it has matched the node to the VM's
    /// VirtualMachineInstance ([`crate::node_identity`]); no kubelet may set a
    /// `node-restriction.kubernetes.io/` label, so ServiceGroups select on this one.
    pub const VERIFIED_VM: &str = "catalyst.io.node-restriction.kubernetes.io/vm";
    /// On a bootstrap token the operator minted: the node name (`name.namespace`) of the VM it
    /// is for.
    pub const JOIN_TOKEN_OF: &str = "catalyst.io/join-token-of";
    /// Taint on a VM's node, so only the workloads pinned to that VM run there.
    pub const DEDICATED_TAINT: &str = "catalyst.io/dedicated";
}

/// The controller owner reference to `owner`, when it exists in the API server (has a uid).
pub fn owner_reference<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    owner.controller_owner_ref(&())
}

fn managed_labels(extra: impl IntoIterator<Item = (&'static str, String)>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([(labels::MANAGED_BY.to_string(), labels::MANAGER.to_string())]);
    labels.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
    labels
}

fn meta(
    name: String,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    owner: Option<OwnerReference>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace,
        labels: Some(labels),
        owner_references: owner.map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Name of the VM's cloud-init Secret.
pub fn cloud_init_secret_name(vm: &CatalystVM) -> String {
    format!("{}-cloud-init", vm.name_any())
}

const BOOT_DISK: &str = "boot";
const CLOUD_INIT_DISK: &str = "cloudinit";
const NETWORK: &str = "default";

/// Where a VM runs, as rendering needs it: its host's node, and the host's threads per core.
#[derive(Debug, Clone, Copy)]
pub struct OnHost<'a> {
    pub node_name: &'a str,
    pub threads_per_core: u64,
}

impl<'a> OnHost<'a> {
    pub fn of(host: &'a CatalystHost) -> Self {
        Self { node_name: &host.spec.node_name, threads_per_core: host.spec.threads() }
    }

    /// A host without SMT.
    pub fn node(node_name: &'a str) -> Self {
        Self { node_name, threads_per_core: 1 }
    }

    /// The threads per core a VM of `spec` sees here ([`guest_threads`]).
    pub fn guest_threads(&self, spec: &catalyst_api::CatalystVMSpec) -> u64 {
        guest_threads(spec.cpu.into(), self.threads_per_core)
    }
}

/// The KubeVirt VirtualMachine for a CatalystVM placed on `host`: dedicated cores (and an
/// isolated emulator thread), requests == limits so the launcher pod is Guaranteed, hugepages
/// and NUMA passthrough as asked, pinned to the host's node, booting from the asked disk with
/// cloud-init from the VM's Secret. On a host with SMT the guest sees its vCPUs as pairs (or
/// more) of threads, as KubeVirt pins them to whole physical cores, so the guest kubelet's
/// exclusive cores are physical cores too.
pub fn virtual_machine(vm: &CatalystVM, host: OnHost) -> VirtualMachine {
    let threads = host.guest_threads(&vm.spec);
    let spec = &vm.spec;
    let name = vm.name_any();
    let memory = spec.memory.clone();
    let cpu = Quantity(spec.cpu.to_string());
    let resources = BTreeMap::from([("cpu".to_string(), cpu), ("memory".to_string(), memory.clone())]);
    let disk = &spec.boot_disk;
    let boot_volume_name = format!("{name}-boot");
    let boot_source = Volume {
        name: BOOT_DISK.into(),
        container_disk: disk.container_disk.as_ref().map(|c| ContainerDisk { image: c.image.clone() }),
        data_volume: disk.data_volume.as_ref().map(|_| DataVolumeRef { name: boot_volume_name.clone() }),
        persistent_volume_claim: disk
            .persistent_volume_claim
            .as_ref()
            .map(|p| ClaimRef { claim_name: p.claim_name.clone() }),
        cloud_init_no_cloud: None,
    };
    let data_volume_templates = disk
        .data_volume
        .iter()
        .map(|dv| {
            let source = match dv.image_url.strip_prefix("docker://") {
                Some(_) => DataVolumeSource { registry: Some(UrlSource { url: dv.image_url.clone() }), http: None },
                None => DataVolumeSource { http: Some(UrlSource { url: dv.image_url.clone() }), registry: None },
            };
            DataVolumeTemplate {
                metadata: ObjectMeta { name: Some(boot_volume_name.clone()), ..ObjectMeta::default() },
                spec: DataVolumeSpec {
                    source,
                    storage: StorageSpec {
                        storage_class_name: Some(dv.storage_class_name.clone()),
                        access_modes: dv.access_mode.iter().map(|mode| mode.as_str().to_string()).collect(),
                        resources: StorageResources { requests: BTreeMap::from([("storage".into(), dv.size.clone())]) },
                    },
                },
            }
        })
        .collect();
    let vm_label = node_name(vm);
    VirtualMachine {
        metadata: meta(
            name.clone(),
            vm.namespace(),
            managed_labels([(labels::VM, vm_label.clone())]),
            owner_reference(vm),
        ),
        spec: VirtualMachineSpec {
            run_strategy: Some(run_strategy(spec.run_strategy).into()),
            data_volume_templates,
            template: InstanceTemplate {
                metadata: Some(TemplateMeta { labels: managed_labels([(labels::VM, vm_label)]) }),
                spec: InstanceSpec {
                    domain: Domain {
                        cpu: Some(Cpu {
                            cores: Some(spec.cpu / threads as u32),
                            sockets: Some(1),
                            threads: Some(threads as u32),
                            dedicated_cpu_placement: Some(true),
                            isolate_emulator_thread: Some(spec.isolate_emulator_thread),
                            numa: spec.numa_passthrough.then_some(Numa { guest_mapping_passthrough: Some(Empty {}) }),
                        }),
                        memory: Some(Memory {
                            guest: Some(memory),
                            hugepages: spec.hugepages.map(|size| Hugepages { page_size: size.as_str().to_string() }),
                        }),
                        resources: Some(Resources { requests: resources.clone(), limits: resources }),
                        devices: Devices {
                            autoattach_graphics_device: Some(false),
                            disks: vec![
                                Disk { name: BOOT_DISK.into(), disk: Some(virtio()), boot_order: Some(1) },
                                Disk { name: CLOUD_INIT_DISK.into(), disk: Some(virtio()), boot_order: None },
                            ],
                            interfaces: vec![Interface { name: NETWORK.into(), bridge: Some(Empty {}) }],
                        },
                    },
                    node_selector: BTreeMap::from([("kubernetes.io/hostname".to_string(), host.node_name.to_string())]),
                    networks: vec![network(&spec.network)],
                    volumes: vec![
                        boot_source,
                        Volume {
                            name: CLOUD_INIT_DISK.into(),
                            cloud_init_no_cloud: Some(CloudInitNoCloud {
                                secret_ref: Some(LocalObjectReference { name: cloud_init_secret_name(vm) }),
                            }),
                            ..Volume::default()
                        },
                    ],
                    termination_grace_period_seconds: Some(180),
                    eviction_strategy: Some(eviction_strategy(spec).into()),
                },
            },
        },
        status: None,
    }
}

/// Issue 22: `LiveMigrate` where the VM moves by live migration and nothing in its spec keeps
/// KubeVirt from migrating it, `None` otherwise, never the cluster-wide default it would inherit.
/// A node drain (`kubectl drain`) of its host then waits on the VM (KubeVirt's eviction webhook
/// answers 429 and asks for a migration, which its host's node selector keeps from succeeding)
/// until `kubectl catalyst drain` has moved it, rather than stopping it; a VM that cannot
/// migrate is evicted, and, its selector still naming its host, stays down until it moves.
fn eviction_strategy(spec: &catalyst_api::CatalystVMSpec) -> &'static str {
    use crate::planner::model::{Moves, migration_blocker};
    match (Moves::of(spec), migration_blocker(spec)) {
        (Moves::LiveMigrate, None) => "LiveMigrate",
        _ => "None",
    }
}

/// The name of the live migration a move of `vm` creates.
pub fn migration_name(vm: &CatalystVM) -> String {
    format!("{}-catalyst-move", vm.name_any())
}

/// The live migration of a VM's instance that a move makes (issue 22). It names no target:
/// KubeVirt schedules the target pod by the instance's node selector, which by then names the
/// new host (`createTargetPod`, kubevirt v1.9.0 `pkg/virt-controller/watch/migration/migration.go`).
/// Owned by the CatalystVM, so it goes with it.
pub fn migration(vm: &CatalystVM) -> VirtualMachineInstanceMigration {
    VirtualMachineInstanceMigration {
        metadata: meta(
            migration_name(vm),
            vm.namespace(),
            managed_labels([(labels::VM, node_name(vm))]),
            owner_reference(vm),
        ),
        spec: VirtualMachineInstanceMigrationSpec { vmi_name: vm.name_any() },
        status: None,
    }
}

/// The pod network, or the Multus network that replaces it; both bridged (see [`VmNetwork`]).
fn network(network: &VmNetwork) -> Network {
    match &network.multus_network_name {
        Some(name) => Network {
            name: NETWORK.into(),
            multus: Some(MultusNetwork { network_name: name.clone(), default: true }),
            ..Network::default()
        },
        None => Network { name: NETWORK.into(), pod: Some(Empty {}), ..Network::default() },
    }
}

fn virtio() -> DiskTarget {
    DiskTarget { bus: Some("virtio".into()) }
}

fn run_strategy(strategy: RunStrategy) -> &'static str {
    match strategy {
        RunStrategy::Always => "Always",
        RunStrategy::RerunOnFailure => "RerunOnFailure",
        RunStrategy::Manual => "Manual",
        RunStrategy::Halted => "Halted",
        RunStrategy::Once => "Once",
    }
}

fn to_yaml(value: &serde_json::Value) -> String {
    crate::yaml::to_string(value).expect("JSON values always serialize to YAML")
}

/// The Secret KubeVirt reads the VM's cloud-init user data from.
pub fn cloud_init_secret(vm: &CatalystVM, host: OnHost, join: Option<&JoinCredentials>) -> Secret {
    Secret {
        metadata: meta(
            cloud_init_secret_name(vm),
            vm.namespace(),
            managed_labels([(labels::VM, node_name(vm))]),
            owner_reference(vm),
        ),
        type_: Some("Opaque".into()),
        data: Some(cloud_init_data(vm, host, join)),
        ..Secret::default()
    }
}

/// `userdata`, and the VM's own join token where the operator minted one.
fn cloud_init_data(vm: &CatalystVM, host: OnHost, join: Option<&JoinCredentials>) -> BTreeMap<String, ByteString> {
    let userdata = ByteString(cloud_init_user_data(vm, host, join).into_bytes());
    let mut data = BTreeMap::from([("userdata".to_string(), userdata)]);
    if let Some(join) = join.filter(|j| j.minted) {
        data.insert(token::CLOUD_INIT_TOKEN_KEY.into(), ByteString(join.token.clone().into_bytes()));
    }
    data
}

fn group_labels(group: &ServiceGroup) -> BTreeMap<String, String> {
    managed_labels([(labels::SERVICE_GROUP, group.name_any())])
}

/// The StatefulSet of a ServiceGroup: replicas named `<group>-1` ... `<group>-N`, started in
/// parallel (independent processors: one failing replica holds back no other), pinned to the
/// VM's node by label and toleration, with requests == limits in whole cores (Guaranteed QoS,
/// so the static CPU manager gives each replica exclusive cores).
pub fn stateful_set(group: &ServiceGroup, vm: &CatalystVM) -> StatefulSet {
    let spec = &group.spec;
    let template = &spec.template;
    let name = group.name_any();
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(spec.cpu.to_string())),
        ("memory".to_string(), spec.memory.clone()),
    ]);
    let mut mounts: Vec<VolumeMount> = template.volume_mounts.clone();
    mounts.extend(template.storage.iter().map(|s| VolumeMount {
        name: s.name.clone(),
        mount_path: s.mount_path.clone(),
        ..VolumeMount::default()
    }));
    let volumes: Vec<PodVolume> = template
        .volumes
        .iter()
        .map(|v| PodVolume {
            name: v.name.clone(),
            config_map: v.config_map.clone(),
            secret: v.secret.clone(),
            empty_dir: v.empty_dir.clone(),
            persistent_volume_claim: v.persistent_volume_claim.clone(),
            ..PodVolume::default()
        })
        .collect();
    let claims: Vec<PersistentVolumeClaim> = template
        .storage
        .iter()
        .map(|s| PersistentVolumeClaim {
            metadata: ObjectMeta { name: Some(s.name.clone()), ..ObjectMeta::default() },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: s.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".into(), s.size.clone())])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        })
        .collect();
    let mut pod_labels = template.labels.clone();
    pod_labels.extend(group_labels(group));
    let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    StatefulSet {
        metadata: meta(name.clone(), group.namespace(), group_labels(group), owner_reference(group)),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            ordinals: Some(StatefulSetOrdinals { start: Some(1) }),
            pod_management_policy: Some("Parallel".into()),
            service_name: Some(name.clone()),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(labels::SERVICE_GROUP.to_string(), name.clone())])),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    // The label the operator sets once the node is verified, never the kubelet's own.
                    node_selector: Some(BTreeMap::from([(labels::VERIFIED_VM.to_string(), node_name(vm))])),
                    tolerations: Some(vec![Toleration {
                        key: Some(labels::DEDICATED_TAINT.into()),
                        operator: Some("Equal".into()),
                        value: Some(vm.name_any()),
                        effect: Some("NoSchedule".into()),
                        ..Toleration::default()
                    }]),
                    containers: vec![Container {
                        name: name.clone(),
                        image: Some(template.image.clone()),
                        image_pull_policy: template.image_pull_policy.clone(),
                        command: non_empty(template.command.clone()),
                        args: non_empty(template.args.clone()),
                        env: (!template.env.is_empty()).then(|| template.env.clone()),
                        ports: (!template.ports.is_empty()).then(|| template.ports.clone()),
                        readiness_probe: template.readiness_probe.clone(),
                        liveness_probe: template.liveness_probe.clone(),
                        startup_probe: template.startup_probe.clone(),
                        volume_mounts: (!mounts.is_empty()).then_some(mounts),
                        resources: Some(ResourceRequirements {
                            requests: Some(resources.clone()),
                            limits: Some(resources),
                            ..ResourceRequirements::default()
                        }),
                        ..Container::default()
                    }],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: (!claims.is_empty()).then_some(claims),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

/// The headless Service a StatefulSet requires: stable DNS names `<group>-N.<group>`.
pub fn headless_service(group: &ServiceGroup) -> Service {
    let name = group.name_any();
    let ports: Vec<ServicePort> = group
        .spec
        .template
        .ports
        .iter()
        .map(|p| ServicePort {
            name: p.name.clone(),
            port: p.container_port,
            protocol: p.protocol.clone(),
            ..ServicePort::default()
        })
        .collect();
    Service {
        metadata: meta(name.clone(), group.namespace(), group_labels(group), owner_reference(group)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(BTreeMap::from([(labels::SERVICE_GROUP.to_string(), name)])),
            ports: (!ports.is_empty()).then_some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The offline side: everything the operator would create for a set of manifests, in plan order.
pub mod offline {
    use super::*;
    use crate::key::ObjectKey;
    use crate::manifest::Manifests;
    use crate::planner::Plan;

    pub struct Rendered {
        /// VirtualMachine and its cloud-init Secret per placed VM in plan order, then a
        /// Service and StatefulSet per group that fits.
        pub objects: Vec<serde_json::Value>,
        /// What is left out, and why.
        pub skipped: Vec<String>,
    }

    pub fn render_plan(manifests: &Manifests, plan: &Plan) -> Rendered {
        let vms: BTreeMap<ObjectKey, &CatalystVM> = manifests.vms.iter().map(|vm| (ObjectKey::of(vm), vm)).collect();
        let hosts: BTreeMap<&str, OnHost> =
            manifests.hosts.iter().map(|h| (h.metadata.name.as_deref().unwrap_or_default(), OnHost::of(h))).collect();
        let mut objects = Vec::new();
        let mut skipped = Vec::new();
        for placement in &plan.vms {
            let vm = vms[&placement.vm];
            match placement.host.as_deref().and_then(|h| hosts.get(h)) {
                Some(&host) => {
                    objects.push(serde_json::to_value(virtual_machine(vm, host)).expect("serializable"));
                    let join = vm.spec.node.join_secret_name.as_ref().map(|_| JoinCredentials::redacted());
                    objects.push(redacted(cloud_init_secret(vm, host, join.as_ref())));
                }
                None => skipped
                    .push(format!("CatalystVM {}: no host can take it (see `kubectl catalyst plan`)", placement.vm)),
            }
        }
        for group_plan in &plan.groups {
            let group = manifests.groups.iter().find(|g| ObjectKey::of(*g) == group_plan.group);
            match (group, vms.get(&group_plan.vm)) {
                (Some(group), Some(vm)) if group_plan.fits => {
                    objects.push(serde_json::to_value(headless_service(group)).expect("serializable"));
                    objects.push(serde_json::to_value(stateful_set(group, vm)).expect("serializable"));
                }
                _ => skipped.push(format!(
                    "ServiceGroup {}: does not fit its VM (see `kubectl catalyst plan`)",
                    group_plan.group
                )),
            }
        }
        Rendered { objects, skipped }
    }

    /// A Secret as a reviewer reads it: `stringData` instead of base64 `data`.
    fn redacted(secret: Secret) -> serde_json::Value {
        let mut value = serde_json::to_value(&secret).expect("serializable");
        let text: BTreeMap<String, String> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect();
        let object = value.as_object_mut().expect("a Secret is an object");
        object.remove("data");
        object.insert("stringData".into(), serde_json::to_value(text).expect("serializable"));
        value
    }
}
