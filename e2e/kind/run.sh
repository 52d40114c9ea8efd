#!/usr/bin/env bash
# End to end on a real cluster: create a kind cluster with the static CPU manager, install
# KubeVirt (software emulation, for runners without /dev/kvm), build and load the operator
# image, install the Helm chart, then run the same suite `cargo test` runs on the emulator.
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
helm install catalyst charts/catalyst-operator --namespace catalyst-system --create-namespace \
  --set image.repository=catalyst-operator --set image.tag=e2e --set image.pullPolicy=Never --wait --timeout 5m

echo "--- suite"
# The installed operator reconciles; the suite drives it and checks the results. Cases that
# need operator processes of their own (leader failover) or the emulator (fault injection,
# request counting) say they are skipped.
CATALYST_E2E_CLUSTER=kubeconfig CATALYST_E2E_OPERATOR=installed \
  cargo test --locked -p catalyst --test e2e -- --test-threads=2
