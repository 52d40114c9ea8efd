//! How a VM becomes a node only its own workloads use: the cloud-init user data that
//! installs Kubernetes on a stock image when asked, configures the kubelet and joins the
//! cluster from a systemd unit that retries, with the guest's own bridged address as the
//! node's IP.

use super::{OnHost, labels, to_yaml};
use crate::planner::model::{EVICTION_HARD, reserved_cpus};
use crate::release::Release;
use crate::validation::node_name;
use catalyst_api::CatalystVM;
use catalyst_api::vm::{NodeSoftware, PackageRepository, SoftwareSource};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde_json::json;
use std::collections::BTreeMap;

/// The kubeadm join credentials, read from the Secret `spec.node.joinSecretName` names.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinCredentials {
    pub api_server_endpoint: String,
    pub token: String,
    pub ca_cert_hash: String,
    /// The token is the VM's own, minted by the operator ([`super::token`]): the cloud-init
    /// Secret keeps it, so it is found again.
    pub minted: bool,
}

/// Never prints the values, so credentials cannot leak through a log or an error.
impl std::fmt::Debug for JoinCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinCredentials { <redacted> }")
    }
}

/// The keys a join Secret must have.
pub const JOIN_KEYS: [&str; 3] = ["apiServerEndpoint", "token", "caCertHash"];

/// Placeholder for a secret value in offline output.
pub const REDACTED: &str = "<redacted>";

impl JoinCredentials {
    /// Stand-ins for `kubectl catalyst render`, which never reads a Secret.
    pub fn redacted() -> Self {
        Self {
            api_server_endpoint: REDACTED.into(),
            token: REDACTED.into(),
            ca_cert_hash: REDACTED.into(),
            minted: false,
        }
    }

    /// Reads the credentials; the error names the Secret and the missing keys, never a value.
    /// When the operator mints each VM its own token (`mint`), the Secret's token is not read
    /// (nor needed), and the token is left empty for the operator to fill.
    pub fn from_secret(secret: &Secret, mint: bool) -> Result<Self, String> {
        let data = secret.data.clone().unwrap_or_default();
        let read =
            |key: &str| data.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok()).map(|v| v.trim().to_string());
        let missing: Vec<&str> = JOIN_KEYS
            .into_iter()
            .filter(|k| !(mint && *k == "token"))
            .filter(|k| read(k).is_none_or(|v| v.is_empty()))
            .collect();
        if !missing.is_empty() {
            return Err(format!("Secret {} lacks the key(s) {}", secret.name_any(), missing.join(", ")));
        }
        Ok(Self {
            api_server_endpoint: read("apiServerEndpoint").unwrap_or_default(),
            token: if mint { String::new() } else { read("token").unwrap_or_default() },
            ca_cert_hash: read("caCertHash").unwrap_or_default(),
            minted: mint,
        })
    }
}

/// The topology manager policy of the VM's kubelet (scope `pod`). A guest without NUMA
/// passthrough has one NUMA node, so `single-numa-node` admits every replica that fits the
/// node. Under passthrough the guest has a NUMA node per host cell its vCPUs land on, and
/// `single-numa-node` would refuse a replica larger than one (`TopologyAffinityError`, kubernetes
/// `pkg/kubelet/cm/topologymanager/policy_single_numa_node.go`), recreated forever by its
/// StatefulSet; `restricted` admits a replica on the fewest NUMA nodes that can hold it (a hint
/// is preferred when no narrower one could satisfy the request) and refuses it only when
/// those are taken.
pub fn topology_manager_policy(spec: &catalyst_api::CatalystVMSpec) -> &'static str {
    if spec.numa_passthrough { "restricted" } else { "single-numa-node" }
}

/// The cloud-init user data that makes the VM a node only its own workloads use: the kubelet
/// with the static CPU manager (its reserved cores first), the topology policy of
/// [`topology_manager_policy`], the VM's reserved memory and eviction thresholds, the
/// `catalyst.io/vm` label and the `catalyst.io/dedicated` taint; then, when there are
/// credentials, the join unit with its scripts ([`join_unit`]). On a host with SMT the guest's
/// reserved CPUs are whole guest cores ([`reserved_cpus`]).
pub fn cloud_init_user_data(vm: &CatalystVM, host: OnHost, join: Option<&JoinCredentials>) -> String {
    let node = &vm.spec.node;
    let node_name = node_name(vm);
    let reserved_cpus = match reserved_cpus(node.reserved_cpu.into(), host.guest_threads(&vm.spec)) {
        0 | 1 => "0".to_string(),
        n => format!("0-{}", n - 1),
    };
    let kubelet = json!({
        "cpuManagerPolicy": "static",
        "cpuManagerPolicyOptions": {"full-pcpus-only": "true"},
        "reservedSystemCPUs": reserved_cpus,
        "topologyManagerPolicy": topology_manager_policy(&vm.spec),
        "topologyManagerScope": "pod",
        "systemReserved": {"memory": node.reserved_memory.0},
        "evictionHard": EVICTION_HARD.iter().map(|(signal, threshold)| (*signal, *threshold)).collect::<BTreeMap<_, _>>(),
    });
    let mut node_labels = vec![format!("{}={}", labels::VM, node_name)];
    node_labels.extend(node.labels.iter().map(|(k, v)| format!("{k}={v}")));
    let mut files = vec![json!({
        "path": format!("{DIR}/patches/kubeletconfiguration+merge.yaml"),
        "permissions": "0644",
        "content": to_yaml(&kubelet),
    })];
    let mut config = json!({"hostname": node_name, "write_files": []});
    if let Some(join) = join {
        files.extend(join_files(vm, &node_name, &node_labels, join));
        // cloud-init's runcmd runs once; the unit retries until the node has joined, and at
        // every boot after checks that it has.
        config["runcmd"] = json!([
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", NODE_IP_UNIT_NAME],
            ["systemctl", "enable", "--now", "--no-block", JOIN_UNIT],
        ]);
    }
    config["write_files"] = json!(files);
    format!("#cloud-config\n{}", to_yaml(&config))
}

/// What the join takes: the kubeadm JoinConfiguration, the node-IP script and its unit, the
/// install script where cloud-init installs the node's software, and the join script and unit.
fn join_files(
    vm: &CatalystVM,
    node_name: &str,
    node_labels: &[String],
    join: &JoinCredentials,
) -> Vec<serde_json::Value> {
    let mut files = Vec::new();
    let join_config = json!({
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": {
            "apiServerEndpoint": join.api_server_endpoint,
            "token": join.token,
            "caCertHashes": [join.ca_cert_hash],
        }},
        "nodeRegistration": {
            "name": node_name,
            "kubeletExtraArgs": [{"name": "node-labels", "value": node_labels.join(",")}],
            "taints": [{"key": labels::DEDICATED_TAINT, "value": vm.name_any(), "effect": "NoSchedule"}],
        },
        "patches": {"directory": format!("{DIR}/patches")},
        // kubeadm's default is 5m, waited out in silence; the unit retries sooner and says why.
        "timeouts": {"discovery": DISCOVERY_TIMEOUT},
    });
    files.push(json!({"path": format!("{DIR}/join.yaml"), "permissions": "0600", "content": to_yaml(&join_config)}));
    files.push(json!({"path": format!("{DIR}/node-ip.sh"), "permissions": "0700", "content": NODE_IP_SCRIPT}));
    files.push(json!({"path": NODE_IP_UNIT_PATH, "permissions": "0644", "content": NODE_IP_UNIT}));
    let install = installed_release(vm);
    if let Some((release, software)) = install {
        let script = install_script(release, software.repository.as_ref(), !vm.spec.network.is_pod_network());
        files.push(json!({"path": format!("{DIR}/install.sh"), "permissions": "0700", "content": script}));
    }
    files.push(json!({"path": format!("{DIR}/join.sh"), "permissions": "0700", "content": JOIN_SCRIPT}));
    files.push(json!({
        "path": JOIN_UNIT_PATH,
        "permissions": "0644",
        "content": join_unit(node_name, install.is_some()),
    }));
    files
}

/// The release cloud-init installs, when the VM's software is `Install` (and valid).
fn installed_release(vm: &CatalystVM) -> Option<(Release, &NodeSoftware)> {
    let software = vm.spec.node.software.as_ref().filter(|s| s.source == SoftwareSource::Install)?;
    Some((Release::parse(&software.kubernetes_version)?, software))
}

/// How long one `kubeadm join` waits for the API server's `cluster-info` signed with its token
/// (`timeouts.discovery` of JoinConfiguration v1beta4, 5m by default:
/// `cmd/kubeadm/app/constants/constants.go`, `DiscoveryTimeout`).
pub const DISCOVERY_TIMEOUT: &str = "1m0s";

/// Where Catalyst's files live in the guest.
const DIR: &str = "/etc/kubernetes/catalyst";

/// The systemd unit that joins the VM to the cluster.
const JOIN_UNIT: &str = "catalyst-join.service";
const JOIN_UNIT_PATH: &str = "/etc/systemd/system/catalyst-join.service";

/// The kubelet's `--node-ip` (a flag, not a KubeletConfiguration field): the IPv4 address the
/// guest reaches the API server from, on its bridged interface, which it took from DHCP. On
/// the pod network that is the launcher pod's address, new at each restart of the VM, so it is
/// found again at every boot, before the kubelet starts, and given to it through
/// `/etc/default/kubelet`'s `KUBELET_EXTRA_ARGS`, which kubeadm's kubelet drop-in reads (and
/// which outranks the flags kubeadm itself writes). `CATALYST_DIR` and `KUBELET_DEFAULTS` only
/// move the files for a test.
pub const NODE_IP_SCRIPT: &str = r#"#!/bin/sh
# The node's IP: the address this guest reaches the API server from.
set -eu
dir="${CATALYST_DIR:-/etc/kubernetes/catalyst}"
endpoint=$(sed -n 's/^ *apiServerEndpoint: *//p' "$dir/join.yaml" | tr -d "'\"")
server=$(getent ahostsv4 "${endpoint%:*}" | awk 'NR == 1 { print $1 }')
test -n "$server"
ip=$(ip -4 -o route get "$server" | sed -n 's/.* src \([0-9.]*\).*/\1/p')
test -n "$ip"
echo "KUBELET_EXTRA_ARGS=--node-ip=$ip" > "${KUBELET_DEFAULTS:-/etc/default/kubelet}"
"#;

/// Runs [`NODE_IP_SCRIPT`] at every boot, once the network is up and before the kubelet or the
/// join start. When it fails the kubelet still starts, with the address it finds itself.
const NODE_IP_UNIT: &str = "[Unit]\n\
    Description=Give the kubelet this VM's own address as its node IP\n\
    Wants=network-online.target\n\
    After=network-online.target\n\
    Before=kubelet.service catalyst-join.service\n\
    \n\
    [Service]\n\
    Type=oneshot\n\
    RemainAfterExit=yes\n\
    ExecStart=/etc/kubernetes/catalyst/node-ip.sh\n\
    \n\
    [Install]\n\
    WantedBy=multi-user.target\n";
const NODE_IP_UNIT_NAME: &str = "catalyst-node-ip.service";
const NODE_IP_UNIT_PATH: &str = "/etc/systemd/system/catalyst-node-ip.service";

/// pkgs.k8s.io's repository of a minor release.
fn upstream_repository(release: Release) -> String {
    format!("https://pkgs.k8s.io/core:/stable:/{}/deb", release.minor_name())
}

/// Turns a stock Debian or Ubuntu cloud image into a node of Kubernetes `release`, following
/// kubernetes.io's "Installing kubeadm" and "Container Runtimes": swap off; IPv4 forwarding
/// (and the bridge netfilter a kube-proxy in iptables mode needs); containerd with the systemd
/// cgroup driver, which kubeadm's kubelet uses since v1.22; kubelet and kubeadm from
/// pkgs.k8s.io's repository of the minor release, or its mirror (`repository`), pinned to the
/// patch release when one is given, held against upgrades, keeping the `/etc/default/kubelet`
/// the node-IP unit wrote (`--force-confold`). conntrack where kubeadm's preflight needs it
/// ([`Release::needs_conntrack`]); containerd 2 where the release needs it
/// ([`Release::needs_containerd_2`]): the newest any source offers, refused by name when that is
/// 1.x. `qemu-guest-agent` on a Multus network (`guest_agent`), where KubeVirt learns the
/// guest's address from it alone when the network has no IPAM (KubeVirt
/// `pkg/network/setup/netpod/discoverbridge.go`: no IPAM address, no DHCP server). Does nothing
/// when kubeadm of that release is installed, so a retry or a reboot only finishes what failed.
pub fn install_script(release: Release, repository: Option<&PackageRepository>, guest_agent: bool) -> String {
    let repository = repository.map_or_else(|| upstream_repository(release), |r| r.url.trim_end_matches('/').into());
    let package = release.patch.map(|patch| format!("=1.{}.{patch}-*", release.minor)).unwrap_or_default();
    // `kubeadm version -o short` prints `v1.34.2`: the release, or any patch of the minor.
    let installed = match release.patch {
        Some(patch) => format!(r"^v1\.{}\.{patch}$", release.minor),
        None => format!(r"^v1\.{}\.", release.minor),
    };
    let mut packages = vec!["containerd".to_string(), format!("kubelet{package}"), format!("kubeadm{package}")];
    if release.needs_conntrack() {
        packages.push("conntrack".into());
    }
    if guest_agent {
        packages.push("qemu-guest-agent".into());
    }
    let packages = packages.join(" ");
    let containerd_2 = if release.needs_containerd_2() {
        format!(
            r#"if [ "$(containerd --version | awk '{{sub(/^v/, "", $3); split($3, v, "."); print v[1]}}')" -lt 2 ]; then
  echo "catalyst-install: Kubernetes {release} needs containerd 2.0 or later (v1.35 was the last release to support 1.x), and this image's sources offer $(containerd --version): use a distribution that ships containerd 2, or a repository (software.repository) that carries it" >&2
  exit 1
fi
"#
        )
    } else {
        String::new()
    };
    let guest_agent = if guest_agent { "systemctl start qemu-guest-agent\n" } else { "" };
    format!(
        r#"#!/bin/sh
# Kubernetes {release} on a stock Debian or Ubuntu image.
set -eux
if command -v kubeadm >/dev/null && kubeadm version -o short | grep -q '{installed}'; then exit 0; fi
swapoff -a
sed -i '/\sswap\s/s/^/#/' /etc/fstab
printf 'overlay\nbr_netfilter\n' > /etc/modules-load.d/k8s.conf
modprobe overlay
modprobe br_netfilter
printf 'net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n' > /etc/sysctl.d/k8s.conf
sysctl --system
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y apt-transport-https ca-certificates curl gpg
mkdir -p -m 755 /etc/apt/keyrings
curl -fsSL {repository}/Release.key | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {repository}/ /' > /etc/apt/sources.list.d/kubernetes.list
apt-get update
apt-get install -y -o Dpkg::Options::=--force-confold {packages}
{containerd_2}apt-mark hold kubelet kubeadm containerd
mkdir -p /etc/containerd
containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml
systemctl restart containerd
{guest_agent}systemctl enable kubelet
"#
    )
}

/// One attempt to join: says on the console what it waits for, then runs kubeadm, which at
/// `--v=1` names each step it waits on (discovery, the TLS bootstrap).
pub const JOIN_SCRIPT: &str = r#"#!/bin/sh
dir="${CATALYST_DIR:-/etc/kubernetes/catalyst}"
endpoint=$(sed -n 's/^ *apiServerEndpoint: *//p' "$dir/join.yaml" | tr -d "'\"")
timeout=$(sed -n 's/^ *discovery: *\([0-9][0-9a-z]*\)$/\1/p' "$dir/join.yaml")
echo "catalyst-join: joining through the API server at $endpoint: waiting up to $timeout for its cluster-info signed with this VM's token (kube-controller-manager's bootstrapsigner signs it), then for the kubelet's client certificate; retried 20 s after a failure"
exec /usr/bin/kubeadm join --config "$dir/join.yaml" --v=1
"#;

/// A join that retries until it has succeeded: `kubeadm join` fails while the control plane is
/// unreachable or the container runtime is not up yet, and cloud-init's `runcmd` never runs
/// twice. `Type=oneshot` with `Restart=on-failure` restarts from systemd 244 (earlier releases
/// refuse the unit: systemd `src/core/service.c` at v243 and v244, commit 10e72727);
/// `StartLimitIntervalSec=0` lifts the default limit of 5 starts in 10 s (systemd.unit(5)), so
/// it never gives up. Commands are absolute paths: up to systemd 246 a bare name is looked up
/// when the unit loads, before the install script has put kubeadm there (commit 9f71ba8d moved
/// it to execution in v247). Each attempt installs Kubernetes when asked and not yet done,
/// undoes what a failed attempt left (kubeadm's preflight refuses an existing
/// `/etc/kubernetes/pki/ca.crt`), and joins, writing to the console what it waits for; once the
/// kubelet's kubeconfig exists the node has joined and the unit no longer runs, at this boot or
/// later.
fn join_unit(node_name: &str, install: bool) -> String {
    let install = if install { format!("ExecStartPre={DIR}/install.sh\n") } else { String::new() };
    format!(
        "[Unit]\n\
         Description=Join this VM to the cluster as node {node_name}, retried until it has\n\
         Wants=network-online.target {NODE_IP_UNIT_NAME}\n\
         After=network-online.target containerd.service {NODE_IP_UNIT_NAME}\n\
         ConditionPathExists=!/etc/kubernetes/kubelet.conf\n\
         StartLimitIntervalSec=0\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         {install}\
         ExecStartPre=-/usr/bin/kubeadm reset --force\n\
         ExecStart={DIR}/join.sh\n\
         Restart=on-failure\n\
         RestartSec=20s\n\
         StandardOutput=journal+console\n\
         StandardError=journal+console\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}
