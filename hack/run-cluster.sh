#!/usr/bin/env bash
# Runs a three-node sequencer cluster on loopback (127.0.0.1-3, Raft :7000, API :8080) with a fresh
# signing key and API token under ${RUN_DIR:-tmp/run-cluster}. Node 1 bootstraps, 2 and 3 join it.
# Ctrl-C stops all three (the leader hands over first). Logs: $RUN_DIR/<id>.log
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
node=${NODE_BIN:-$root/bin/node}
dir=${RUN_DIR:-$root/tmp/run-cluster}
raft_port=${RAFT_PORT:-7000}
http_port=${HTTP_PORT:-8080}

mkdir -p "$dir"
[ -f "$dir/signing.key" ] || "$node" keygen --out "$dir/signing.key" >/dev/null
[ -f "$dir/token" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/token"

pids=()
stop() {
	echo "stopping the cluster"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT INT TERM

for i in 1 2 3; do
	args=(run --id "node-$i" --chain-id local --data-dir "$dir/node-$i"
		--raft-addr "127.0.0.$i:$raft_port" --http-addr "127.0.0.$i:$http_port"
		--signing-key-file "$dir/signing.key" --api-token-file "$dir/token")
	if [ "$i" = 1 ]; then args+=(--bootstrap); else args+=(--join "http://127.0.0.1:$http_port"); fi
	"$node" "${args[@]}" >"$dir/node-$i.log" 2>&1 &
	pids+=($!)
done

echo "three nodes started; logs in $dir"
for _ in $(seq 1 100); do
	if curl -fsS "http://127.0.0.1:$http_port/raft" 2>/dev/null | grep -q '"producing":true'; then break; fi
	sleep 0.1
done
cat <<EOF2
Try:
  curl -s http://127.0.0.1:$http_port/raft | jq
  curl -s -XPOST --data-binary 'set greeting hello' http://127.0.0.2:$http_port/tx
  curl -s http://127.0.0.3:$http_port/blocks/latest | jq
  kill -9 <leader pid>   # pids: ${pids[*]}
Press Ctrl-C to stop.
EOF2
wait
