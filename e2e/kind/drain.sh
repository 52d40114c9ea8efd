#!/usr/bin/env bash
# A real drain, against real KubeVirt: the chart's operator (run.sh installed it, watching
# catalyst-system and the hosts labelled catalyst.io/pool=installed) places a small VM on one
# kind worker; `kubectl catalyst drain` puts that host in maintenance, and the VM must restart
# on the other worker, its old host's ledger released. Its interface is bridged on the pod
# network, which KubeVirt cannot live-migrate, so it moves by restart (moveStrategy unset).
# Called by run.sh with KUBECONFIG set; removes what it creates.
set -euo pipefail
cd "$(dirname "$0")/../.."

catalyst() { cargo run --quiet --locked --bin kubectl-catalyst -- "$@"; }

cleanup() {
  kubectl -n catalyst-system delete catalystvm drain-probe --ignore-not-found --wait=true >/dev/null || true
  kubectl delete catalysthost drain-a drain-b --ignore-not-found >/dev/null || true
}
trap cleanup EXIT

CLUSTER=${CLUSTER:-catalyst-e2e}
host() { # name, kind node
  kubectl apply -f - <<YAML
apiVersion: catalyst.io/v1alpha1
kind: CatalystHost
metadata: {name: $1, labels: {catalyst.io/pool: installed}}
spec:
  nodeName: $2
  capacity: {cpu: 3, memory: 3Gi}
YAML
}
# drain-a alone first, so that the planner can only put the VM there; then drain-b.
host drain-a "$CLUSTER-worker"
kubectl apply -f - <<YAML
apiVersion: catalyst.io/v1alpha1
kind: CatalystVM
metadata: {name: drain-probe, namespace: catalyst-system}
spec:
  cpu: 2
  memory: 1Gi
  node: {reservedMemory: 256Mi}   # it only boots (cirros), never joins
  isolateEmulatorThread: false
  bootDisk:
    containerDisk: {image: quay.io/kubevirt/cirros-container-disk-demo:${KUBEVIRT_VERSION:-v1.9.0}}
YAML

running_on() {
  kubectl -n catalyst-system get vmi drain-probe -o jsonpath='{.status.phase} {.status.nodeName}' 2>/dev/null || true
}
wait_for() { # description, command that prints what is compared, expected
  for _ in $(seq 120); do
    [ "$($2)" = "$3" ] && return 0
    sleep 5
  done
  echo "timed out waiting for $1 (last: '$($2)', want '$3')" >&2
  kubectl get chost,cvm -A -o yaml >&2
  exit 1
}

wait_for "the VM to run on drain-a" running_on "Running $CLUSTER-worker"
host drain-b "$CLUSTER-worker2"
catalyst drain drain-a --dry-run
catalyst drain drain-a
evacuation() { kubectl get chost drain-a -o jsonpath='{.status.evacuation.state}'; }
wait_for "drain-a to be emptied" evacuation Complete
wait_for "the VM to run on drain-b" running_on "Running $CLUSTER-worker2"
host_of() { kubectl -n catalyst-system get cvm drain-probe -o jsonpath='{.status.host}'; }
[ "$(host_of)" = drain-b ] || { echo "the VM's status names $(host_of), not drain-b" >&2; exit 1; }
ledger() { kubectl get chost drain-a -o jsonpath='{.status.vms}'; }
[ -z "$(ledger)" ] || { echo "drain-a's ledger still holds $(ledger)" >&2; exit 1; }
catalyst status
catalyst undrain drain-a
echo "drain: the VM moved from drain-a to drain-b by restart"
