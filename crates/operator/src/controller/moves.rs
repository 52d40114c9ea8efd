//! A CatalystVM leaving its host (issue 22): the host's evacuation grants the move (its
//! `status.evacuation.moving` names the VM and where it goes, [`super::evacuation`]), and the
//! VM's reconcile carries it out, a step at a time, each decided by
//! [`catalyst_core::moving::next`] from what is seen now:
//!
//! 1. The VM's status records the move (`status.moving`) before anything else, so that the new
//!    host's reconcile keeps the ledger entry the next step writes.
//! 2. The new host's ledger takes the VM (compare-and-swap, room checked); the old host keeps
//!    it too: both hold its room until it runs on the new one.
//! 3. The VirtualMachine is rendered for the new host. A live move waits for `LiveUpdate` to
//!    carry the new node selector into the running instance, then creates a
//!    VirtualMachineInstanceMigration; a restart deletes the instance, and KubeVirt starts a new
//!    one from the template, on the new host.
//! 4. Once it no longer runs on the old host, the new host goes into the VM's status and the old
//!    host's ledger lets it go. A move that cannot go on is undone: the new host's ledger lets
//!    it go, the VM is rendered for its old host again, and `Moving=False` says why.

use super::conditions::{Wanted, wanted};
use super::{Context, Error, key_of, ledger_of, placement};
use catalyst_api::kubevirt::{VirtualMachineInstance, VirtualMachineInstanceMigration};
use catalyst_api::vm::{CatalystVMStatus, MoveStrategy, VmMove};
use catalyst_api::{CatalystHost, CatalystVM};
use catalyst_core::key::{HostName, ObjectKey};
use catalyst_core::moving::{self, Instance, Migration, Seen, Step, Strategy};
use catalyst_core::planner::model::spread_group;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use std::time::Duration;

/// The condition of a VM that is moving, or last moved or failed to.
pub const MOVING: &str = "Moving";

/// How soon a moving VM is looked at again: no watch of instances or migrations wakes it.
const STEP: Duration = Duration::from_secs(5);

/// The label KubeVirt's node selector pins an instance with.
const HOSTNAME: &str = "kubernetes.io/hostname";

/// What a move means for this reconcile.
#[derive(Default)]
pub struct Progress {
    /// The host to render the VirtualMachine for, when not the VM's own.
    pub render_on: Option<CatalystHost>,
    /// `Moving`, while a move goes on or when one just ended.
    pub condition: Option<Wanted>,
    /// When to look again.
    pub requeue: Option<Duration>,
}

/// Takes the VM's move (granted by `host`, its current host) one step on; `status` is what the
/// reconcile will write.
pub async fn advance(
    vm: &CatalystVM,
    host: &CatalystHost,
    status: &mut CatalystVMStatus,
    ctx: &Context,
) -> Result<Progress, Error> {
    let key = key_of(vm);
    let Some(current) = status.moving.clone() else {
        let evacuation = host.status.as_ref().and_then(|s| s.evacuation.as_ref());
        let Some(granted) = evacuation.and_then(|e| e.moving.iter().find(|m| m.vm == key.to_string())) else {
            // Not moving: a move this process began for it (and never wrote) holds no group.
            ended(vm, ctx);
            return Ok(Progress::default());
        };
        if let Some(other) = group_member_moving(vm, ctx) {
            let note = format!("waiting for {other}, of the same spread group, to finish its move");
            return Ok(Progress {
                render_on: None,
                condition: Some(wanted(MOVING, false, "WaitingForGroup", note)),
                requeue: Some(STEP),
            });
        }
        let strategy =
            if granted.strategy == "LiveMigrate" { MoveStrategy::LiveMigrate } else { MoveStrategy::Restart };
        let reason = evacuation.map(|e| e.reason.clone()).unwrap_or_default();
        status.moving = Some(VmMove { to: granted.to.clone(), strategy, reason, started: (ctx.clock)() });
        let note = format!("leaving CatalystHost {} for {} ({})", host.name_any(), granted.to, granted.strategy);
        ctx.event(&vm.object_ref(&()), EventType::Normal, "Moving", note.clone()).await;
        return Ok(Progress {
            render_on: None,
            condition: Some(wanted(MOVING, true, "Reserving", note)),
            requeue: Some(Duration::from_secs(1)),
        });
    };
    let Some(target) = ctx.stores.host(&current.to) else {
        return abandon(vm, host, status, &current, format!("CatalystHost {} is gone", current.to), ctx).await;
    };
    let strategy = match current.strategy {
        MoveStrategy::LiveMigrate => {
            Strategy::LiveMigrate { asked: vm.spec.move_strategy == Some(MoveStrategy::LiveMigrate) }
        }
        _ => Strategy::Restart,
    };
    let seen = Seen {
        target_node: target.spec.node_name.clone(),
        reserved: ledger_of(&target).any(|held| held == key),
        instance: instance(vm, ctx).await?,
        migration: migration(vm, ctx).await?,
    };
    let going = |reason: &'static str, message: String| Progress {
        render_on: Some(target.clone()),
        condition: Some(wanted(MOVING, true, reason, message)),
        requeue: Some(STEP),
    };
    let to = &HostName::from(current.to.as_str());
    Ok(match moving::next(strategy, &seen) {
        Step::Reserve => {
            let reserved = placement::reserve_move(vm, to, ctx).await?;
            if !reserved {
                return abandon(vm, host, status, &current, format!("CatalystHost {to} no longer has room"), ctx).await;
            }
            Progress {
                render_on: None,
                condition: Some(wanted(MOVING, true, "Reserving", format!("room reserved on CatalystHost {to}"))),
                requeue: Some(Duration::from_secs(1)),
            }
        }
        Step::AwaitSelector => going(
            "Retargeting",
            format!(
                "waiting for KubeVirt's LiveUpdate to carry the node selector of CatalystHost {to} into the running instance"
            ),
        ),
        Step::Migrate => {
            migrate(vm, ctx).await?;
            going("Migrating", format!("live-migrating to CatalystHost {to}"))
        }
        Step::AwaitMigration => going("Migrating", format!("live-migrating to CatalystHost {to}")),
        Step::Restart => {
            restart(vm, ctx).await?;
            going("Restarting", format!("restarting on CatalystHost {to}"))
        }
        Step::RestartInstead(why) => {
            if let Some(moving) = status.moving.as_mut() {
                moving.strategy = MoveStrategy::Restart;
            }
            let note = format!("KubeVirt cannot migrate it ({why}): it restarts on CatalystHost {to} instead");
            ctx.event(&vm.object_ref(&()), EventType::Normal, "RestartingInstead", note.clone()).await;
            going("Restarting", note)
        }
        Step::Complete => return complete(vm, host, &target, status, ctx).await,
        Step::Abandon(why) => return abandon(vm, host, status, &current, why, ctx).await,
    })
}

/// Another member of the VM's spread group that is moving, if one is (as the caches show it, or
/// as this process began it); otherwise the VM's own move is recorded as its group's.
fn group_member_moving(vm: &CatalystVM, ctx: &Context) -> Option<ObjectKey> {
    let group = spread_group(vm)?;
    let key = key_of(vm);
    let guards = ctx.stores.vms.state();
    let cached = super::valid(&guards).find(|other| {
        key_of(*other) != key
            && spread_group(other).as_ref() == Some(&group)
            && other.status.as_ref().is_some_and(|s| s.moving.is_some())
    });
    if let Some(other) = cached {
        return Some(key_of(other));
    }
    let mut begun = ctx.moving_groups.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match begun.get(&group) {
        Some(other) if *other != key => Some(other.clone()),
        _ => {
            begun.insert(group, key);
            None
        }
    }
}

/// The move ended: the VM's group may move another member.
fn ended(vm: &CatalystVM, ctx: &Context) {
    if let Some(group) = spread_group(vm) {
        let mut begun = ctx.moving_groups.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if begun.get(&group) == Some(&key_of(vm)) {
            begun.remove(&group);
        }
    }
}

/// The VM runs on its new host (or runs nowhere, and starts there): its status says so, the old
/// host's ledger lets it go, and its migration is deleted.
async fn complete(
    vm: &CatalystVM,
    from: &CatalystHost,
    to: &CatalystHost,
    status: &mut CatalystVMStatus,
    ctx: &Context,
) -> Result<Progress, Error> {
    status.host = Some(to.name_any());
    status.moving = None;
    ended(vm, ctx);
    placement::release(ctx, &HostName::of(from), &key_of(vm)).await?;
    delete_migration(vm, ctx).await?;
    let note = format!("moved from CatalystHost {} to {}", from.name_any(), to.name_any());
    ctx.event(&vm.object_ref(&()), EventType::Normal, "Moved", note.clone()).await;
    Ok(Progress { render_on: Some(to.clone()), condition: Some(wanted(MOVING, false, "Moved", note)), requeue: None })
}

/// The move cannot go on: the new host lets the VM go, and it stays where it is.
async fn abandon(
    vm: &CatalystVM,
    from: &CatalystHost,
    status: &mut CatalystVMStatus,
    current: &VmMove,
    why: String,
    ctx: &Context,
) -> Result<Progress, Error> {
    placement::release(ctx, &HostName::from(current.to.as_str()), &key_of(vm)).await?;
    delete_migration(vm, ctx).await?;
    status.moving = None;
    ended(vm, ctx);
    let note = format!("could not move from CatalystHost {} to {}: {why}", from.name_any(), current.to);
    ctx.event(&vm.object_ref(&()), EventType::Warning, "MoveFailed", note.clone()).await;
    Ok(Progress { render_on: None, condition: Some(wanted(MOVING, false, "MoveFailed", note)), requeue: None })
}

/// The VM's instance as a move reads it.
async fn instance(vm: &CatalystVM, ctx: &Context) -> Result<Option<Instance>, Error> {
    let api: Api<VirtualMachineInstance> = Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default());
    let read = api.get_opt(&vm.name_any()).await;
    let found = read.map_err(|source| Error::ReadInstance { vm: key_of(vm), source })?;
    Ok(found.map(|instance| {
        let status = instance.status.unwrap_or_default();
        let not_migratable = status
            .conditions
            .iter()
            .find(|c| c.type_ == "LiveMigratable" && c.status == "False")
            .map(|c| c.message.clone().or(c.reason.clone()).unwrap_or_default());
        Instance {
            node: status.node_name,
            selects: instance.spec.node_selector.get(HOSTNAME).cloned(),
            running: status.phase.as_deref() == Some("Running"),
            not_migratable,
        }
    }))
}

fn migrations(vm: &CatalystVM, ctx: &Context) -> Api<VirtualMachineInstanceMigration> {
    Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default())
}

/// The move's migration, if one was made.
async fn migration(vm: &CatalystVM, ctx: &Context) -> Result<Option<Migration>, Error> {
    let read = migrations(vm, ctx).get_opt(&catalyst_core::render::migration_name(vm)).await;
    let found = read.map_err(|source| Error::Migrate { vm: key_of(vm), source })?;
    Ok(found.map(|m| match m.status.and_then(|s| s.phase).as_deref() {
        Some("Succeeded") => Migration::Succeeded,
        Some("Failed") => Migration::Failed("KubeVirt reports the migration Failed".into()),
        _ => Migration::Underway,
    }))
}

async fn migrate(vm: &CatalystVM, ctx: &Context) -> Result<(), Error> {
    match migrations(vm, ctx).create(&PostParams::default(), &catalyst_core::render::migration(vm)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.code == 409 => Ok(()),
        Err(source) => Err(Error::Migrate { vm: key_of(vm), source }),
    }
}

async fn delete_migration(vm: &CatalystVM, ctx: &Context) -> Result<(), Error> {
    match migrations(vm, ctx).delete(&catalyst_core::render::migration_name(vm), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
        Err(source) => Err(Error::Migrate { vm: key_of(vm), source }),
    }
}

/// Deletes the VM's instance: KubeVirt makes a new one from the VirtualMachine's template.
async fn restart(vm: &CatalystVM, ctx: &Context) -> Result<(), Error> {
    let api: Api<VirtualMachineInstance> = Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default());
    match api.delete(&vm.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
        Err(source) => Err(Error::DeleteChild { kind: "VirtualMachineInstance", name: key_of(vm).to_string(), source }),
    }
}
