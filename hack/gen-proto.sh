#!/usr/bin/env bash
# Regenerates the Go code for proto/ into pkg/ (the generated files are committed).
# Needs protoc (Debian: protobuf-compiler) and protoc-gen-go at the version that
# go.mod pins for google.golang.org/protobuf; installs the latter if missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

want="$(go list -m -f '{{.Version}}' google.golang.org/protobuf)"
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
gen="$gobin/protoc-gen-go"
if [ ! -x "$gen" ] || [ "$("$gen" --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
	echo "Installing protoc-gen-go $want"
	go install "google.golang.org/protobuf/cmd/protoc-gen-go@$want"
fi

command -v protoc >/dev/null || { echo "protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

mapfile -t files < <(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
# module= strips the module prefix from go_package so output lands under pkg/.
protoc --proto_path=proto \
	--plugin=protoc-gen-go="$gen" \
	--go_out=. --go_opt=module=github.com/seqops/sequencer-operator \
	"${files[@]}"
echo "Generated Go for ${#files[@]} proto file(s)"
