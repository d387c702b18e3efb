#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and
# etcd) from Go source through the module proxy into bin/k8s/<version>/, for envtest
# (KUBEBUILDER_ASSETS) and internal/localcluster. The versions are pinned by the build-only modules
# hack/k8s and hack/etcd (never by the main go.mod).
#
# A second run only checks the stamp file and the binaries and takes well under a second. Cold: about
# 7-15 minutes on 2 cores and about 10 GB of Go build cache. Set K8S_BIN_DIR to build elsewhere and
# FORCE=1 to rebuild.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
k8s_version=v1.37.2
etcd_version=v3.6.16
out=${K8S_BIN_DIR:-$root/bin/k8s/$k8s_version}
stamp="$out/.versions"
mkdir -p "$out"

# The versions must match what the build-only modules require, or the stamp would lie.
grep -q "k8s.io/kubernetes $k8s_version\$" "$root/hack/k8s/go.mod" ||
	{ echo "hack/k8s/go.mod does not require k8s.io/kubernetes $k8s_version" >&2; exit 1; }
grep -q "go.etcd.io/etcd/server/v3 $etcd_version\$" "$root/hack/etcd/go.mod" ||
	{ echo "hack/etcd/go.mod does not require go.etcd.io/etcd/server/v3 $etcd_version" >&2; exit 1; }

want="kubernetes=$k8s_version etcd=$etcd_version go=$(go env GOVERSION)"
have_all=true
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd; do
	[ -x "$out/$b" ] || have_all=false
done
if [ "${FORCE:-}" != 1 ] && $have_all && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
	echo "control plane $k8s_version + etcd $etcd_version already built in $out"
	exit 0
fi
if [ "${FORCE:-}" = 1 ] || { [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$want" ]; }; then
	# Versions changed (or a rebuild was asked for): nothing in the folder can be trusted.
	rm -f "$out"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,etcd} "$stamp"
fi

start=$(date +%s)
minor=${k8s_version#v1.}; minor=${minor%%.*}
ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

if [ ! -x "$out/etcd" ]; then
	echo "building etcd $etcd_version into $out"
	(cd "$root/hack/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
	mv "$out/etcd.tmp" "$out/etcd"
fi

for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
	[ -x "$out/$cmd" ] && continue
	echo "building $cmd $k8s_version into $out"
	# Build to a temporary name so an interrupted build never leaves a half-written binary that the
	# next run would take for a finished one.
	(cd "$root/hack/k8s" && go build -trimpath -ldflags "$ldflags" -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
	mv "$out/$cmd.tmp" "$out/$cmd"
done
echo "$want" >"$stamp"
echo "control plane built in $out in $(( $(date +%s) - start ))s"
