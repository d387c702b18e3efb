#!/usr/bin/env bash
# make demo: a local Kubernetes control plane built from source, the operator installed with its Helm
# chart (running as a pod under its own ServiceAccount and RBAC), and a three-node SequencerCluster from
# config/samples; waits until it is Healthy, then prints `kubectl get sequencerclusters` and what to try.
# Needs root (the process kubelet makes network namespaces and bind mounts). `make demo-down` stops it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${DEMO_DIR:-$root/_output/demo}
ns=${DEMO_NAMESPACE:-default}
kubectl=$root/bin/k8s/v1.37.2/kubectl
helm=$root/bin/tools/helm
sample=config/samples/seqops_v1alpha1_sequencercluster.yaml
cluster=$(awk '/^  name:/ {print $2; exit}' "$sample")
timeout=${DEMO_TIMEOUT:-300}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
	echo "make demo needs root: the process kubelet creates network namespaces, veths and bind mounts." >&2
	echo "Run it as root (sudo make demo)." >&2
	exit 1
fi

missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v getent >/dev/null || missing+=(libc-bin)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
if [ ${#missing[@]} -gt 0 ]; then
	say "Installing ${missing[*]} with apt"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

say "Building what is missing (the control plane from source takes ~10 minutes the first time)"
make --no-print-directory k8s-bins build "$helm"

if [ -f "$data/state.json" ] && bin/localcluster status --data-dir "$data" >/dev/null 2>&1; then
	say "The local cluster in $data is already up"
else
	say "Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, process kubelet)"
	bin/localcluster up --data-dir "$data"
fi
export KUBECONFIG=$data/kubeconfig

say "Installing the operator with Helm (namespace seqops-system)"
"$helm" upgrade --install sequencer-operator charts/sequencer-operator \
	--namespace seqops-system --create-namespace --wait --timeout 3m

say "Applying $sample"
"$kubectl" apply -n "$ns" -f "$sample"

say "Waiting for SequencerCluster/$cluster to become Healthy (up to ${timeout}s)"
deadline=$(( $(date +%s) + timeout ))
last=""
while :; do
	line=$("$kubectl" get sequencercluster "$cluster" -n "$ns" --no-headers \
		-o custom-columns=PHASE:.status.phase,READY:.status.ready,LEADER:.status.leader,HEIGHT:.status.height 2>/dev/null || true)
	if [ "$line" != "$last" ]; then
		printf '  %s  phase/ready/leader/height: %s\n' "$(date +%T)" "$line"
		last=$line
	fi
	case "$line" in Healthy*) break ;; esac
	if [ "$(date +%s)" -ge "$deadline" ]; then
		echo "SequencerCluster/$cluster is not Healthy after ${timeout}s. Pods and events:" >&2
		"$kubectl" get pods -n "$ns" -o wide >&2 || true
		"$kubectl" get events -n "$ns" --sort-by=.lastTimestamp >&2 | tail -20 || true
		exit 1
	fi
	sleep 1
done

say "kubectl get sequencerclusters"
"$kubectl" get sequencerclusters -n "$ns"
leader=$("$kubectl" get sequencercluster "$cluster" -n "$ns" -o jsonpath='{.status.leader}')

cat <<EOF2

The demo cluster is running. To use it:

  export KUBECONFIG=$KUBECONFIG
  export PATH=$root/bin:$root/bin/k8s/v1.37.2:\$PATH     # kubectl v1.37.2 and the kubectl-sequencer plugin
  kubectl get seqc -w                                    # leader, term and height, live
  kubectl sequencer status $cluster                      # members, roles, height, lag, failure tolerance
  kubectl get pods -l seqops.io/cluster=$cluster -L seqops.io/role

Watch a failover (the leader is $leader):
  kill -9 \$(pgrep -f -- '--id=$leader')                 # SIGKILL the leader's node process
  kubectl get seqc $cluster                              # a new LEADER within a second, TERM +1
Or a graceful switchover:
  kubectl sequencer promote $cluster <pod>               # or: kubectl delete pod $leader

Stop it all with: make demo-down   (or: sudo bin/localcluster down --data-dir $data)
EOF2
