#!/usr/bin/env bash
# End to end on a real cluster: create a kind cluster with the static CPU manager, install
# KubeVirt (software emulation, for runners without /dev/kvm), build and load the operator
# image, install the Helm chart, then run the same suite `cargo test` runs on the emulator, and
# a real drain (drain.sh).
#
# Needs docker, kind, kubectl, helm and cargo. Environment:
#   CLUSTER           kind cluster name (default catalyst-e2e)
#   KUBEVIRT_VERSION  KubeVirt release (default v1.9.0)
#   KEEP_CLUSTER=1    keep the cluster afterwards
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${CLUSTER:-catalyst-e2e}
KUBEVIRT_VERSION=${KUBEVIRT_VERSION:-v1.9.0}
IMAGE=catalyst-operator:e2e
export KUBECONFIG=${KUBECONFIG:-$(mktemp -d)/kubeconfig}

cleanup() {
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

echo "--- kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --config e2e/kind/cluster.yaml --kubeconfig "$KUBECONFIG" --wait 120s

echo "--- KubeVirt $KUBEVIRT_VERSION (software emulation)"
kubectl apply -f "https://github.com/kubevirt/kubevirt/releases/download/${KUBEVIRT_VERSION}/kubevirt-operator.yaml"
kubectl apply -f "https://github.com/kubevirt/kubevirt/releases/download/${KUBEVIRT_VERSION}/kubevirt-cr.yaml"
kubectl -n kubevirt patch kubevirt kubevirt --type merge \
  -p '{"spec":{"configuration":{"developerConfiguration":{"useEmulation":true,"featureGates":["CPUManager","NUMA"]}}}}'
kubectl -n kubevirt wait kubevirt kubevirt --for condition=Available --timeout=10m

echo "--- operator image"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

echo "--- Helm chart"
# The installed operator proves the image and the chart deploy and become Ready. It watches
# only its own namespace and a pool of hosts no test uses, so it leaves the suite's objects to
# the suite's own operators.
helm install catalyst charts/catalyst-operator --namespace catalyst-system --create-namespace \
  --set image.repository=catalyst-operator --set image.tag=e2e --set image.pullPolicy=Never \
  --set 'watchNamespaces={catalyst-system}' --set hostSelector=catalyst.io/pool=installed \
  --wait --timeout 5m

echo "--- suite"
# Each test runs the operator binary scoped to its own namespace and pool of hosts
# (--host-selector), in parallel as nextest runs them, and cleans up while that operator still
# runs: the run leaves no namespace, host or ledger entry behind.
CATALYST_E2E_CLUSTER=kubeconfig cargo nextest run --locked -p catalyst-e2e
leftovers=$(kubectl get chost -l catalyst.io/pool -o name)
if [ -n "$leftovers" ]; then
  echo "the suite left hosts behind: $leftovers" >&2
  exit 1
fi

echo "--- a real drain (the chart's operator, real KubeVirt)"
bash e2e/kind/drain.sh
