//! What the operator creates, rendered from the samples: VirtualMachines that KubeVirt's own
//! OpenAPI accepts with every definition closed, cloud-init that makes a dedicated node, and
//! StatefulSets whose replicas get exclusive cores.

use catalyst_api::vm::{NodeSoftware, PackageRepository, SoftwareSource};
use catalyst_api::{CatalystVM, ServiceGroup};
use catalyst_core::manifest::{self, Manifests};
use catalyst_core::release::Release;
use catalyst_core::render::{self, JoinCredentials, OnHost};
use catalyst_core::schema;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().find(|dir| dir.join("Cargo.lock").exists()).unwrap().to_path_buf()
}

/// KubeVirt's API definitions for a VirtualMachine, vendored in `vendor/kubevirt/` (its README
/// names the KubeVirt commit).
fn swagger() -> &'static Value {
    static SWAGGER: OnceLock<Value> = OnceLock::new();
    SWAGGER.get_or_init(|| {
        let text = include_str!("../../../vendor/kubevirt/swagger-virtualmachine.json");
        serde_json::from_str(text).unwrap()
    })
}

fn kubevirt_violations(vm: &Value) -> Vec<String> {
    let schema = json!({"$ref": "#/definitions/v1.VirtualMachine"});
    schema::validate(swagger(), &schema, vm, "").iter().map(ToString::to_string).collect()
}

fn samples() -> Manifests {
    let (manifests, errors) = manifest::load(&[repo().join("config/samples")]);
    assert!(errors.is_empty(), "{errors:?}");
    manifests
}

fn vm_named(name: &str) -> CatalystVM {
    samples().vms.into_iter().find(|vm| vm.metadata.name.as_deref() == Some(name)).unwrap()
}

#[test]
fn every_sample_vm_renders_into_a_virtual_machine_kubevirt_accepts() {
    let manifests = samples();
    assert_eq!(manifests.vms.len(), 19);
    for vm in &manifests.vms {
        let rendered = serde_json::to_value(render::virtual_machine(vm, OnHost::node("hv-1"))).unwrap();
        assert_eq!(kubevirt_violations(&rendered), Vec::<String>::new(), "{:?}", vm.metadata.name);
    }
}

#[test]
fn the_strict_check_refuses_a_misspelt_kubevirt_field() {
    let mut rendered =
        serde_json::to_value(render::virtual_machine(&vm_named("kafka-1"), OnHost::node("hv-1"))).unwrap();
    rendered["spec"]["template"]["spec"]["domain"]["cpu"]["dedicatedCPUPlacement"] = json!(true);
    assert_eq!(kubevirt_violations(&rendered), ["spec.template.spec.domain.cpu.dedicatedCPUPlacement: unknown field"]);
}

#[test]
fn a_virtual_machine_has_dedicated_pinned_guaranteed_resources() {
    let kafka = serde_json::to_value(render::virtual_machine(&vm_named("kafka-1"), OnHost::node("hv-2"))).unwrap();
    let spec = &kafka["spec"]["template"]["spec"];
    let domain = &spec["domain"];
    assert_eq!(
        domain["cpu"],
        json!({"cores": 96, "sockets": 1, "threads": 1, "dedicatedCpuPlacement": true,
        "isolateEmulatorThread": true, "numa": {"guestMappingPassthrough": {}}})
    );
    assert_eq!(domain["memory"], json!({"guest": "512Gi", "hugepages": {"pageSize": "1Gi"}}));
    assert_eq!(domain["resources"]["requests"], domain["resources"]["limits"]);
    assert_eq!(domain["resources"]["requests"], json!({"cpu": "96", "memory": "512Gi"}));
    assert_eq!(spec["nodeSelector"], json!({"kubernetes.io/hostname": "hv-2"}));
    assert_eq!(kafka["spec"]["runStrategy"], "Always");
    assert_eq!(
        kafka["spec"]["dataVolumeTemplates"][0]["spec"],
        json!({
            "source": {"registry": {"url": "docker://quay.io/containerdisks/ubuntu:24.04"}},
            "storage": {"storageClassName": "ceph-rbd", "resources": {"requests": {"storage": "200Gi"}}}
        })
    );
    assert_eq!(spec["volumes"][0], json!({"name": "boot", "dataVolume": {"name": "kafka-1-boot"}}));
    assert_eq!(spec["volumes"][1]["cloudInitNoCloud"]["secretRef"]["name"], "kafka-1-cloud-init");

    let api = serde_json::to_value(render::virtual_machine(&vm_named("api-a"), OnHost::node("worker-1"))).unwrap();
    let domain = &api["spec"]["template"]["spec"]["domain"];
    assert_eq!(domain["cpu"].get("numa"), None);
    assert_eq!(domain["memory"], json!({"guest": "32Gi"}));
    assert_eq!(
        api["spec"]["template"]["spec"]["volumes"][0]["containerDisk"]["image"],
        "quay.io/containerdisks/ubuntu:24.04"
    );
    assert_eq!(api["spec"].get("dataVolumeTemplates"), None);
    // Explicit, so that a cluster-wide LiveMigrate never holds a drain on a VM that cannot
    // migrate (KubeVirt's default is None, copied into each VMI: pkg/defaults/defaults.go).
    assert_eq!(api["spec"]["template"]["spec"]["evictionStrategy"], "None");

    // Bridged, so each guest has its own routable address (masquerade gives every guest
    // 10.0.2.2, KubeVirt's DefaultVMCIDR): the pod network's by default, or a Multus network's.
    let template = &api["spec"]["template"]["spec"];
    assert_eq!(template["domain"]["devices"]["interfaces"], json!([{"name": "default", "bridge": {}}]));
    assert_eq!(template["networks"], json!([{"name": "default", "pod": {}}]));
    let mut lan = vm_named("api-a");
    lan.spec.network.multus_network_name = Some("infra/hosts-lan".into());
    let lan = serde_json::to_value(render::virtual_machine(&lan, OnHost::node("worker-1"))).unwrap();
    assert_eq!(
        lan["spec"]["template"]["spec"]["networks"],
        json!([{"name": "default", "multus": {"networkName": "infra/hosts-lan", "default": true}}])
    );
    assert!(kubevirt_violations(&lan).is_empty(), "{:?}", kubevirt_violations(&lan));
    // Issue 22: on a Multus network with a container disk it can migrate, so a node drain
    // waits for it to be moved live rather than stopping it.
    assert_eq!(lan["spec"]["template"]["spec"]["evictionStrategy"], "LiveMigrate");
    let mut shared = vm_named("kafka-1");
    shared.spec.network.multus_network_name = Some("infra/hosts-lan".into());
    assert_eq!(
        serde_json::to_value(render::virtual_machine(&shared, OnHost::node("hv-2"))).unwrap()["spec"]["template"]["spec"]
            ["evictionStrategy"],
        "None",
        "a DataVolume not asked ReadWriteMany does not migrate"
    );
    shared.spec.boot_disk.data_volume.as_mut().unwrap().access_mode = Some(catalyst_api::vm::AccessMode::ReadWriteMany);
    let shared = serde_json::to_value(render::virtual_machine(&shared, OnHost::node("hv-2"))).unwrap();
    assert_eq!(shared["spec"]["template"]["spec"]["evictionStrategy"], "LiveMigrate");
    assert_eq!(shared["spec"]["dataVolumeTemplates"][0]["spec"]["storage"]["accessModes"], json!(["ReadWriteMany"]));
    assert!(kubevirt_violations(&shared).is_empty(), "{:?}", kubevirt_violations(&shared));
}

#[test]
fn cloud_init_makes_a_dedicated_node_with_the_static_cpu_manager() {
    let mut vm = vm_named("kafka-2");
    vm.spec.node.reserved_cpu = 2;
    let join = credentials("10.0.0.1:6443");
    let text = render::cloud_init_user_data(&vm, OnHost::node("hv-1"), Some(&join));
    assert!(text.starts_with("#cloud-config\n"));
    let config: Value = catalyst_core::yaml::from_str(&text).unwrap();
    let files = config["write_files"].as_array().unwrap();
    let kubelet: Value = catalyst_core::yaml::from_str(files[0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(kubelet["cpuManagerPolicy"], "static");
    assert_eq!(kubelet["reservedSystemCPUs"], "0-1");
    // kafka-2 has NUMA passthrough: a guest NUMA node per host cell its vCPUs land on, where
    // single-numa-node would refuse a replica larger than one (TopologyAffinityError).
    assert_eq!(kubelet["topologyManagerPolicy"], "restricted");
    assert_eq!(kubelet["topologyManagerScope"], "pod");
    let one_cell: Value =
        catalyst_core::yaml::from_str(&render::cloud_init_user_data(&vm_named("api-a"), OnHost::node("hv-1"), None))
            .unwrap();
    let one_cell_kubelet: Value =
        catalyst_core::yaml::from_str(one_cell["write_files"][0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(one_cell_kubelet["topologyManagerPolicy"], "single-numa-node");
    assert_eq!(kubelet["systemReserved"]["memory"], "4Gi");
    // Every default signal of the kubelet (pkg/kubelet/eviction/defaults_linux.go, with
    // imagefs.inodesFree since v1.30): setting only memory.available would turn disk-pressure
    // eviction off.
    assert_eq!(
        kubelet["evictionHard"],
        json!({"memory.available": "100Mi", "nodefs.available": "10%", "nodefs.inodesFree": "5%",
               "imagefs.available": "15%", "imagefs.inodesFree": "5%"})
    );
    let join_config: Value = catalyst_core::yaml::from_str(files[1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(join_config["nodeRegistration"]["name"], "kafka-2.catalyst-v3");
    assert_eq!(join_config["nodeRegistration"]["kubeletExtraArgs"][0]["value"], "catalyst.io/vm=kafka-2.catalyst-v3");
    assert_eq!(
        join_config["nodeRegistration"]["taints"][0],
        json!({"key": "catalyst.io/dedicated", "value": "kafka-2", "effect": "NoSchedule"})
    );
    assert_eq!(join_config["discovery"]["bootstrapToken"]["token"], "abcdef.0123456789abcdef");
    assert_eq!(files[1]["path"], "/etc/kubernetes/catalyst/join.yaml");
    assert_eq!(files[1]["permissions"], "0600");
    // The node IP is the guest's own, found at every boot before the kubelet starts.
    assert_eq!(files[2]["path"], "/etc/kubernetes/catalyst/node-ip.sh");
    assert_eq!(files[3]["path"], "/etc/systemd/system/catalyst-node-ip.service");
    let node_ip_unit = files[3]["content"].as_str().unwrap();
    assert!(node_ip_unit.lines().any(|l| l == "Before=kubelet.service catalyst-join.service"), "{node_ip_unit}");
    assert_eq!(config["runcmd"][1], json!(["systemctl", "enable", "catalyst-node-ip.service"]));
    // The join is a systemd unit that retries until the node has joined (runcmd runs once).
    let unit_file = files.iter().find(|f| f["path"] == "/etc/systemd/system/catalyst-join.service").unwrap();
    let unit = unit_file["content"].as_str().unwrap();
    for line in [
        "Type=oneshot",
        "Restart=on-failure",
        "StartLimitIntervalSec=0",
        "ConditionPathExists=!/etc/kubernetes/kubelet.conf",
        "ExecStart=/etc/kubernetes/catalyst/join.sh",
        "StandardOutput=journal+console",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line:?} missing in:\n{unit}");
    }
    assert_eq!(config["runcmd"][2], json!(["systemctl", "enable", "--now", "--no-block", "catalyst-join.service"]));
    // Without credentials the VM boots with the kubelet settings but does not try to join.
    let alone: Value =
        catalyst_core::yaml::from_str(&render::cloud_init_user_data(&vm, OnHost::node("hv-1"), None)).unwrap();
    assert_eq!(alone["write_files"].as_array().unwrap().len(), 1);
    assert_eq!(alone.get("runcmd"), None);
    assert_eq!(format!("{join:?}"), "JoinCredentials { <redacted> }");
}

#[test]
fn join_credentials_name_missing_keys_but_never_values() {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let mut secret = Secret::default();
    secret.metadata.name = Some("catalyst-join".into());
    secret.data = Some([("token".to_string(), ByteString(b"s3cr3t.token".to_vec()))].into());
    let error = JoinCredentials::from_secret(&secret, false).unwrap_err();
    assert_eq!(error, "Secret catalyst-join lacks the key(s) apiServerEndpoint, caCertHash");
    assert!(!error.contains("s3cr3t"));
    // When the operator mints each VM's token, the Secret's own is neither needed nor used.
    secret.data = Some(
        [("apiServerEndpoint", "10.0.0.1:6443"), ("caCertHash", "sha256:00")]
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .into(),
    );
    let minted = JoinCredentials::from_secret(&secret, true).unwrap();
    assert!(minted.minted && minted.token.is_empty());
    assert_eq!(
        JoinCredentials::from_secret(&secret, false).unwrap_err(),
        "Secret catalyst-join lacks the key(s) token"
    );
}

fn group_named(name: &str) -> ServiceGroup {
    samples().groups.into_iter().find(|g| g.metadata.name.as_deref() == Some(name)).unwrap()
}

#[test]
fn a_service_group_becomes_a_parallel_statefulset_of_guaranteed_pinned_replicas() {
    let sts = serde_json::to_value(render::stateful_set(&group_named("kafka-broker-1"), &vm_named("kafka-1"))).unwrap();
    let spec = &sts["spec"];
    assert_eq!(spec["ordinals"]["start"], 1, "replicas are named kafka-broker-1-1 ...");
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    assert_eq!(spec["serviceName"], "kafka-broker-1");
    let pod = &spec["template"]["spec"];
    // The label the operator sets once it verified the node, which no kubelet may set itself.
    assert_eq!(pod["nodeSelector"], json!({"catalyst.io.node-restriction.kubernetes.io/vm": "kafka-1.catalyst-v3"}));
    assert_eq!(
        pod["tolerations"][0],
        json!({"key": "catalyst.io/dedicated", "operator": "Equal", "value": "kafka-1", "effect": "NoSchedule"})
    );
    let container = &pod["containers"][0];
    assert_eq!(container["resources"]["requests"], json!({"cpu": "96", "memory": "500Gi"}));
    assert_eq!(container["resources"]["requests"], container["resources"]["limits"]);
    assert_eq!(container["volumeMounts"][0], json!({"name": "data", "mountPath": "/var/lib/kafka/data"}));
    assert_eq!(spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "10Ti");
    assert_eq!(spec["selector"]["matchLabels"], json!({"catalyst.io/service-group": "kafka-broker-1"}));
    assert_eq!(spec["template"]["metadata"]["labels"]["catalyst.io/service-group"], "kafka-broker-1");
    let service = serde_json::to_value(render::headless_service(&group_named("sms"))).unwrap();
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-catalyst")).args(args).current_dir(repo()).output().unwrap()
}

#[test]
fn render_prints_what_a_merge_will_create_in_plan_order() {
    let output = cli(&["render", "-f", "config/samples/minimal/"]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    let documents: Vec<Value> = text.split("\n---\n").map(|d| catalyst_core::yaml::from_str(d).unwrap()).collect();
    let kinds: Vec<(&str, &str)> =
        documents.iter().map(|d| (d["kind"].as_str().unwrap(), d["metadata"]["name"].as_str().unwrap())).collect();
    assert_eq!(
        kinds,
        [
            ("VirtualMachine", "api-a"),
            ("Secret", "api-a-cloud-init"),
            ("VirtualMachine", "api-b"),
            ("Secret", "api-b-cloud-init"),
            ("Service", "api-a"),
            ("StatefulSet", "api-a"),
            ("Service", "api-b"),
            ("StatefulSet", "api-b"),
        ]
    );
    for vm in documents.iter().filter(|d| d["kind"] == "VirtualMachine") {
        assert!(kubevirt_violations(vm).is_empty());
    }
    assert!(documents[1].get("data").is_none() && documents[1]["stringData"]["userdata"].is_string());

    let output = cli(&["render", "-f", "config/samples/catalyst-v3/"]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("token: <redacted>"));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("not rendered: CatalystVM catalyst-v3/kafka-2: no host can take it"), "{stderr}");
    assert!(stderr.contains("not rendered: ServiceGroup catalyst-v3/sms: does not fit its VM"), "{stderr}");
}

/// The samples' VMs name their node software, so each renders a join that can succeed: the
/// install script, which runs first in the join unit, for a stock image.
#[test]
fn every_sample_vm_that_joins_installs_its_node_software() {
    for vm in samples().vms {
        let software =
            vm.spec.node.software.as_ref().unwrap_or_else(|| panic!("{:?} names no software", vm.metadata.name));
        assert_eq!(software.source, SoftwareSource::Install);
        let config = user_data(&vm);
        assert!(file(&config, "/etc/kubernetes/catalyst/install.sh").is_some(), "{:?}", vm.metadata.name);
    }
}

fn user_data(vm: &CatalystVM) -> Value {
    let join = credentials("10.0.0.1:6443");
    catalyst_core::yaml::from_str(&render::cloud_init_user_data(vm, OnHost::node("hv-1"), Some(&join))).unwrap()
}

fn file<'a>(config: &'a Value, path: &str) -> Option<&'a str> {
    config["write_files"].as_array().unwrap().iter().find(|f| f["path"] == path).and_then(|f| f["content"].as_str())
}

fn install(release: &str, repository: Option<&str>, guest_agent: bool) -> String {
    let repository = repository.map(|url| PackageRepository { url: url.into() });
    render::install_script(Release::parse(release).unwrap(), repository.as_ref(), guest_agent)
}

/// A stock image is made a node before the join: the install script runs first in the unit,
/// from the minor release's pkgs.k8s.io repository, pinned to the patch release; every command
/// of the unit is an absolute path (systemd up to 246 resolves a bare name when the unit loads,
/// before the script has installed kubeadm: commit 9f71ba8d, v247).
#[test]
fn a_stock_image_installs_the_named_kubernetes_before_joining() {
    let mut vm = vm_named("api-a");
    vm.spec.node.software =
        Some(NodeSoftware { kubernetes_version: "v1.34.2".into(), source: SoftwareSource::Install, repository: None });
    let config = user_data(&vm);
    let script = file(&config, "/etc/kubernetes/catalyst/install.sh").unwrap();
    for line in [
        "curl -fsSL https://pkgs.k8s.io/core:/stable:/v1.34/deb/Release.key | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg",
        "echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.34/deb/ /' > /etc/apt/sources.list.d/kubernetes.list",
        "apt-get install -y -o Dpkg::Options::=--force-confold containerd kubelet=1.34.2-* kubeadm=1.34.2-*",
        "apt-mark hold kubelet kubeadm containerd",
        "containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml",
        "swapoff -a",
        r"if command -v kubeadm >/dev/null && kubeadm version -o short | grep -q '^v1\.34\.2$'; then exit 0; fi",
    ] {
        assert!(script.lines().any(|l| l == line), "{line:?} missing in:\n{script}");
    }
    let unit = file(&config, "/etc/systemd/system/catalyst-join.service").unwrap();
    let exec = |key: &str| unit.lines().filter_map(|l| l.strip_prefix(key)).collect::<Vec<_>>();
    assert_eq!(exec("ExecStartPre="), ["/etc/kubernetes/catalyst/install.sh", "-/usr/bin/kubeadm reset --force"]);
    assert_eq!(exec("ExecStart="), ["/etc/kubernetes/catalyst/join.sh"]);
    assert!(file(&config, "/etc/kubernetes/catalyst/join.sh").unwrap().contains("exec /usr/bin/kubeadm join --config"));
    // A minor release takes its newest patch.
    let minor = install("v1.34", None, false);
    assert!(minor.contains("--force-confold containerd kubelet kubeadm\n"), "{minor}");
    assert!(minor.contains(r"grep -q '^v1\.34\.'"), "{minor}");
}

/// A Prepared image installs nothing: the join unit only resets and joins.
#[test]
fn a_prepared_image_is_joined_as_it_is() {
    let mut vm = vm_named("api-a");
    vm.spec.node.software.as_mut().unwrap().source = SoftwareSource::Prepared;
    let config = user_data(&vm);
    assert_eq!(file(&config, "/etc/kubernetes/catalyst/install.sh"), None);
    let unit = file(&config, "/etc/systemd/system/catalyst-join.service").unwrap();
    assert!(!unit.contains("install.sh"), "{unit}");
}

/// What each release needs beside kubelet and kubeadm: conntrack for kubeadm's preflight below
/// v1.32 (kubernetes#126953), containerd 2 from v1.36 (the v1.35 release's "Final call for
/// containerd v1.X"); a mirror replaces pkgs.k8s.io; the guest agent on a Multus network.
#[test]
fn each_release_installs_what_it_needs_from_where_it_is_told() {
    let v131 = install("v1.31", None, false);
    assert!(v131.contains("containerd kubelet kubeadm conntrack\n"), "{v131}");
    assert!(!install("v1.32", None, false).contains("conntrack"));
    let v136 = install("v1.36.1", None, false);
    assert!(v136.contains("needs containerd 2.0 or later"), "{v136}");
    assert!(!install("v1.35", None, false).contains("needs containerd 2.0"));
    let mirrored = install("v1.35", Some("http://10.0.2.2:8080/kubernetes/v1.35/deb/"), true);
    assert!(mirrored.contains("curl -fsSL http://10.0.2.2:8080/kubernetes/v1.35/deb/Release.key |"), "{mirrored}");
    assert!(mirrored.contains("http://10.0.2.2:8080/kubernetes/v1.35/deb/ /' >"), "{mirrored}");
    assert!(!mirrored.contains("pkgs.k8s.io"));
    assert!(mirrored.contains("kubeadm qemu-guest-agent\n") && mirrored.contains("systemctl start qemu-guest-agent\n"));
}

/// A `kubeadm join` gives up discovery after a minute instead of kubeadm's silent five, so the
/// unit's retries (each saying what it waits for) show on the console.
#[test]
fn the_join_waits_a_minute_for_discovery_and_says_what_it_waits_for() {
    let config = user_data(&vm_named("api-a"));
    let join: Value =
        catalyst_core::yaml::from_str(file(&config, "/etc/kubernetes/catalyst/join.yaml").unwrap()).unwrap();
    assert_eq!(join["apiVersion"], "kubeadm.k8s.io/v1beta4");
    assert_eq!(join["timeouts"], json!({"discovery": "1m0s"}));
    let dir = std::env::temp_dir().join(format!("catalyst-join-{}", std::process::id()));
    let bin = dir.join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(dir.join("join.yaml"), file(&config, "/etc/kubernetes/catalyst/join.yaml").unwrap()).unwrap();
    // The script execs /usr/bin/kubeadm; run with a copy whose path points at a stand-in.
    let script = render::JOIN_SCRIPT.replace("/usr/bin/kubeadm", &bin.join("kubeadm").display().to_string());
    std::fs::write(bin.join("kubeadm"), "#!/bin/sh\necho \"kubeadm $*\"\n").unwrap();
    std::fs::set_permissions(bin.join("kubeadm"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let output = std::process::Command::new("sh").arg("-c").arg(script).env("CATALYST_DIR", &dir).output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with(
            "catalyst-join: joining through the API server at 10.0.0.1:6443: waiting up to 1m0s for its cluster-info"
        ),
        "{text}"
    );
    assert!(text.ends_with(&format!("kubeadm join --config {}/join.yaml --v=1\n", dir.display())), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The node-IP script, run as its unit runs it, against stand-ins for `getent` and `ip`: the
/// kubelet is given the address the guest reaches the API server from.
#[test]
fn the_node_ip_is_the_address_the_guest_reaches_the_api_server_from() {
    let dir = std::env::temp_dir().join(format!("catalyst-node-ip-{}", std::process::id()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let join = credentials("control-plane.example:6443");
    let config: Value = catalyst_core::yaml::from_str(&render::cloud_init_user_data(
        &vm_named("api-a"),
        OnHost::node("hv-1"),
        Some(&join),
    ))
    .unwrap();
    std::fs::write(dir.join("join.yaml"), config["write_files"][1]["content"].as_str().unwrap()).unwrap();
    let stub = |name: &str, body: &str| {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    stub(
        "getent",
        r#"[ "$1 $2" = "ahostsv4 control-plane.example" ] && echo "10.0.0.1        STREAM control-plane.example""#,
    );
    stub(
        "ip",
        r#"[ "$*" = "-4 -o route get 10.0.0.1" ] && echo "10.0.0.1 via 10.244.3.1 dev eth0 src 10.244.3.17 uid 0 \    cache ""#,
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(render::NODE_IP_SCRIPT)
        .env("PATH", path)
        .env("CATALYST_DIR", &dir)
        .env("KUBELET_DEFAULTS", dir.join("kubelet"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(dir.join("kubelet")).unwrap(), "KUBELET_EXTRA_ARGS=--node-ip=10.244.3.17\n");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Join credentials of a bootstrap token for the API server at `endpoint`.
fn credentials(endpoint: &str) -> JoinCredentials {
    JoinCredentials {
        api_server_endpoint: endpoint.into(),
        token: "abcdef.0123456789abcdef".into(),
        ca_cert_hash: "sha256:00".into(),
        minted: false,
    }
}

/// On a host with two threads per core KubeVirt pins the VM to whole physical cores; the guest
/// is told so (48 cores of 2 threads, not 96 single-thread cores, two of which could be
/// siblings), and its kubelet reserves whole cores, as its `full-pcpus-only` hands out only
/// whole cores.
#[test]
fn on_an_smt_host_the_guest_sees_whole_cores_of_two_threads() {
    let smt = OnHost { node_name: "hv-1", threads_per_core: 2 };
    let kafka = serde_json::to_value(render::virtual_machine(&vm_named("kafka-1"), smt)).unwrap();
    let cpu = &kafka["spec"]["template"]["spec"]["domain"]["cpu"];
    assert_eq!((&cpu["cores"], &cpu["threads"], &cpu["sockets"]), (&json!(48), &json!(2), &json!(1)));
    assert!(kubevirt_violations(&kafka).is_empty());
    let config: Value =
        catalyst_core::yaml::from_str(&render::cloud_init_user_data(&vm_named("kafka-1"), smt, None)).unwrap();
    let kubelet: Value = catalyst_core::yaml::from_str(config["write_files"][0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(kubelet["reservedSystemCPUs"], "0-1", "reservedCpu 1, rounded up to a whole core of 2 threads");
    // An odd vCPU count cannot be whole cores: one thread each, as before.
    let mut odd = vm_named("kafka-1");
    odd.spec.cpu = 95;
    let odd = serde_json::to_value(render::virtual_machine(&odd, smt)).unwrap();
    assert_eq!(odd["spec"]["template"]["spec"]["domain"]["cpu"]["threads"], 1);
}
