package fuzz

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
)

func init() {
	// wsstream and the cri-streaming server log every protocol error through
	// klog; fuzzing provokes them by the thousand.
	klog.SetLogger(logr.Discard())
}

// seed is one named seed input: the arguments of a fuzz target, in order.
type seed struct {
	name string
	args []any
}

// seedSets maps each fuzz target to its seeds. Each target's file registers
// its set in init; the same seeds go to f.Add and to testdata/fuzz.
var seedSets = map[string][]seed{}

func addSeeds(f *testing.F, target string) {
	set, ok := seedSets[target]
	if !ok {
		f.Fatalf("no seeds registered for %s", target)
	}
	for _, s := range set {
		f.Add(s.args...)
	}
}

// corpusFile renders args in the "go test fuzz v1" format.
func corpusFile(args []any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		case bool, int, uint16, uint32, int64:
			fmt.Fprintf(&b, "%T(%v)\n", v, v)
		default:
			panic(fmt.Sprintf("corpusFile: unsupported seed type %T", a))
		}
	}
	return b.Bytes()
}

// TestSeedCorpus keeps testdata/fuzz in step with the seed lists: every seed
// must be committed as a file with the same content. Regenerate with
//
//	GAUNTLET_WRITE_SEEDS=1 go test ./fuzz -run TestSeedCorpus
func TestSeedCorpus(t *testing.T) {
	write := os.Getenv("GAUNTLET_WRITE_SEEDS") == "1"
	targets := make([]string, 0, len(seedSets))
	for target := range seedSets {
		targets = append(targets, target)
	}
	sort.Strings(targets)
	for _, target := range targets {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range seedSets[target] {
			path := filepath.Join(dir, "seed-"+s.name)
			want := corpusFile(s.args)
			if write {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is missing or stale (regenerate with GAUNTLET_WRITE_SEEDS=1)", path)
			}
		}
	}
}
