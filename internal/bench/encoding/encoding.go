// Package encoding runs the Raft entry encoding benchmarks of pkg/chain (bench_test.go: protobuf
// against JSON for the same signed block of 1,000 100-byte transactions) with go test -bench and
// parses their output.
package encoding

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Bench is one benchmark's figures.
type Bench struct {
	Name        string  `json:"name"`
	NsPerOp     float64 `json:"nsPerOp"`
	BytesPerOp  float64 `json:"bytesPerOp"`
	AllocsPerOp float64 `json:"allocsPerOp"`
	MBPerSec    float64 `json:"mbPerSec"`
}

// Result holds the four benchmarks and the speed-ups of protobuf over JSON.
type Result struct {
	Command       string           `json:"command"`
	Benches       map[string]Bench `json:"benches"`
	EncodeSpeedup float64          `json:"encodeSpeedup"`
	DecodeSpeedup float64          `json:"decodeSpeedup"`
}

// Run runs the benchmarks from the module root.
func Run(ctx context.Context, benchtime string) (Result, error) {
	res := Result{Benches: map[string]Bench{}}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == "/dev/null" {
		return res, errors.New("run from inside the module: go env GOMOD names no go.mod")
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	args := []string{"test", "-run", "^$", "-bench", "^Benchmark(En|De)codeBlock(Proto|JSON)$", "-benchmem", "-benchtime", benchtime, "./pkg/chain"}
	res.Command = "go " + strings.Join(args, " ")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return res, fmt.Errorf("%s: %v\n%s", res.Command, err, out)
	}
	res.Benches = Parse(out)
	for _, n := range []string{"EncodeBlockProto", "EncodeBlockJSON", "DecodeBlockProto", "DecodeBlockJSON"} {
		if _, ok := res.Benches[n]; !ok {
			return res, fmt.Errorf("benchmark %s missing from the output:\n%s", n, out)
		}
	}
	res.EncodeSpeedup = res.Benches["EncodeBlockJSON"].NsPerOp / res.Benches["EncodeBlockProto"].NsPerOp
	res.DecodeSpeedup = res.Benches["DecodeBlockJSON"].NsPerOp / res.Benches["DecodeBlockProto"].NsPerOp
	return res, nil
}

// Parse reads `go test -bench -benchmem` lines such as
// "BenchmarkEncodeBlockProto-2  12345  98765 ns/op  123.45 MB/s  1234 B/op  5 allocs/op".
func Parse(out []byte) map[string]Bench {
	m := map[string]Bench{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		b := Bench{Name: name}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				b.NsPerOp = v
			case "B/op":
				b.BytesPerOp = v
			case "allocs/op":
				b.AllocsPerOp = v
			case "MB/s":
				b.MBPerSec = v
			}
		}
		m[name] = b
	}
	return m
}
