//! One VM's move to another host, one step at a time, each decided from what is seen now (the
//! new host's ledger, the VirtualMachineInstance, the migration), so that an operator that
//! restarts half-way picks the move up where it stands.
//!
//! How KubeVirt moves a VM (kubevirt v1.9.0, read for issue 22; `/docs` has the citations):
//! - A VM's instance is pinned by `nodeSelector: kubernetes.io/hostname`, and a migration's
//!   target pod copies the instance's selector (`createTargetPod`,
//!   `pkg/virt-controller/watch/migration/migration.go`); `addedNodeSelector` cannot override
//!   it (the instance's value wins on the same key). So a live move first changes the
//!   VirtualMachine's selector, which the `LiveUpdate` rollout strategy (the default since
//!   v1.6) copies into the running instance (`handleAffinityChangeRequest`,
//!   `pkg/virt-controller/watch/vm/vm.go`) without a restart; then a
//!   `VirtualMachineInstanceMigration` moves it. Nothing migrates it by itself.
//! - A restart (deleting the instance; `runStrategy: Always` makes a new one from the
//!   VirtualMachine's template, `SetupVMIFromVM`) starts it on the new host. An instance made
//!   before the selector changed and left Pending is deleted again.
//! - Whether an instance can migrate is KubeVirt's `LiveMigratable` condition
//!   (`pkg/virt-handler/vm.go`, `calculateLiveMigrationCondition`).

/// What is seen of the VM's instance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Instance {
    /// The node it runs on (`status.nodeName`), once scheduled.
    pub node: Option<String>,
    /// The node its `nodeSelector` names (`kubernetes.io/hostname`).
    pub selects: Option<String>,
    /// Whether it runs (phase `Running`).
    pub running: bool,
    /// KubeVirt's `LiveMigratable` condition: false with its message when it cannot migrate.
    pub not_migratable: Option<String>,
}

/// What became of the move's migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migration {
    Underway,
    Succeeded,
    Failed(String),
}

/// Everything a step is decided from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The node of the host the VM goes to.
    pub target_node: String,
    /// Whether that host's ledger holds the VM.
    pub reserved: bool,
    /// The VM's instance, if it has one.
    pub instance: Option<Instance>,
    /// The move's migration, if one was made.
    pub migration: Option<Migration>,
}

/// How the move goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    LiveMigrate {
        /// The user asked for it (`moveStrategy: LiveMigrate`); otherwise it was the default,
        /// and a VM that turns out not to migrate restarts instead.
        asked: bool,
    },
    Restart,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write the VM into the new host's ledger (a compare-and-swap, room checked).
    Reserve,
    /// Wait for `LiveUpdate` to carry the new selector into the running instance.
    AwaitSelector,
    /// Create the migration.
    Migrate,
    /// Wait for the migration.
    AwaitMigration,
    /// Delete the instance, so that a new one starts on the new host.
    Restart,
    /// The VM no longer runs on its old host: write the new host into its status and release
    /// the old host's ledger entry.
    Complete,
    /// It cannot migrate and was not asked to: restart it instead.
    RestartInstead(String),
    /// The move cannot go on: undo the reservation and say why.
    Abandon(String),
}

/// The next step of a move with `strategy`, from what is `seen`. The VirtualMachine is rendered
/// for the new host on every reconcile of a moving VM, before this is asked.
pub fn next(strategy: Strategy, seen: &Seen) -> Step {
    if !seen.reserved {
        return Step::Reserve;
    }
    let on_target = |i: &Instance| i.node.as_deref() == Some(seen.target_node.as_str());
    let Some(instance) = &seen.instance else {
        // Nothing runs: when it starts, it starts from the template, on the new host.
        return Step::Complete;
    };
    if on_target(instance) && instance.running {
        return Step::Complete;
    }
    match strategy {
        Strategy::LiveMigrate { asked } => {
            if !instance.running && seen.migration.is_none() {
                // Not running (yet, or any more): there is nothing to carry over.
                return restart(instance, &seen.target_node);
            }
            if let Some(why) = &instance.not_migratable {
                return if asked {
                    Step::Abandon(format!("KubeVirt cannot migrate it: {why}"))
                } else {
                    Step::RestartInstead(why.clone())
                };
            }
            match &seen.migration {
                None if instance.selects.as_deref() == Some(seen.target_node.as_str()) => Step::Migrate,
                None => Step::AwaitSelector,
                Some(Migration::Underway | Migration::Succeeded) => Step::AwaitMigration,
                Some(Migration::Failed(why)) => Step::Abandon(format!("its migration failed: {why}")),
            }
        }
        Strategy::Restart => restart(instance, &seen.target_node),
    }
}

/// A restart's step: delete an instance on another node, or one still Pending with the old
/// selector; an instance Pending for the new host only needs time.
fn restart(instance: &Instance, target: &str) -> Step {
    match (&instance.node, &instance.selects) {
        (Some(node), _) if node != target => Step::Restart,
        (None, Some(selects)) if selects != target => Step::Restart,
        _ => Step::Complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(instance: Option<Instance>, migration: Option<Migration>) -> Seen {
        Seen { target_node: "hv-2".into(), reserved: true, instance, migration }
    }

    fn on(node: &str, selects: &str) -> Instance {
        Instance { node: Some(node.into()), selects: Some(selects.into()), running: true, not_migratable: None }
    }

    const LIVE: Strategy = Strategy::LiveMigrate { asked: false };

    #[test]
    fn a_live_move_reserves_waits_for_the_selector_migrates_and_completes() {
        let unreserved = Seen { reserved: false, ..seen(Some(on("hv-1", "hv-1")), None) };
        assert_eq!(next(LIVE, &unreserved), Step::Reserve);
        assert_eq!(next(LIVE, &seen(Some(on("hv-1", "hv-1")), None)), Step::AwaitSelector);
        assert_eq!(next(LIVE, &seen(Some(on("hv-1", "hv-2")), None)), Step::Migrate);
        assert_eq!(next(LIVE, &seen(Some(on("hv-1", "hv-2")), Some(Migration::Underway))), Step::AwaitMigration);
        assert_eq!(next(LIVE, &seen(Some(on("hv-2", "hv-2")), Some(Migration::Succeeded))), Step::Complete);
    }

    #[test]
    fn a_vm_that_cannot_migrate_restarts_unless_migration_was_asked_for() {
        let stuck = Instance { not_migratable: Some("bridge on the pod network".into()), ..on("hv-1", "hv-2") };
        assert_eq!(
            next(LIVE, &seen(Some(stuck.clone()), None)),
            Step::RestartInstead("bridge on the pod network".into())
        );
        let asked = Strategy::LiveMigrate { asked: true };
        assert!(matches!(next(asked, &seen(Some(stuck), None)), Step::Abandon(_)));
        let failed = Some(Migration::Failed("target pod unschedulable".into()));
        assert_eq!(
            next(LIVE, &seen(Some(on("hv-1", "hv-2")), failed)),
            Step::Abandon("its migration failed: target pod unschedulable".into())
        );
    }

    #[test]
    fn a_restart_deletes_the_instance_until_one_runs_on_the_new_host() {
        assert_eq!(next(Strategy::Restart, &seen(Some(on("hv-1", "hv-2")), None)), Step::Restart);
        let pending_old = Instance { node: None, running: false, ..on("hv-1", "hv-1") };
        assert_eq!(next(Strategy::Restart, &seen(Some(pending_old), None)), Step::Restart);
        let pending_new = Instance { node: None, running: false, ..on("hv-2", "hv-2") };
        assert_eq!(next(Strategy::Restart, &seen(Some(pending_new), None)), Step::Complete);
        assert_eq!(next(Strategy::Restart, &seen(None, None)), Step::Complete, "a stopped VM moves by its template");
    }
}
