#!/usr/bin/env bash
# Checks the Helm chart: `helm lint --strict`, `helm template` with the default and non-default values, and
# that it has not drifted from the code:
#   * crds/ and templates/_manager-rules.tpl equal what hack/sync-chart.sh makes from config/;
#   * the rendered ClusterRole (and each per-namespace Role) grants exactly the rules of config/rbac/role.yaml;
#   * every flag the Deployment passes is a flag cmd/manager defines.
# HELM names the helm binary; by default bin/tools/helm, installed at HELM_VERSION when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

chart=charts/sequencer-operator
HELM_VERSION=${HELM_VERSION:-v3.22.0}
HELM=${HELM:-$PWD/bin/tools/helm}
# helm template renders for Kubernetes 1.20 unless told otherwise, which the chart's kubeVersion refuses.
KUBE_VERSION=${KUBE_VERSION:-1.37.2}
if [ ! -x "$HELM" ]; then
	echo "installing helm $HELM_VERSION into $(dirname "$HELM")"
	GOBIN=$(dirname "$HELM") go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "verify-chart: $*" >&2; fail=1; }

# 1. The synced files are current.
cp -r "$chart" "$tmp/chart"
CHART_DIR="$tmp/chart" hack/sync-chart.sh
if ! diff -ru "$chart" "$tmp/chart" >"$tmp/sync.diff"; then
	cat "$tmp/sync.diff" >&2
	bad "the chart's CRDs or RBAC rules are stale: run hack/sync-chart.sh (make manifests) and commit"
fi

# rules_of KIND NAME FILE prints the rules of every document of that kind and name in a multi-document YAML
# file, each followed by a line "# end" so several documents compare one by one.
rules_of() {
	awk -v kind="$1" -v name="$2" '
		function flush() { if (k == kind && n == name) printf "%s# end\n", body; k = ""; n = ""; body = ""; inr = 0; inmeta = 0 }
		/^---[[:space:]]*$/ { flush(); next }
		/^kind:/ { k = $2 }
		/^metadata:/ { inmeta = 1; next }
		inmeta && /^  name:/ { n = $2 }
		/^rules:[[:space:]]*$/ { inr = 1; inmeta = 0; next }
		/^[^[:space:]-]/ { inr = 0; inmeta = 0 }
		inr { body = body $0 "\n" }
		END { flush() }' "$3"
}
rules_of ClusterRole manager-role config/rbac/role.yaml >"$tmp/want.rules"
[ -s "$tmp/want.rules" ] || bad "no ClusterRole manager-role with rules in config/rbac/role.yaml"

# 2. Lint and render with the defaults and with every switch flipped.
release=seqops
values_sets=(
	""
	"--set watchNamespaces={rollups,chains} --set logLevel=debug --set metrics.enabled=false --set replicaCount=2"
	"--set leaderElection.enabled=false --set serviceAccount.create=false --set serviceAccount.name=existing --set logLevel=3"
	"--set rbac.create=false --set image.tag=v9.9.9 --set extraArgs={--resync-period=30s}"
)
for set in "${values_sets[@]}"; do
	# shellcheck disable=SC2086 # $set holds several words on purpose
	if ! "$HELM" lint --strict "$chart" $set --kube-version "$KUBE_VERSION" >"$tmp/lint.out" 2>&1; then
		cat "$tmp/lint.out" >&2; bad "helm lint failed with values: ${set:-<defaults>}"
	fi
	# shellcheck disable=SC2086
	if ! "$HELM" template "$release" "$chart" -n seqops-system --kube-version "$KUBE_VERSION" $set >"$tmp/out.yaml" 2>"$tmp/err"; then
		cat "$tmp/err" >&2; bad "helm template failed with values: ${set:-<defaults>}"; continue
	fi
	# shellcheck disable=SC2086
	case "$set" in
	*rbac.create=false*) ;;
	*watchNamespaces*)
		rules_of Role "$release-sequencer-operator-manager" "$tmp/out.yaml" >"$tmp/got.rules"
		# One Role per watched namespace, each with exactly the generated rules.
		cat "$tmp/want.rules" "$tmp/want.rules" >"$tmp/want2.rules"
		diff -u "$tmp/want2.rules" "$tmp/got.rules" >&2 || bad "the per-namespace Roles' rules differ from config/rbac/role.yaml"
		;;
	*)
		rules_of ClusterRole "$release-sequencer-operator-manager" "$tmp/out.yaml" >"$tmp/got.rules"
		diff -u "$tmp/want.rules" "$tmp/got.rules" >&2 || bad "the ClusterRole's rules differ from config/rbac/role.yaml"
		;;
	esac
	# Every --flag in the Deployment's args must be one the manager defines (zap's flags come from zap.Options).
	for flag in $(sed -n 's/^ *- --\([a-z0-9-]*\).*/\1/p' "$tmp/out.yaml" | sort -u); do
		case "$flag" in
		zap-*) ;;
		*) grep -q "\"$flag\"" cmd/manager/main.go || bad "the chart passes --$flag, which cmd/manager does not define" ;;
		esac
	done
done

# 3. Values that must be refused.
if "$HELM" template "$release" "$chart" --kube-version "$KUBE_VERSION" --set replicaCount=2 --set leaderElection.enabled=false >/dev/null 2>&1; then
	bad "replicaCount=2 without leader election rendered; it must fail"
fi
if "$HELM" template "$release" "$chart" --kube-version "$KUBE_VERSION" --set logLevel=verbose >/dev/null 2>&1; then
	bad "logLevel=verbose rendered; the schema must refuse it"
fi

"$HELM" lint --strict "$chart" --kube-version "$KUBE_VERSION"
[ $fail -eq 0 ] && echo "verify-chart: ok"
exit $fail
