package credprovider

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gauntlet-conformance/gauntlet/conformance"
)

// The plugin targets' expectations files are valid for this suite: known
// checks and cases, a reason and a pinned upstream source link each, and
// the target named after the file (credprovider-<target>.yaml).
func TestPluginExpectationsFiles(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		glob, link string
	}{
		{"credprovider-ecr-*.yaml", "https://github.com/kubernetes/cloud-provider-aws/blob/v"},
		{"credprovider-gcp-*.yaml", "https://github.com/kubernetes/kubernetes/blob/v"},
	} {
		paths, _ := filepath.Glob("../../expectations/" + c.glob)
		if len(paths) == 0 {
			t.Errorf("no expectations file matches %s", c.glob)
		}
		for _, p := range paths {
			x, err := conformance.LoadExpectations(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := x.Validate(Suite.Name, Suite.Infos()); err != nil {
				t.Error(err)
			}
			if want := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "credprovider-"), ".yaml"); x.Target != want {
				t.Errorf("%s: target %q, want %q", p, x.Target, want)
			}
			for k, e := range x.Checks {
				if !strings.HasPrefix(k, "P") || !strings.HasPrefix(e.Link, c.link) {
					t.Errorf("%s: %s: want a P check with a pinned upstream source link, got %q", p, k, e.Link)
				}
			}
		}
	}
}
