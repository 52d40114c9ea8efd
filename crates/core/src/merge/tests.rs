use super::*;
use crate::manifest::parse;

const HOSTS: &str = r#"
apiVersion: catalyst.io/v1alpha1
kind: CatalystHost
metadata: {name: h1}
spec: {nodeName: n1, capacity: {cpu: 32, memory: 128Gi}}
status: {vms: [team/api]}
---
apiVersion: catalyst.io/v1alpha1
kind: CatalystHost
metadata: {name: h2}
spec: {nodeName: n2, capacity: {cpu: 16, memory: 64Gi}}
"#;

fn vm(name: &str, cpu: u32, host: Option<&str>) -> String {
    let status = host.map(|h| format!("status: {{host: {h}}}\n")).unwrap_or_default();
    format!(
        "---\napiVersion: catalyst.io/v1alpha1\nkind: CatalystVM\nmetadata: {{name: {name}, namespace: team}}\n\
         spec: {{cpu: {cpu}, memory: 32Gi, bootDisk: {{containerDisk: {{image: img}}}},\n\
         node: {{joinSecretName: join, software: {{kubernetesVersion: v1.35}}}}}}\n{status}"
    )
}

fn group(name: &str, vm: &str, replicas: u32) -> String {
    format!(
        "---\napiVersion: catalyst.io/v1alpha1\nkind: ServiceGroup\nmetadata: {{name: {name}, namespace: team}}\n\
         spec: {{vm: {vm}, replicas: {replicas}, cpu: 2, memory: 2Gi, template: {{image: img}}}}\n"
    )
}

fn manifests(text: &str) -> Manifests {
    let (manifests, errors) = parse("test.yaml", text);
    assert!(errors.is_empty(), "{errors:?}");
    manifests
}

fn live(text: &str) -> Live {
    let m = manifests(text);
    Live { hosts: m.hosts, vms: m.vms, groups: m.groups }
}

struct Merged {
    plan: Plan,
    report: MergeReport,
}

fn merge(live_text: &str, files_text: &str) -> Merged {
    let live = live(live_text);
    let inputs = inputs(&live, &manifests(files_text), &Overhead::default(), &HostPool::default());
    let before = planner::plan(&inputs.before);
    let plan = planner::plan(&inputs.after);
    let report = compare(&live, &inputs.merged, &before, &plan);
    Merged { plan, report }
}

#[test]
fn the_files_replace_live_specs_but_keep_the_live_status_and_the_objects_they_do_not_name() {
    let running = format!("{HOSTS}{}{}", vm("api", 8, Some("h1")), vm("batch", 4, None));
    let merged = overlay(&live(&running), &manifests(&vm("api", 12, None)));
    let api = merged.vms.iter().find(|v| v.name_any() == "api").unwrap();
    assert_eq!(api.spec.cpu, 12);
    assert_eq!(api.status.as_ref().and_then(|s| s.host.as_deref()), Some("h1"));
    assert!(merged.vms.iter().any(|v| v.name_any() == "batch"));
    assert_eq!(merged.hosts[0].status.as_ref().unwrap().vms, ["team/api"]);
}

#[test]
fn a_new_vm_is_placed_and_a_running_one_left_alone() {
    let running = format!("{HOSTS}{}", vm("api", 8, Some("h1")));
    let files = format!("{}{}", vm("api", 8, None), vm("web", 8, None));
    let merged = merge(&running, &files);
    let report = &merged.report;
    assert_eq!(report.placements.len(), 1);
    assert_eq!(report.placements[0].vm, "team/web");
    assert!(report.placements[0].host.is_some());
    assert!(report.restarts.is_empty());
    assert_eq!(report.untouched, 1);
    assert!(merged.plan.fits);
}

#[test]
fn more_cores_for_a_running_vm_is_a_restart_and_names_the_fields() {
    let running = format!("{HOSTS}{}", vm("api", 8, Some("h1")));
    let report = merge(&running, &vm("api", 10, None)).report;
    assert_eq!(report.restarts.len(), 1, "{report:?}");
    let restart = &report.restarts[0];
    assert_eq!((restart.vm.as_str(), restart.host.as_str()), ("team/api", "h1"));
    assert!(restart.changes.contains(&"domain.cpu.cores: 8 → 10".to_string()), "{:?}", restart.changes);
    assert!(restart.changes.iter().any(|c| c.starts_with("domain.resources.requests.cpu")), "{:?}", restart.changes);
}

#[test]
fn a_change_live_update_carries_is_not_a_restart() {
    let running = format!("{HOSTS}{}", vm("api", 8, Some("h1")));
    let live = live(&running);
    let old = &live.vms[0];
    let mut moved = old.clone();
    moved.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let on = |node| OnHost::node(node);
    assert!(restart_changes(old, &moved, on("n1")).is_empty());
    // The guest memory alone is live-updatable; its requests and limits are not.
    moved.spec.memory = k8s_openapi::apimachinery::pkg::api::resource::Quantity("48Gi".into());
    let changes = restart_changes(old, &moved, on("n1"));
    assert!(!changes.iter().any(|c| c.starts_with("domain.memory.guest")), "{changes:?}");
    assert!(changes.contains(&"domain.resources.limits.memory: 32Gi → 48Gi".to_string()), "{changes:?}");
}

#[test]
fn a_group_that_grows_past_its_vm_no_longer_fits() {
    let running = format!("{HOSTS}{}{}", vm("api", 8, Some("h1")), group("svc", "api", 2));
    let merged = merge(&running, &group("svc", "api", 6));
    assert_eq!(merged.report.misfits, ["team/svc"]);
    assert!(!merged.plan.fits);
    assert!(table(&merged.report).contains("team/svc would no longer fit its VM"));
}

#[test]
fn a_vm_no_host_takes_is_reported_without_one() {
    let running = format!("{HOSTS}{}", vm("api", 8, Some("h1")));
    let report = merge(&running, &vm("huge", 64, None)).report;
    assert_eq!(report.placements, [Placement { vm: "team/huge".into(), host: None }]);
    assert!(table(&report).contains("place team/huge: no host takes it"));
}
