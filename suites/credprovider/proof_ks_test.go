package credprovider

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	refconsumer "github.com/gauntlet-conformance/gauntlet/fakes/credprovider/consumer"
	"github.com/gauntlet-conformance/gauntlet/fakes/credprovider/probe"
	"github.com/gauntlet-conformance/gauntlet/faults"
)

// startReference is the K/S checks' StartFunc: the reference plugin (for
// the suite's plugin side) and the reference consumer, with this test
// binary as the probe plugin. Arm routes consumer faults to the consumer.
func startReference(ctx context.Context, fs ...faults.Fault) (conformance.Target, error) {
	var pluginFaults, consumerFaults []faults.Fault
	for _, f := range fs {
		if faults.IsCredConsumerFault(f) {
			consumerFaults = append(consumerFaults, f)
		} else {
			pluginFaults = append(pluginFaults, f)
		}
	}
	t, err := startReferencePlugin(ctx, pluginFaults...)
	if err != nil {
		return t, err
	}
	ref, err := refconsumer.New(refconsumer.Options{ExecDeadline: refconsumer.DefaultExecDeadline, Faults: consumerFaults})
	if err != nil {
		t.Close()
		return t, err
	}
	exe, err := probe.Executable()
	if err != nil {
		t.Close()
		return t, err
	}
	s := t.Settings.(Settings)
	s.Consumer = ConsumerSettings{Name: ref.Name(), Dial: ref.Dial, ExecDeadline: ref.ExecDeadline(), Probe: exe}
	t.Settings = s
	t.Features = append(t.Features, ConsumerFeatureSATokens, ConsumerFeatureConfigDir)
	pluginArm := t.Arm
	t.Arm = func(fs ...faults.Fault) error {
		var errs []error
		for _, f := range fs {
			if faults.IsCredConsumerFault(f) {
				errs = append(errs, ref.Arm(f))
			} else {
				errs = append(errs, pluginArm(f))
			}
		}
		return errors.Join(errs...)
	}
	return t, nil
}

func isConsumerCheck(i conformance.Info) bool { return i.Category() == "K" || i.Category() == "S" }

// Every K/S check passes against the reference consumer, report-level.
func TestConsumerChecksPassOnReference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tgt, err := startReference(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	start := time.Now()
	rep, err := conformance.Run(ctx, Suite, tgt, conformance.RunOptions{Select: isConsumerCheck})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rep.Results {
		if !isConsumerCheck(conformance.Info{ID: r.ID}) {
			continue
		}
		n++
		if r.Status != conformance.Passed || r.Verdict != conformance.VerdictPass {
			t.Errorf("%s: %s/%s: %s", r.Title(), r.Status, r.Verdict, r.Message)
			for _, cs := range r.Cases {
				if cs.Status != conformance.Passed {
					t.Logf("  case %s: %s %s", cs.Name, cs.Status, cs.Message)
				}
			}
		}
	}
	if n != 35 {
		t.Errorf("%d K/S checks ran, want 35 (K01-K21, S01-S14)", n)
	}
	t.Logf("%d K/S checks in %s", n, time.Since(start).Round(time.Millisecond))
}

// Every consumer fault is named by a K/S check, and every K/S check names
// a consumer fault.
func TestConsumerFaultsUsed(t *testing.T) {
	t.Parallel()
	used := map[faults.Fault]bool{}
	for _, c := range Suite.Infos() {
		if !isConsumerCheck(c) {
			continue
		}
		if !slices.ContainsFunc(c.Faults, faults.IsCredConsumerFault) {
			t.Errorf("%s names no reference consumer fault", c.Title())
		}
		for _, f := range c.Faults {
			used[f] = true
		}
	}
	for _, i := range faults.CredProvider.All() {
		if faults.IsCredConsumerFault(i.Name) && !used[i.Name] {
			t.Errorf("consumer fault %s is used by no check", i.Name)
		}
	}
}
