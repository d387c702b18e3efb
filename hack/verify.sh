#!/usr/bin/env bash
# Fails when generated files are stale, go.mod/go.sum are untidy or Go code is not gofmt-formatted.
# It regenerates into the work tree and compares with git, so run it on a clean tree.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "not gofmt-formatted (run make fmt):"; echo "$unformatted"; fail=1
fi

go mod tidy
for m in hack/k8s hack/etcd; do (cd "$m" && go mod tidy); done
make --no-print-directory generate manifests >/dev/null

if ! git diff --quiet -- . ; then
	echo "generated files, go.mod or go.sum are stale (run make generate manifests and go mod tidy, then commit):"
	git diff --stat -- .
	fail=1
fi
untracked=$(git ls-files --others --exclude-standard -- api config pkg proto charts)
if [ -n "$untracked" ]; then
	echo "generated files are not committed:"; echo "$untracked"; fail=1
fi
exit $fail
