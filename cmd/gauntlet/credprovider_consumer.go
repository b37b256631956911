package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	refconsumer "github.com/gauntlet-conformance/gauntlet/fakes/credprovider/consumer"
	"github.com/gauntlet-conformance/gauntlet/fakes/credprovider/probe"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/suites/credprovider"
)

// Importing fakes/credprovider/probe makes this binary the K/S checks'
// probe plugin when GAUNTLET_CREDPROVIDER_PROBE is set (see that package).

// kubeletConsumerBin is where hack/credprovider-kubelet/build.sh puts the
// kubelet consumer wrapper.
const kubeletConsumerBin = "/var/tmp/gauntlet-credprovider/bin/credprovider-kubelet"

// consumerTarget is the consumer side of a credprovider target.
type consumerTarget struct {
	Settings credprovider.ConsumerSettings
	Features []conformance.Feature // what this consumer is known to support
	Arm      func(fs ...faults.Fault) error
}

// credproviderConsumerFlags registers --consumer and
// --consumer-exec-deadline; the returned function builds the consumer
// side once flags are parsed.
func credproviderConsumerFlags(fs *flag.FlagSet) func(ctx context.Context) (consumerTarget, error) {
	consumer := fs.String("consumer", "reference", "consumer under test for the K/S checks: 'reference' (embedded), 'kubelet' (the kubelet's pkg/credentialprovider/plugin via hack/credprovider-kubelet, $GAUNTLET_CREDPROVIDER_KUBELET or "+kubeletConsumerBin+"), or a command speaking the consumer line protocol (suites/credprovider/consumer.go), run once per scenario")
	deadline := fs.Duration("consumer-exec-deadline", 0, "the consumer's plugin exec deadline (K16); default: 1m (the kubelet's) for kubelet and commands, 5s for the reference")
	return func(ctx context.Context) (consumerTarget, error) {
		exe, err := probe.Executable()
		if err != nil {
			return consumerTarget{}, fmt.Errorf("locate this executable (the probe plugin): %w", err)
		}
		all := []conformance.Feature{credprovider.ConsumerFeatureSATokens, credprovider.ConsumerFeatureConfigDir}
		switch name := strings.TrimSpace(*consumer); name {
		case "", "reference":
			ref, err := refconsumer.New(refconsumer.Options{ExecDeadline: *deadline})
			if err != nil {
				return consumerTarget{}, err
			}
			return consumerTarget{Settings: credprovider.ConsumerSettings{Name: ref.Name(), Dial: ref.Dial,
				ExecDeadline: ref.ExecDeadline(), Probe: exe}, Features: all, Arm: ref.Arm}, nil
		case "kubelet":
			bin := os.Getenv("GAUNTLET_CREDPROVIDER_KUBELET")
			if bin == "" {
				bin = kubeletConsumerBin
			}
			if _, err := os.Stat(bin); err != nil {
				return consumerTarget{}, usageError{fmt.Sprintf("--consumer kubelet: %s does not exist: build it with hack/credprovider-kubelet/build.sh (or set GAUNTLET_CREDPROVIDER_KUBELET to the wrapper binary)", bin)}
			}
			d := *deadline
			if d == 0 {
				d = credprovider.KubeletExecDeadline
			}
			return consumerTarget{Settings: credprovider.ConsumerSettings{Name: "kubelet v1.37.2 (pkg/credentialprovider/plugin)",
				Dial: credprovider.CommandDial([]string{bin}, nil), ExecDeadline: d, Probe: exe}, Features: all}, nil
		default:
			argv := strings.Fields(name)
			if _, err := exec.LookPath(argv[0]); err != nil {
				return consumerTarget{}, usageError{fmt.Sprintf("--consumer %q: %s is not an executable: name 'reference', 'kubelet' or a command speaking the consumer line protocol", name, argv[0])}
			}
			d := *deadline
			if d == 0 {
				d = time.Minute
			}
			return consumerTarget{Settings: credprovider.ConsumerSettings{Name: "consumer " + name,
				Dial: credprovider.CommandDial(argv, nil), ExecDeadline: d, Probe: exe}}, nil
		}
	}
}

// armBoth routes faults to the consumer or the plugin side (either may be
// nil: a real target cannot arm faults).
func armBoth(plugin, consumer func(fs ...faults.Fault) error) func(fs ...faults.Fault) error {
	if plugin == nil && consumer == nil {
		return nil
	}
	return func(fs ...faults.Fault) error {
		var errs []error
		for _, f := range fs {
			arm := plugin
			if faults.IsCredConsumerFault(f) {
				arm = consumer
			}
			if arm == nil {
				errs = append(errs, fmt.Errorf("%s: that side of the target is real and cannot arm faults", f))
				continue
			}
			errs = append(errs, arm(f))
		}
		return errors.Join(errs...)
	}
}
