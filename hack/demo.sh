#!/usr/bin/env bash
# make demo: CRDs, the operator (in the background), the sample ShardSet, the key map,
# and one more shard started with shardctl. `make demo-down` stops the operator.
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBECONFIG="$PWD/.cluster/kubeconfig"
NS="${NAMESPACE:-shard-demo}"
BIN=.venv/bin
PIDFILE=.cluster/operator.pid
LOG=.cluster/logs/operator.log

stop_operator() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill "$(cat "$PIDFILE")" && echo "demo: operator stopped"
  fi
  rm -f "$PIDFILE"
}

if [ "${1:-}" = "stop" ]; then stop_operator; exit 0; fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing the CRDs"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/shardsets.shards.anoma.net crd/shards.shards.anoma.net --timeout=60s
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null

step "Starting the operator for namespace $NS (log: $LOG)"
stop_operator
mkdir -p "$(dirname "$LOG")"
nohup "$BIN/shard-operator" run --namespace "$NS" --metrics-port 9464 >>"$LOG" 2>&1 &
echo $! >"$PIDFILE"
echo "operator pid $(cat "$PIDFILE"); metrics on http://127.0.0.1:9464/metrics"

REAL_NODE="$("$BIN/python" -c 'from localcluster import LocalCluster; print(LocalCluster().real_node.get("name") or "")')"
if [ -n "$REAL_NODE" ]; then
  step "Applying manifests/samples/shardset.yaml (the original's schema: a=5, b, c=15) on the real node $REAL_NODE"
  # the sample, with a template that selects the real node and tolerates its taint
  "$BIN/python" - <<'PY' | kubectl -n "$NS" apply --server-side -f -
import json, yaml
from localcluster.node import NODE_LABEL, TAINT_KEY
sample = yaml.safe_load(open("manifests/samples/shardset.yaml"))
sample["spec"]["template"] = {"spec": {
    "nodeSelector": {NODE_LABEL: "true"},
    "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]}}
print(json.dumps(sample))
PY
else
  step "Applying manifests/samples/shardset.yaml (the original's schema: a=5, b, c=15)"
  echo "demo: no real node here ($("$BIN/localcluster" status 2>/dev/null | grep '^real node' || true)):"
  echo "demo: the shards are KWOK simulations; they show Running and Ready but answer nothing"
  kubectl -n "$NS" apply --server-side -f manifests/samples/shardset.yaml
fi
kubectl -n "$NS" wait shardset/node-1 --for=condition=Ready --timeout=180s

step "The ShardSet, its Shards and their Pods and Services"
kubectl -n "$NS" get shardsets
kubectl -n "$NS" get shards
kubectl -n "$NS" get pods,services -l app.kubernetes.io/managed-by=shard-operator

step "The key map ($("$BIN/shardctl" key-map node-1))"
kubectl -n "$NS" get configmap "$("$BIN/shardctl" key-map node-1)" -o jsonpath='{.data}' | python3 -m json.tool

if [ -n "$REAL_NODE" ]; then
  step "The shard servers answering, through kubectl port-forward on 127.0.0.1"
  "$BIN/python" hack/demo_shards.py "$NS" node-1
fi

step "Starting one more shard: shardctl start-shard node-1 d --value 10"
"$BIN/shardctl" start-shard node-1 d --value 10 -n "$NS"
echo "lookup d -> $("$BIN/shardctl" lookup node-1 d -n "$NS")"
echo "start a again (with 99):"
"$BIN/shardctl" start-shard node-1 a --value 99 -n "$NS" || echo "  (exit code $?: already started, a keeps 5)"
kubectl -n "$NS" get shardsets

cat <<EOT

The operator keeps running in the background. Look around:
  export KUBECONFIG=$KUBECONFIG
  kubectl -n $NS get shardsets,shards,pods,services
  kubectl -n $NS get configmap shard-key-map-node-1 -o yaml
  kubectl -n $NS delete pod --all            # watch the operator recreate them
  $BIN/shardctl start-shard node-1 x y --value '"hello"' -n $NS
  tail -f $LOG
Stop the operator with 'make demo-down', and the whole cluster with 'make cluster-down'.
EOT
