package credprovider

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/fakes/credprovider/probe"
)

// The K/S checks against the real kubelet package, through the wrapper
// built by hack/credprovider-kubelet/build.sh. Opt-in (it needs the 75 MB
// wrapper, and K16 waits the kubelet's 60 s deadline):
//
//	GAUNTLET_CREDPROVIDER_KUBELET=$(hack/credprovider-kubelet/build.sh) \
//	  go test ./suites/credprovider/ -run TestConsumerChecksOnKubelet -v
//
// It logs every result; the expectations file says which failures are
// known deviations (expectations/credprovider-kubelet-v1.37.2.yaml).
func TestConsumerChecksOnKubelet(t *testing.T) {
	bin := os.Getenv("GAUNTLET_CREDPROVIDER_KUBELET")
	if bin == "" {
		t.Skip("GAUNTLET_CREDPROVIDER_KUBELET is not set (the wrapper binary built by hack/credprovider-kubelet/build.sh)")
	}
	ctx := context.Background()
	tgt, err := startReferencePlugin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	exe, err := probe.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := tgt.Settings.(Settings)
	s.Consumer = ConsumerSettings{Name: "kubelet v1.37.2", Dial: CommandDial([]string{bin}, nil), ExecDeadline: KubeletExecDeadline, Probe: exe}
	tgt.Settings, tgt.Arm = s, nil
	tgt.Features = append(tgt.Features, ConsumerFeatureSATokens, ConsumerFeatureConfigDir)
	var x *conformance.Expectations
	if f := os.Getenv("GAUNTLET_EXPECTATIONS"); f != "" {
		if x, err = conformance.LoadExpectations(f); err != nil {
			t.Fatal(err)
		}
	}
	sel := isConsumerCheck
	if only := os.Getenv("GAUNTLET_CHECKS"); only != "" { // e.g. K06,S01
		ids := strings.Split(only, ",")
		sel = func(i conformance.Info) bool { return slices.Contains(ids, i.ID) }
	}
	start := time.Now()
	rep, err := conformance.Run(ctx, Suite, tgt, conformance.RunOptions{Select: sel, Expectations: x})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Status == conformance.Filtered {
			continue
		}
		t.Logf("%-6s %s (%.1fs) %s", conformance.Word(r.Verdict), r.Title(), r.Duration.Seconds(), conformance.FirstLine(r.Message, 300))
		for _, cs := range r.Cases {
			if cs.Status != conformance.Passed {
				t.Logf("         case %s: %s %s", cs.Name, cs.Status, conformance.FirstLine(cs.Message, 400))
			}
		}
		if x != nil && (r.Verdict == conformance.VerdictFail || r.Verdict == conformance.VerdictError || r.Verdict == conformance.VerdictUnexpectedPass) {
			t.Errorf("%s: %s", r.Title(), r.Verdict)
		}
	}
	t.Logf("K/S against the kubelet in %s", time.Since(start).Round(time.Millisecond))
}
