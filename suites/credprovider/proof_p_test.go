package credprovider

import (
	"testing"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/conformance/prooftest"
	"github.com/gauntlet-conformance/gauntlet/faults"
)

// Every (check, fault) pair of the suite, P against a fresh reference
// plugin and K/S against a fresh reference consumer, fails on the check's
// own assertion with the fault armed after setup; every catalogue fault is
// named by a check.
func TestProofs(t *testing.T) {
	t.Parallel()
	prooftest.Catalogue(t, Suite, faults.CredProvider, nil)
	prooftest.Faults(t, Suite, faults.CredProvider, func(c conformance.Info) conformance.StartFunc {
		if isPluginCheck(c) {
			return startReferencePlugin
		}
		return startReference
	}, nil)
}
