//! A real guest booted from the operator's own cloud-init: a Debian guest made by debootstrap
//! from Debian's packages (systemd, cloud-init, containerd, the CNI plugins), started under QEMU
//! with a NoCloud seed made from the Secret the operator wrote, unmodified. No registry here
//! serves kubelet or kubeadm, so the guest installs stand-ins from a local signed apt repository
//! (the VM's `software.repository`) served over QEMU's user network, where the host is
//! 10.0.2.2. A probe baked into the test guest reports what the join did on a second serial
//! port (e2e/guest/probe.sh).
//!
//! KVM on these machines is a PVM hypervisor that boots no stock Debian kernel, so QEMU
//! emulates (TCG): systemd in about 30 s, the whole test in a few minutes. The test skips only
//! where QEMU cannot start at all, and fails instead of skipping when `CATALYST_GUEST_BOOT` is
//! `required` (as CI sets it).

use crate::harness::{Cluster, Operator, eventually};
use catalyst_api::vm::PackageRepository;
use catalyst_e2e::repo;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the stand-in kubeadm's join fails before it succeeds: the unit must retry.
const FAILED_JOINS: usize = 2;
/// Both boots, the install and the retried joins, under emulation.
const BOOTS: Duration = Duration::from_secs(540);
/// The address QEMU's user network gives the first guest (slirp's default).
const GUEST_ADDRESS: &str = "10.0.2.15";

fn guest_dir() -> PathBuf {
    repo().join("e2e/guest")
}

/// Whether the boot may be skipped when QEMU cannot start; CI says it may not.
fn required() -> bool {
    std::env::var("CATALYST_GUEST_BOOT").as_deref() == Ok("required")
}

/// Why QEMU cannot start here, if it cannot.
fn qemu_missing() -> Option<String> {
    match Command::new("qemu-system-x86_64").arg("--version").output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!("qemu-system-x86_64 --version failed: {}", String::from_utf8_lossy(&output.stderr))),
        Err(error) => Some(format!("qemu-system-x86_64 cannot run: {error}")),
    }
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The guest image (rootfs.img, vmlinuz, initrd.img), built once per version of its recipe and
/// kept under `target/guest/`: parallel test processes wait for the one that builds it.
fn guest_image() -> PathBuf {
    let mut recipe = Vec::new();
    for file in ["build-image.sh", "probe.sh", "catalyst-probe.service"] {
        recipe.extend(std::fs::read(guest_dir().join(file)).unwrap());
    }
    let key = format!("{:016x}", fnv1a(&recipe));
    let image = repo().join("target/guest").join(key);
    if image.join("rootfs.img").exists() {
        return image;
    }
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    let lock = image.with_extension("lock");
    loop {
        if image.join("rootfs.img").exists() {
            return image;
        }
        if std::fs::create_dir(&lock).is_ok() {
            let staging = image.with_extension("staging");
            let _ = std::fs::remove_dir_all(&staging);
            let started = Instant::now();
            let built = Command::new("bash").arg(guest_dir().join("build-image.sh")).arg(&staging).output();
            std::fs::remove_dir(&lock).unwrap();
            let output = built.unwrap();
            assert!(
                output.status.success(),
                "building the guest image failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::fs::rename(&staging, &image).unwrap();
            eprintln!("built the guest image in {:?}", started.elapsed());
            // An image of an older recipe is 750 MB nobody boots again.
            for old in std::fs::read_dir(image.parent().unwrap()).unwrap().flatten() {
                if old.path() != image && old.path().is_dir() && !old.path().with_extension("lock").exists() {
                    let _ = std::fs::remove_dir_all(old.path());
                }
            }
            return image;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// FNV-1a, a stable digest of the image's recipe for its cache key.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// A static file server on 127.0.0.1 for the guest's apt (HTTP/1.0, one request a connection),
/// recording the paths asked for.
struct FileServer {
    port: u16,
    asked: Arc<Mutex<Vec<String>>>,
}

impl FileServer {
    fn serve(dir: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let mut parts = request.split_whitespace();
                let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or("/"));
                log.lock().unwrap().push(format!("{method} {path}"));
                let file = dir.join(path.trim_start_matches('/'));
                let mut stream = reader.into_inner();
                let inside = file.canonicalize().is_ok_and(|f| f.starts_with(&dir));
                let response = match std::fs::read(&file) {
                    Ok(body) if inside && file.is_file() => {
                        let mut head =
                            format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                                .into_bytes();
                        if method != "HEAD" {
                            head.extend(body);
                        }
                        head
                    }
                    _ => b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                };
                let _ = stream.write_all(&response);
            }
        });
        Self { port, asked }
    }
}

/// The probe's report: its sections by boot, each with what the command printed and its exit.
#[derive(Debug, Default)]
struct Report {
    boots: BTreeMap<u32, BTreeMap<String, (String, i32)>>,
    rebooted: bool,
    done: bool,
}

impl Report {
    fn parse(text: &str) -> Self {
        let mut report = Report::default();
        let (mut boot, mut section, mut body) = (0, None::<String>, String::new());
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            let Some(header) = line.strip_prefix("=== ") else {
                body.push_str(line);
                body.push('\n');
                continue;
            };
            if let Some(n) = header.strip_prefix("boot ") {
                boot = n.parse().unwrap_or(0);
            } else if let Some(code) = header.strip_prefix("exit ") {
                if let Some(name) = section.take() {
                    let code = code.parse().unwrap_or(-1);
                    report.boots.entry(boot).or_default().insert(name, (std::mem::take(&mut body), code));
                }
            } else if header == "rebooting" {
                report.rebooted = true;
            } else if header == "done" {
                report.done = true;
            } else {
                section = Some(header.to_string());
                body.clear();
            }
        }
        report
    }

    /// What `section` printed at `boot`, having exited 0.
    fn ok(&self, boot: u32, section: &str) -> &str {
        let (text, code) = self.get(boot, section);
        assert_eq!(code, 0, "boot {boot}, {section} exited {code}:\n{text}");
        text
    }

    fn get(&self, boot: u32, section: &str) -> (&str, i32) {
        let found = self.boots.get(&boot).and_then(|b| b.get(section));
        let (text, code) = found.unwrap_or_else(|| panic!("boot {boot} reported no {section:?}: {self:#?}"));
        (text.as_str(), *code)
    }
}

/// Boots the guest until it powers off or `BOOTS` runs out; its console log.
fn boot(image: &Path, seed: &Path, dir: &Path) -> (String, String) {
    let (console, probe) = (dir.join("console.log"), dir.join("probe.log"));
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-machine", "q35", "-cpu", "max", "-smp", "2", "-m", "1536"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .arg("-kernel")
        .arg(image.join("vmlinuz"))
        .arg("-initrd")
        .arg(image.join("initrd.img"))
        .args(["-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"])
        // snapshot: the guest's writes go to a temporary overlay kept across its reboot, and
        // the cached image stays as built.
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=raw,snapshot=on", image.join("rootfs.img").display()))
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=raw,readonly=on", seed.display()))
        .args(["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", probe.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while qemu.try_wait().unwrap().is_none() {
        if started.elapsed() > BOOTS {
            let _ = qemu.kill();
            let _ = qemu.wait();
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = qemu.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    eprintln!("the guest ran for {:?}", started.elapsed());
    let console = std::fs::read_to_string(console).unwrap_or_default() + &stderr;
    (console, std::fs::read_to_string(probe).unwrap_or_default())
}

/// The last lines of the console, for a failure message.
fn tail(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Issue 20, item 15: the minimal sample's VM, as the operator renders it, boots in a real
/// guest and joins: cloud-init accepts its user data and every unit loads; the node IP is the
/// guest's address; the install script installs the pinned release from the repository with
/// its keyring and sets containerd's cgroup driver; the join retries until the stand-in
/// succeeds and stops once kubelet.conf exists; after a reboot the node IP is written again
/// and no second join happens.
#[tokio::test(flavor = "multi_thread")]
async fn a_sample_vm_boots_in_a_real_guest_from_the_operators_cloud_init_and_joins() {
    if let Some(why) = qemu_missing() {
        assert!(!required(), "CATALYST_GUEST_BOOT=required, but QEMU cannot start: {why}");
        eprintln!("skipped: QEMU cannot start here ({why})");
        return;
    }
    let image = tokio::task::spawn_blocking(guest_image).await.unwrap();

    let cluster = Cluster::start().await;
    let ns = cluster.namespace("guest").await;
    let mut layout = cluster.layout(&ns);
    let software = layout.vms[0].spec.node.software.clone().expect("the sample names its node software");
    let release = catalyst_core::release::Release::parse(&software.kubernetes_version).unwrap();
    let version = format!("1.{}.{}", release.minor, release.patch.unwrap_or(0));
    let packages = cluster.dir.join("repository");
    run(Command::new("bash")
        .arg(guest_dir().join("make-repo.sh"))
        .arg(&version)
        .arg(FAILED_JOINS.to_string())
        .arg(&packages));
    let server = FileServer::serve(packages.canonicalize().unwrap());
    // The sample as it is, but for the mirror its install takes the packages from, and the
    // API server the guest is told to join, the host as QEMU's user network shows it.
    let url = format!("http://10.0.2.2:{}/", server.port);
    for vm in &mut layout.vms {
        let software = vm.spec.node.software.as_mut().unwrap();
        software.repository = Some(PackageRepository { url: url.clone() });
    }
    layout.join_endpoint = "10.0.2.2:6443".into();
    let _operator = Operator::start(&cluster, &ns);
    layout.apply(&cluster.client).await;
    let vm = layout.vms[0].name_any();
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns);
    let userdata = eventually("the VM's cloud-init Secret", Duration::from_secs(60), || async {
        let secret = secrets.get_opt(&format!("{vm}-cloud-init")).await.ok()??;
        secret.data?.remove("userdata").map(|d| d.0)
    })
    .await;

    // The NoCloud seed KubeVirt makes of a cloudInitNoCloud volume: user-data as the Secret
    // holds it, and meta-data naming the instance.
    let seed_dir = cluster.dir.join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::write(seed_dir.join("user-data"), &userdata).unwrap();
    std::fs::write(seed_dir.join("meta-data"), format!("instance-id: {vm}.{ns}\nlocal-hostname: {vm}\n")).unwrap();
    let seed = cluster.dir.join("seed.iso");
    run(Command::new("genisoimage")
        .args(["-quiet", "-output"])
        .arg(&seed)
        .args(["-volid", "cidata", "-joliet", "-rock"])
        .arg(seed_dir.join("user-data"))
        .arg(seed_dir.join("meta-data")));

    let dir = cluster.dir.clone();
    let (console, probe) = tokio::task::spawn_blocking(move || boot(&image, &seed, &dir)).await.unwrap();
    let report = Report::parse(&probe);
    assert!(report.done, "the guest did not finish both boots:\n{probe}\n--- console:\n{}", tail(&console));

    // Boot 1: cloud-init took the user data, the units load, the install and the join ran.
    // cloud-init's own schema check of the user data this instance ran (`cloud-init schema --system`).
    assert!(report.ok(1, "cloud-init schema").contains("Valid cloud-config: system userdata"), "{report:#?}");
    report.ok(1, "cloud-init status");
    let verify = report.ok(1, "systemd-analyze verify");
    assert!(!verify.contains("catalyst"), "systemd-analyze verify found fault with the units:\n{verify}");
    let address = report.ok(1, "guest address");
    assert!(address.contains(&format!("inet {GUEST_ADDRESS}/")), "{address}");
    let node_ip = format!("KUBELET_EXTRA_ARGS=--node-ip={GUEST_ADDRESS}\n");
    assert_eq!(report.ok(1, "kubelet defaults"), node_ip, "the node IP is the guest's own address");
    assert!(report.ok(1, "kubelet args").contains(&format!("--node-ip={GUEST_ADDRESS}")));
    let installed = report.ok(1, "packages");
    for package in ["kubelet", "kubeadm"] {
        assert!(installed.contains(&format!("{package} {version}-1.1\n")), "{installed}");
    }
    let held: Vec<&str> = report.ok(1, "held").lines().collect();
    assert_eq!(held, ["containerd", "kubeadm", "kubelet"]);
    assert_eq!(
        report.ok(1, "kubernetes source"),
        format!("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {url} /\n")
    );
    assert!(report.ok(1, "keyring").contains("Catalyst boot test"), "the repository's own key");
    assert!(report.ok(1, "containerd cgroup driver").contains("SystemdCgroup = true"));
    let calls: Vec<&str> = report.ok(1, "kubeadm calls").lines().collect();
    let joins = calls.iter().filter(|c| c.starts_with("kubeadm join")).count();
    assert_eq!(joins, FAILED_JOINS + 1, "retried until the stand-in succeeded: {calls:?}");
    assert!(calls.contains(&"kubeadm join --config /etc/kubernetes/catalyst/join.yaml --v=1"), "{calls:?}");
    let unit = report.ok(1, "join unit");
    assert!(unit.contains(&format!("NRestarts={FAILED_JOINS}")) && unit.contains("Result=success"), "{unit}");
    let journal = report.ok(1, "join journal");
    assert!(journal.contains("catalyst-join: joining through the API server at 10.0.2.2:6443"), "{journal}");
    // apt asks for a flat repository's files as its Packages names them (`./name`).
    let asked: Vec<String> = server.asked.lock().unwrap().iter().map(|a| a.replace("/./", "/")).collect();
    for path in ["GET /Release.key", "GET /InRelease", &format!("GET /kubeadm_{version}-1.1_amd64.deb")] {
        assert!(asked.iter().any(|a| a.starts_with(path)), "the guest never asked for {path}: {asked:?}");
    }

    // Boot 2: the probe spoiled /etc/default/kubelet before rebooting; the node-IP unit wrote it
    // again, and the join unit did not run (the kubelet's kubeconfig exists).
    assert!(report.rebooted);
    assert_eq!(report.ok(2, "kubelet defaults"), node_ip);
    let calls: Vec<&str> = report.ok(2, "kubeadm calls").lines().collect();
    assert_eq!(calls.iter().filter(|c| c.starts_with("kubeadm join")).count(), FAILED_JOINS + 1, "no second join");
    assert!(report.ok(2, "join unit").contains("ConditionResult=no"));
    cluster.clean_up(&ns, &layout.hosts).await;
}
