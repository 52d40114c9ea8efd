//! CatalystVM -> KubeVirt VirtualMachine (and its cloud-init Secret), placed by
//! [`super::placement`]: prepare (validate, place, check the host, read the join Secret), apply
//! the children, derive the status, report; on deletion, the VirtualMachine goes before the
//! VM's place in its host's ledger is released.

use super::apply;
use super::conditions::{NODE_JOINED, READY, RESTART_REQUIRED, SCHEDULED, Wanted, wanted};
use super::join_token::Signing;
use super::placement::{Placement, place};
use super::refusal::Refusal;
use super::{
    Context, Error, FINALIZER, join_token, key_of, ledger_of, moves, node_is_ready, object_id, object_ref, pinning,
    placement, reconcile_guarded, refuse, report, valid, verify,
};
use catalyst_api::kubevirt::{PrintableStatus, VirtualMachine, VirtualMachineStatus};
use catalyst_api::vm::{CatalystVMStatus, RunStrategy, VmPhase};
use catalyst_api::{CatalystHost, CatalystVM, Resources, ServiceGroup};
use catalyst_core::key::{HostName, ObjectKey};
use catalyst_core::node_identity::is_labelled_as;
use catalyst_core::planner::{self, GroupModel, HostModel, Overhead, Res, VmModel};
use catalyst_core::render::token::BootstrapToken;
use catalyst_core::render::{self, JoinCredentials};
use catalyst_core::validation::{node_name, summary, validate_vm};
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::DeleteParams;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How often a healthy VM is looked at again, to follow its VirtualMachine and node.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a node that claims the VM but is not verified yet is checked again.
const RECHECK_NODE: Duration = Duration::from_secs(15);

pub async fn reconcile(guard: Arc<DeserializeGuard<CatalystVM>>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_guarded("CatalystVM", guard, ctx, |vm, ctx| async move {
        let api: Api<CatalystVM> = Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default());
        finalizer(&api, FINALIZER, Arc::new(vm), |event| async {
            match event {
                Finalizer::Apply(vm) => reconcile_vm(&vm, &ctx).await,
                Finalizer::Cleanup(vm) => cleanup(&vm, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    })
    .await
}

/// What a VM needs before its children are built.
struct Prepared {
    host: CatalystHost,
    join: Option<JoinCredentials>,
}

/// The pipeline: prepare ([`validate`], place, [`check_host`], read the join Secret), advance a
/// move, [`build`] and apply the children, keep the VM's own join token, derive the status from
/// what was applied, report.
async fn reconcile_vm(vm: &CatalystVM, ctx: &Context) -> Result<Action, Error> {
    let mut status = vm.status.clone().unwrap_or_default();
    let prepared = match prepare(vm, ctx, &mut status).await? {
        Ok(prepared) => prepared,
        Err(refusal) => return refuse_vm(vm, status, ctx, refusal).await,
    };
    // A move under way renders the VirtualMachine for the host it goes to.
    let progress = moves::advance(vm, &prepared.host, &mut status, ctx).await?;
    let machine = apply_children(vm, &prepared, progress.render_on.as_ref().unwrap_or(&prepared.host), ctx).await?;
    let node = ctx.stores.node(&node_name(vm));
    let signing = keep_token(vm, &prepared, &machine, node.as_deref(), ctx).await?;
    let derived = derive(vm, &prepared, &machine, node.as_deref(), &signing);
    status.phase = Some(derived.phase);
    status.virtual_machine_name = Some(vm.name_any());
    status.node_name = node.as_ref().map(|n| n.name_any());
    let groups = ctx.stores.groups_of_vm(&key_of(vm));
    let groups: Vec<ServiceGroup> = valid(&groups).cloned().collect();
    status.available = Some(left_for_groups(vm, &groups, &ctx.overhead, ctx.host_threads(vm)));
    status.topology_manager_policy = Some(catalyst_core::render::topology_manager_policy(&vm.spec).to_string());
    let host_report = pinning::read(ctx, &prepared.host.spec.node_name);
    let launchers = ctx.stores.launchers_of(&key_of(vm));
    let pinning::VmPinning { verdict, pinned, numa, trusted_for } =
        pinning::vm(vm, &prepared.host, &host_report, launchers, &ctx.overhead);
    ctx.metrics.verdicts("CatalystVM", &key_of(vm), "vm", [verdict.label()]);
    status.host_cpus = verdict.holding.as_ref().map(|h| h.cpus.to_string());
    status.host_numa = verdict.holding.map(|h| h.numa.into_iter().collect()).unwrap_or_default();
    let old_conditions = vm.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    for condition in std::iter::once(&pinned).chain(&numa) {
        pinning::warn_when_false(&vm.object_ref(&()), old_conditions, condition, ctx).await;
    }
    let (verified, recheck) = verify::node(vm, &prepared.host, node.as_deref(), ctx).await?;
    let conditions: Vec<_> =
        derived.conditions.into_iter().chain([pinned, verified]).chain(numa).chain(progress.condition).collect();
    // Looked at again soon while its node is checked or its token waits for a signature, and
    // before its host's report stops being believed without a heartbeat.
    let soon = if recheck || signing != Signing::Fine { RECHECK_NODE } else { RESYNC };
    let soon = progress.requeue.map_or(soon, |step| step.min(soon));
    let next = Action::requeue(trusted_for.map_or(soon, |stale| stale.min(soon)));
    report(vm, vm.status.as_ref(), status, ctx, &conditions, false, next).await
}

/// The VM's own bootstrap token exists while its instance runs and its node is not yet
/// verified and Ready, and only then ([`join_token::keep`]).
async fn keep_token(
    vm: &CatalystVM,
    prepared: &Prepared,
    machine: &VirtualMachineStatus,
    node: Option<&Node>,
    ctx: &Context,
) -> Result<Signing, Error> {
    let Some(token) = prepared.join.as_ref().filter(|j| j.minted).and_then(|j| BootstrapToken::parse(&j.token)) else {
        return Ok(Signing::Fine);
    };
    let runs = matches!(machine.printable_status, Some(PrintableStatus::Running | PrintableStatus::Migrating));
    let joined = node.is_some_and(|n| is_labelled_as(n, &node_name(vm)) && node_is_ready(n));
    join_token::keep(vm, &token, runs && !joined, ctx).await
}

/// Whether the spec may be acted on: valid, and of node software that may join an API server
/// of minor release `server_minor` (0 while unknown).
pub fn validate(vm: &CatalystVM, server_minor: u32) -> Result<(), Refusal> {
    validate_vm(vm).map_err(|errors| Refusal::InvalidSpec { errors: summary(&errors) })?;
    let release =
        vm.spec.node.software.as_ref().and_then(|s| catalyst_core::release::Release::parse(&s.kubernetes_version));
    match release {
        Some(release) if server_minor > 0 => match catalyst_core::release::skew(release, server_minor) {
            Some(why) => Err(Refusal::VersionSkew { why }),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The VM's host, if it exists and holds the VM at its current size next to `others` (the
/// other VMs there).
pub fn check_host(
    vm: &CatalystVM,
    host_name: &str,
    host: Option<CatalystHost>,
    others: &[&CatalystVM],
    overhead: &Overhead,
) -> Result<CatalystHost, Refusal> {
    let host = host.ok_or_else(|| Refusal::HostMissing { host: host_name.to_string() })?;
    match resize_overcommits(vm, &host, others, overhead) {
        Some(why) => Err(Refusal::DoesNotFitHost { why }),
        None => Ok(host),
    }
}

/// Validates the spec, places the VM, checks its host and reads its join credentials. A
/// refusal leaves the VM's status phase as it was (or Pending when it has no host).
async fn prepare(
    vm: &CatalystVM,
    ctx: &Context,
    status: &mut CatalystVMStatus,
) -> Result<Result<Prepared, Refusal>, Error> {
    if let Err(refusal) = validate(vm, ctx.server_minor.load(std::sync::atomic::Ordering::Relaxed)) {
        status.phase = Some(VmPhase::while_refused(status.phase, status.host.is_some()));
        return Ok(Err(refusal));
    }
    let host_name = match place(vm, ctx).await? {
        Placement::On(host) => host,
        Placement::Nowhere(why) => {
            ctx.metrics.placement_failures.inc();
            status.phase = Some(VmPhase::Pending);
            return Ok(Err(Refusal::Unschedulable { why }));
        }
    };
    status.host = Some(host_name.to_string());
    // Until the VirtualMachine is applied, every way out is a refusal that changes nothing.
    status.phase = Some(VmPhase::while_refused(status.phase, true));
    let cached = ctx.stores.host(host_name.as_str());
    let guards = cached.as_ref().map(|host| others_on(vm, host, ctx)).unwrap_or_default();
    let others: Vec<&CatalystVM> = valid(&guards).collect();
    let host = match check_host(vm, host_name.as_str(), cached, &others, &ctx.overhead) {
        Ok(host) => host,
        Err(refusal) => return Ok(Err(refusal)),
    };
    Ok(read_join(vm, ctx).await?.map(|join| Prepared { host, join }))
}

/// The credentials of the Secret `spec.node.joinSecretName` names; none when it names none.
async fn read_join(vm: &CatalystVM, ctx: &Context) -> Result<Result<Option<JoinCredentials>, Refusal>, Error> {
    let Some(secret) = &vm.spec.node.join_secret_name else { return Ok(Ok(None)) };
    let namespace = vm.namespace().unwrap_or_default();
    // The Secrets are watched (by metadata): a missing one wakes the VM when it appears, and a
    // known one is read again only once its version changed.
    let secret_key = ObjectKey::beside(vm, secret);
    let Some(version) = ctx.stores.secret_version(&secret_key) else {
        return Ok(Err(Refusal::JoinSecretMissing { secret: secret.clone(), namespace }));
    };
    let id = object_id("Secret", &secret_key);
    let cached =
        ctx.join_secrets.lock().get(&id).filter(|(read_at, _)| *read_at == version).map(|(_, join)| join.clone());
    let join = match cached {
        Some(join) => join,
        None => {
            let read = Api::<Secret>::namespaced(ctx.client.clone(), &namespace).get_opt(secret).await;
            let read = read.map_err(|source| Error::ReadJoinSecret { secret: secret_key.clone(), source })?;
            match read.map(|found| JoinCredentials::from_secret(&found, ctx.mint_join_tokens)) {
                None => return Ok(Err(Refusal::JoinSecretMissing { secret: secret.clone(), namespace })),
                Some(Err(why)) => return Ok(Err(Refusal::JoinSecretInvalid { why })),
                Some(Ok(join)) => {
                    ctx.join_secrets.lock().insert(id, (version, join.clone()));
                    join
                }
            }
        }
    };
    Ok(Ok(Some(with_own_token(vm, join, ctx).await?)))
}

/// The credentials with the VM's own token, where the operator mints them.
async fn with_own_token(vm: &CatalystVM, mut join: JoinCredentials, ctx: &Context) -> Result<JoinCredentials, Error> {
    if join.minted {
        join.token = join_token::token_of(vm, ctx).await?.reveal();
    }
    Ok(join)
}

/// An Unschedulable VM is also reported as not Scheduled.
async fn refuse_vm(
    vm: &CatalystVM,
    status: CatalystVMStatus,
    ctx: &Context,
    refusal: Refusal,
) -> Result<Action, Error> {
    if let Refusal::Unschedulable { why } = &refusal {
        let reason = refusal.reason();
        let unscheduled = [wanted(SCHEDULED, false, reason, why.clone()), wanted(READY, false, reason, why.clone())];
        return report(vm, vm.status.as_ref(), status, ctx, &unscheduled, true, refusal.requeue()).await;
    }
    refuse(vm, vm.status.as_ref(), status, ctx, &refusal).await
}

/// The children a prepared VM should have on host `on`: its cloud-init Secret and its
/// VirtualMachine.
pub fn build(vm: &CatalystVM, join: Option<&JoinCredentials>, on: &CatalystHost) -> (Secret, VirtualMachine) {
    let host = render::OnHost::of(on);
    (render::cloud_init_secret(vm, host, join), render::virtual_machine(vm, host))
}

/// Applies what [`build`] makes; the VirtualMachine's status as the API server returned it.
async fn apply_children(
    vm: &CatalystVM,
    prepared: &Prepared,
    on: &CatalystHost,
    ctx: &Context,
) -> Result<VirtualMachineStatus, Error> {
    let namespace = vm.namespace().unwrap_or_default();
    let (secret, machine) = build(vm, prepared.join.as_ref(), on);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    apply::apply_known::<_, apply::Unread>(&secrets, secret, &ctx.known).await?;
    let machines: Api<VirtualMachine> = Api::namespaced(ctx.client.clone(), &namespace);
    let status: Option<VirtualMachineStatus> = apply::apply_known(&machines, machine, &ctx.known).await?;
    Ok(status.unwrap_or_default())
}

/// The VM's phase and its four conditions, derived from what KubeVirt and the node report.
struct Derived {
    phase: VmPhase,
    conditions: [Wanted; 4],
}

/// The phase from KubeVirt's summary, its readiness and the node's.
fn phase(run_strategy: RunStrategy, printable: &PrintableStatus, ready: bool, node_ready: bool) -> VmPhase {
    match (run_strategy, ready, node_ready) {
        (RunStrategy::Halted, false, _) => VmPhase::Halted,
        (_, true, true) => VmPhase::Ready,
        (_, true, false) => VmPhase::Running,
        _ if printable.is_failure() => VmPhase::Failed,
        _ if matches!(printable, PrintableStatus::Stopped | PrintableStatus::Unknown) => VmPhase::Scheduled,
        _ => VmPhase::Provisioning,
    }
}

fn derive(
    vm: &CatalystVM,
    prepared: &Prepared,
    machine: &VirtualMachineStatus,
    node: Option<&Node>,
    signing: &Signing,
) -> Derived {
    let name = vm.name_any();
    let host_name = prepared.host.name_any();
    let node_ready = node.is_some_and(node_is_ready);
    let printable = machine.printable_status.clone().unwrap_or(PrintableStatus::Unknown);
    let phase = phase(vm.spec.run_strategy, &printable, machine.ready == Some(true), node_ready);
    let joined = match (node, node_ready) {
        (Some(node), true) => wanted(NODE_JOINED, true, "NodeReady", format!("node {} is Ready", node.name_any())),
        (Some(node), false) => {
            wanted(NODE_JOINED, false, "NodeNotReady", format!("node {} is not Ready", node.name_any()))
        }
        (None, _) if prepared.join.is_none() => wanted(
            NODE_JOINED,
            false,
            "NoJoinSecret",
            "spec.node.joinSecretName is not set: the VM does not join the cluster",
        ),
        (None, _) => match signing {
            Signing::Fine => {
                wanted(NODE_JOINED, false, "Joining", format!("no node {} has registered yet", node_name(vm)))
            }
            Signing::Unsigned { id, waited } => wanted(
                NODE_JOINED,
                false,
                "TokenNotSigned",
                format!(
                    "kube-public/cluster-info has carried no signature for this VM's bootstrap token {id} for {}s, and \
                     kubeadm join's discovery waits for one: kube-controller-manager's bootstrapsigner makes it, when \
                     enabled (--controllers=*,bootstrapsigner,tokencleaner, as kubeadm sets them)",
                    waited.as_secs()
                ),
            ),
            Signing::NoClusterInfo => wanted(
                NODE_JOINED,
                false,
                "NoClusterInfo",
                "there is no kube-public/cluster-info, which kubeadm join's discovery reads: a cluster made by kubeadm has it",
            ),
        },
    };
    let ready = match phase {
        VmPhase::Ready => wanted(READY, true, "Ready", "the VM runs and its node is Ready"),
        VmPhase::Halted => wanted(READY, false, "Halted", "runStrategy is Halted"),
        VmPhase::Failed => {
            wanted(READY, false, "VirtualMachineFailed", format!("VirtualMachine {name} is {printable}"))
        }
        _ => wanted(READY, false, "Provisioning", format!("VirtualMachine {name} is {printable}")),
    };
    let scheduled = match &vm.spec.host {
        // A placed VM never moves; a new pin is reported, not followed.
        Some(pin) if *pin != host_name => wanted(
            SCHEDULED,
            true,
            "PinIgnored",
            format!(
                "spec.host names {pin}, but a placed VM never moves: it stays on CatalystHost {host_name} (re-create it to move it)"
            ),
        ),
        _ => wanted(
            SCHEDULED,
            true,
            "Placed",
            format!("on CatalystHost {host_name} (node {})", prepared.host.spec.node_name),
        ),
    };
    // KubeVirt applies some spec changes (cores, memory) only at the next start.
    let restart = match machine.conditions.iter().find(|c| c.type_ == RESTART_REQUIRED && c.status == "True") {
        Some(pending) => wanted(
            RESTART_REQUIRED,
            true,
            "SpecChangePending",
            format!("restart the VM to apply its new spec: {}", pending.message.clone().unwrap_or_default()),
        ),
        None => wanted(RESTART_REQUIRED, false, "UpToDate", "the VM runs its current spec"),
    };
    Derived { phase, conditions: [scheduled, joined, ready, restart] }
}

/// The other VMs that hold a place on `host`: those whose status names it, and those its ledger
/// holds that name no host yet (read through the caches; only this host's are modelled, as this
/// runs on every reconcile of a placed VM).
fn others_on(vm: &CatalystVM, host: &CatalystHost, ctx: &Context) -> Vec<Arc<DeserializeGuard<CatalystVM>>> {
    let mut guards = ctx.stores.vms_on(Some(HostName::of(host)));
    guards.extend(
        ledger_of(host)
            .filter_map(|key| ctx.stores.vms.get(&object_ref(&key)))
            .filter(|guard| guard.0.as_ref().is_ok_and(|other| other.status.as_ref().is_none_or(|s| s.host.is_none()))),
    );
    guards.retain(|guard| {
        guard.0.as_ref().is_ok_and(|other| {
            other.metadata.name != vm.metadata.name || other.metadata.namespace != vm.metadata.namespace
        })
    });
    guards
}

/// When a placed VM's new size no longer fits its host next to `others` (the other VMs there),
/// the reason; the planner never moves a running VM, so the change is refused.
pub fn resize_overcommits(
    vm: &CatalystVM,
    host: &CatalystHost,
    others: &[&CatalystVM],
    overhead: &Overhead,
) -> Option<String> {
    let used = others
        .iter()
        .copied()
        .chain(std::iter::once(vm))
        .fold(Res::ZERO, |sum, candidate| sum + VmModel::demand_of(candidate, overhead));
    let allocatable = HostModel::from_host(host).allocatable;
    (!allocatable.covers(&used)).then(|| {
        format!("with this spec the VMs on CatalystHost {} need {used}, more than its {allocatable}", host.name_any())
    })
}

/// What the VM's node still offers after the ServiceGroups (`groups`, the VM's valid ones) that
/// fit in it, on a host of `threads` threads per core.
pub fn left_for_groups(vm: &CatalystVM, groups: &[ServiceGroup], overhead: &Overhead, threads: u64) -> Resources {
    let groups: Vec<GroupModel> = groups.iter().map(GroupModel::from_group).collect();
    let model = VmModel::from_vm(vm, overhead);
    let (plans, _) = planner::fit_groups(&groups, &[&model], |_| threads);
    let taken = plans.iter().filter(|p| p.fits).fold(Res::ZERO, |sum, p| sum + p.demand);
    let left = model.offer(threads) - taken;
    left.into()
}

/// Deletes the VirtualMachine, waits for it to be gone, then releases the VM's place in its
/// host's ledger. Until then the finalizer stays.
async fn cleanup(vm: &CatalystVM, ctx: &Context) -> Result<Action, Error> {
    let key = key_of(vm);
    let machines: Api<VirtualMachine> = Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default());
    let failed = |source| Error::DeleteChild { kind: "VirtualMachine", name: key.to_string(), source };
    if let Some(machine) = machines.get_opt(&vm.name_any()).await.map_err(failed)? {
        if machine.metadata.deletion_timestamp.is_none() {
            machines.delete(&vm.name_any(), &DeleteParams::foreground()).await.map_err(failed)?;
        }
        return Err(Error::WaitingForDeletion(key));
    }
    if ctx.mint_join_tokens {
        join_token::revoke(vm, ctx).await?;
    }
    // The host the VM's status names is read even when the cache has not yet seen the
    // placement's ledger write; the cached ledgers add a host whose write the VM's status missed,
    // and a move's new host holds it too.
    let mut holders: BTreeSet<HostName> = vm.status.iter().filter_map(|s| s.host.clone()).map(HostName::from).collect();
    holders.extend(vm.status.iter().filter_map(|s| s.moving.as_ref().map(|m| HostName::from(m.to.clone()))));
    holders.extend(
        valid(&ctx.stores.hosts()).filter(|cached| ledger_of(cached).any(|held| held == key)).map(HostName::of),
    );
    for holder in holders {
        placement::release(ctx, &holder, &key).await?;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, cpu: u32) -> CatalystVM {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystVM",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"cpu": cpu, "memory": "8Gi", "bootDisk": {"containerDisk": {"image": "img"}},
                     "node": {"joinSecretName": "join", "software": {"kubernetesVersion": "v1.35"}}}
        }))
        .unwrap()
    }

    #[test]
    fn a_spec_is_validated_against_the_api_servers_release_from_data_alone() {
        let mut joining = vm("a", 8);
        joining.spec.node.join_secret_name = Some("join".into());
        joining.spec.node.software.as_mut().unwrap().kubernetes_version = "v1.35".into();
        assert!(validate(&joining, 0).is_ok(), "the server's release unknown: no skew to find");
        assert!(validate(&joining, 35).is_ok());
        assert!(matches!(validate(&joining, 31), Err(Refusal::VersionSkew { .. })));
        joining.spec.cpu = 0;
        assert!(matches!(validate(&joining, 35), Err(Refusal::InvalidSpec { .. })));
    }

    /// A host `h` of 16 cores and 64Gi, on node `n`.
    fn host_of_16_cores() -> CatalystHost {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystHost", "metadata": {"name": "h"},
            "spec": {"nodeName": "n", "capacity": {"cpu": 16, "memory": "64Gi"}}
        }))
        .unwrap()
    }

    #[test]
    fn a_missing_host_and_one_too_small_are_refused_and_the_children_built() {
        let host = host_of_16_cores();
        let overhead = Overhead::default();
        assert!(matches!(check_host(&vm("a", 4), "h", None, &[], &overhead), Err(Refusal::HostMissing { .. })));
        let full = check_host(&vm("a", 8), "h", Some(host.clone()), &[&vm("b", 8)], &overhead);
        assert!(matches!(full, Err(Refusal::DoesNotFitHost { .. })));
        let on = check_host(&vm("a", 4), "h", Some(host), &[&vm("b", 8)], &overhead).unwrap();
        let (secret, machine) = build(&vm("a", 4), None, &on);
        assert_eq!(secret.metadata.name.as_deref(), Some("a-cloud-init"));
        assert_eq!(machine.spec.template.spec.node_selector["kubernetes.io/hostname"], "n");
    }

    #[test]
    fn a_resize_past_the_host_is_refused_from_data_alone() {
        let host = host_of_16_cores();
        let b = vm("b", 8);
        let others = [&b];
        let overhead = Overhead::default();
        assert_eq!(resize_overcommits(&vm("a", 4), &host, &others, &overhead), None);
        let why = resize_overcommits(&vm("a", 8), &host, &others, &overhead).unwrap();
        assert!(why.contains("the VMs on CatalystHost h need 18.03 cores"), "{why}");
    }

    #[test]
    fn what_is_left_for_groups_counts_only_the_groups_that_fit() {
        let group = |name: &str, cpu: u32| -> ServiceGroup {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "catalyst.io/v1alpha1", "kind": "ServiceGroup",
                "metadata": {"name": name, "namespace": "team"},
                "spec": {"vm": "a", "replicas": 1, "cpu": cpu, "memory": "1Gi", "template": {"image": "img"}}
            }))
            .unwrap()
        };
        // 8 cores less the node's 1 and 0.5 of headroom: 6.5; 4 are taken, the 3 that do not
        // fit take nothing.
        let left = left_for_groups(&vm("a", 8), &[group("one", 4), group("two", 3)], &Overhead::default(), 1);
        assert_eq!(left.cpu.0, "2500m");
    }

    #[test]
    fn the_phase_follows_kubevirt_and_the_node() {
        use PrintableStatus as P;
        let always = RunStrategy::Always;
        assert_eq!(phase(always, &P::Running, true, true), VmPhase::Ready);
        assert_eq!(phase(always, &P::Running, true, false), VmPhase::Running, "the node has not joined");
        assert_eq!(phase(always, &P::ErrorUnschedulable, false, false), VmPhase::Failed);
        assert_eq!(phase(always, &P::CrashLoopBackOff, false, false), VmPhase::Failed);
        assert_eq!(phase(always, &P::Stopped, false, false), VmPhase::Scheduled);
        assert_eq!(phase(always, &P::Starting, false, false), VmPhase::Provisioning);
        assert_eq!(phase(always, &P::Other("WaitingForReceiver".into()), false, false), VmPhase::Provisioning);
        assert_eq!(phase(RunStrategy::Halted, &P::Stopped, false, false), VmPhase::Halted);
        assert_eq!(phase(RunStrategy::Halted, &P::Stopping, true, true), VmPhase::Ready, "still up while it stops");
    }
}
