//! KubeVirt's part, played by a test where KubeVirt does not run (the suite installed its
//! stand-in CRDs): what virt-controller and virt-handler do with a namespace's VirtualMachines,
//! as far as a move needs it (kubevirt v1.9.0, read for issue 22):
//! - each VirtualMachine has a running instance on the node its template's selector names,
//!   made again when it is deleted (`runStrategy: Always`, `SetupVMIFromVM`);
//! - `LiveUpdate` carries a changed selector into the running instance
//!   (`handleAffinityChangeRequest`);
//! - a migration moves the instance to the node its selector names, then Succeeds (the target
//!   virt-handler's `ackMigrationCompletion` sets `status.nodeName`).

use catalyst_api::kubevirt::{VirtualMachine, VirtualMachineInstance, VirtualMachineInstanceMigration};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HOSTNAME: &str = "kubernetes.io/hostname";

/// The player, until dropped; `migrated` lists the instances it migrated.
pub struct Player {
    task: tokio::task::JoinHandle<()>,
    pub migrated: Arc<Mutex<Vec<String>>>,
}

impl Drop for Player {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Player {
    pub fn start(client: &Client, namespace: &str) -> Player {
        let migrated = Arc::new(Mutex::new(Vec::new()));
        let (client, namespace, record) = (client.clone(), namespace.to_string(), migrated.clone());
        let task = tokio::spawn(async move {
            loop {
                play(&client, &namespace, &record).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Player { task, migrated }
    }
}

async fn play(client: &Client, namespace: &str, migrated: &Mutex<Vec<String>>) {
    let machines: Api<VirtualMachine> = Api::namespaced(client.clone(), namespace);
    let instances: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), namespace);
    let migrations: Api<VirtualMachineInstanceMigration> = Api::namespaced(client.clone(), namespace);
    let Ok(machines) = machines.list(&Default::default()).await else { return };
    for machine in machines {
        let name = machine.name_any();
        let Some(node) = machine.spec.template.spec.node_selector.get(HOSTNAME).cloned() else { continue };
        let selector = json!({HOSTNAME: node});
        match instances.get_opt(&name).await {
            Ok(None) => {
                let instance = serde_json::from_value(json!({
                    "metadata": {"name": name}, "spec": {"nodeSelector": selector}
                }))
                .unwrap();
                if instances.create(&PostParams::default(), &instance).await.is_ok() {
                    set_status(&instances, &name, json!({"phase": "Running", "nodeName": node})).await;
                }
            }
            Ok(Some(instance)) => {
                if instance.spec.node_selector.get(HOSTNAME) != Some(&node) {
                    let patch = json!({"spec": {"nodeSelector": selector}});
                    let _ = instances.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
                }
            }
            Err(_) => continue,
        }
        let Ok(list) = migrations.list(&Default::default()).await else { continue };
        for migration in list.items.iter().filter(|m| m.spec.vmi_name == name && m.status.is_none()) {
            set_status(&instances, &name, json!({"phase": "Running", "nodeName": node})).await;
            let done = json!({"status": {"phase": "Succeeded"}});
            let params = PatchParams::default();
            if migrations.patch_status(&migration.name_any(), &params, &Patch::Merge(&done)).await.is_ok() {
                migrated.lock().unwrap().push(name.clone());
            }
        }
    }
}

async fn set_status(instances: &Api<VirtualMachineInstance>, name: &str, status: serde_json::Value) {
    let patch = json!({ "status": status });
    let _ = instances.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await;
}
