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

# protoc-gen-go-vtproto writes MarshalVT/SizeVT for the Raft log entry: the block encoding on the leader's
# commit path (DESIGN §7: protobuf ≥ 3× JSON). Pinned to the vtprotobuf runtime version in go.mod; the
# marker file records which version is installed, since the plugin has no --version.
vtwant="$(go list -m -f '{{.Version}}' github.com/planetscale/vtprotobuf)"
vtgen="$gobin/protoc-gen-go-vtproto"
if [ ! -x "$vtgen" ] || [ "$(cat "$vtgen.version" 2>/dev/null)" != "$vtwant" ]; then
	echo "Installing protoc-gen-go-vtproto $vtwant"
	go install "github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$vtwant"
	echo "$vtwant" >"$vtgen.version"
fi

command -v protoc >/dev/null || { echo "protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

mapfile -t files < <(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
# module= strips the module prefix from go_package so output lands under pkg/.
protoc --proto_path=proto \
	--plugin=protoc-gen-go="$gen" \
	--plugin=protoc-gen-go-vtproto="$vtgen" \
	--go_out=. --go_opt=module=github.com/seqops/sequencer-operator \
	--go-vtproto_out=. --go-vtproto_opt=module=github.com/seqops/sequencer-operator,features=marshal+size \
	"${files[@]}"
echo "Generated Go for ${#files[@]} proto file(s)"
