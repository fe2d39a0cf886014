#!/usr/bin/env bash
# Real-cluster end-to-end suite for the operator (see e2e/README.md).
# Runs only when KUBECONFIG points at a cluster; otherwise says so and
# exits 0. Everything it creates lives in a throwaway namespace that is
# deleted at the end; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${KUBECONFIG:-}" ]; then
    echo "e2e: SKIPPED - KUBECONFIG is not set, so there is no cluster to test against (see e2e/README.md)"
    exit 0
fi
if ! kubectl version --request-timeout=5s >/dev/null 2>&1; then
    echo "e2e: FAILED - KUBECONFIG=$KUBECONFIG is set but the cluster does not answer" >&2
    exit 1
fi

NS="thesa-e2e-$$"
LOG=$(mktemp)
step() { echo "e2e: $*"; }
cleanup() {
    [ -n "${OPERATOR_PID:-}" ] && kill "$OPERATOR_PID" 2>/dev/null || true
    kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
    rm -f "$LOG"
}
trap cleanup EXIT

step "applying the CRDs"
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s \
    crd/thesadefinitions.thesa.io crd/thesadeployments.thesa.io >/dev/null

step "namespace $NS with the sample specs and secrets"
kubectl create namespace "$NS" >/dev/null
kubectl -n "$NS" create configmap thesa-backend-specs --from-file=specs/ >/dev/null
kubectl -n "$NS" create secret generic thesa-db-credentials --from-literal=dsn=postgres://e2e >/dev/null
kubectl -n "$NS" create secret generic thesa-redis --from-literal=addr=redis:6379 >/dev/null
kubectl -n "$NS" create secret generic thesa-service-tokens --from-literal=customers-svc=e2e >/dev/null

step "the Helm chart renders and the API server accepts it (server-side dry run)"
bash scripts/validate-manifests.sh >/dev/null   # also installs helm-python-sdk into target/py
CHART=$(mktemp)
target/py/bin/python - "$NS" >"$CHART" <<'PY'
import sys, yaml
from helm_python import Chart
files = Chart.load("charts/thesa-operator").render({}, name="thesa-e2e", namespace=sys.argv[1])
docs = [d for p, t in sorted(files.items()) if not p.endswith(".txt") for d in yaml.safe_load_all(t) if d]
yaml.safe_dump_all(docs, sys.stdout)
PY
kubectl apply --dry-run=server -f "$CHART" >/dev/null
rm -f "$CHART"

step "starting the operator (log: $LOG)"
cargo build --locked -q -p thesa-operator
target/debug/thesa-operator run --namespace "$NS" --leader-elect false \
    --metrics-addr 127.0.0.1:18081 >"$LOG" 2>&1 &
OPERATOR_PID=$!

step "applying the sample ThesaDeployment and definitions"
kubectl -n "$NS" apply -f samples/thesadeployment.yaml -f samples/definitions/ >/dev/null
for d in orders inventory customers; do
    kubectl -n "$NS" wait --for=condition=Accepted --timeout=120s "tdef/$d" >/dev/null
done
kubectl -n "$NS" wait --for=jsonpath='{.status.definitions.accepted}'=3 --timeout=60s tdep/thesa >/dev/null
kubectl -n "$NS" get deployment thesa configmap/thesa-definitions hpa/thesa pdb/thesa >/dev/null
step "3 definitions accepted; Deployment, ConfigMaps, HPA and PDB exist"

step "breaking the orders definition"
kubectl -n "$NS" patch tdef orders --type json \
    -p '[{"op":"replace","path":"/spec/pages/0/table/data_source/operation_id","value":"listOrdersTypo"}]' >/dev/null
kubectl -n "$NS" wait --for=condition=Accepted=False --timeout=60s tdef/orders >/dev/null
kubectl -n "$NS" wait --for=condition=DefinitionsValid=False --timeout=60s tdep/thesa >/dev/null
served=$(kubectl -n "$NS" get configmap thesa-definitions -o jsonpath='{.data.orders\.yaml}')
grep -q 'operation_id: listOrders$' <<<"$served" || { echo "e2e: FAILED - the broken revision reached the ConfigMap" >&2; exit 1; }
step "rejected; the previous revision keeps serving"

step "fixing it"
kubectl -n "$NS" patch tdef orders --type json \
    -p '[{"op":"replace","path":"/spec/pages/0/table/data_source/operation_id","value":"listOrders"},{"op":"replace","path":"/spec/version","value":"2.1.1"}]' >/dev/null
kubectl -n "$NS" wait --for=condition=Accepted --timeout=60s tdef/orders >/dev/null
kubectl -n "$NS" wait --for=condition=DefinitionsValid --timeout=60s tdep/thesa >/dev/null
step "accepted again"
echo "e2e: PASSED"
