package consumer

import (
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/gauntlet-conformance/gauntlet/faults"
)

// parseSchemeless parses a scheme-less registry URL ("reg:5000/path").
func parseSchemeless(s string) (*url.URL, error) {
	u, err := url.Parse("https://" + s)
	if err != nil {
		return nil, err
	}
	u.Scheme = ""
	return u, nil
}

func hostParts(u *url.URL) ([]string, string) {
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, ""
	}
	return strings.Split(host, "."), port
}

// urlsMatch is the kubelet's matchImages rule: the same number of host
// parts, each matched with filepath.Match; the port exactly; the path a
// plain string prefix (never a glob). fs switches single rules off.
func urlsMatch(pattern, target string, fs faults.Set) bool {
	if fs.Has(faults.CCMatchIgnored) {
		return true
	}
	pu, err := parseSchemeless(pattern)
	if err != nil {
		return false
	}
	tu, err := parseSchemeless(target)
	if err != nil {
		return false
	}
	pp, pport := hostParts(pu)
	tp, tport := hostParts(tu)
	if pport != tport && !(fs.Has(faults.CCMatchPortLoose) && pport == "") {
		return false
	}
	if fs.Has(faults.CCMatchPathGlob) {
		if ok, _ := filepath.Match(pu.Path, tu.Path); !ok && pu.Path != "" {
			return false
		}
	} else if !strings.HasPrefix(tu.Path, pu.Path) {
		return false
	}
	if fs.Has(faults.CCMatchHostSuffix) && len(tp) > len(pp) {
		tp = tp[len(tp)-len(pp):]
	}
	if len(pp) != len(tp) {
		return false
	}
	for i := range pp {
		if ok, err := filepath.Match(pp[i], tp[i]); err != nil || !ok {
			return false
		}
	}
	return true
}
