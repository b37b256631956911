package credprovider

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	refplugin "github.com/gauntlet-conformance/gauntlet/fakes/credprovider/plugin"
	"github.com/gauntlet-conformance/gauntlet/faults"
)

// startReferencePlugin is the P checks' StartFunc: the reference plugin (this
// test binary, exec'd through a link named after the provider).
func startReferencePlugin(ctx context.Context, fs ...faults.Fault) (conformance.Target, error) {
	in, err := refplugin.Start(fs...)
	if err != nil {
		return conformance.Target{}, err
	}
	ps := PluginSettings{Path: in.Path, ConfigFile: in.ConfigFile, ContractFile: in.ContractFile, Name: "embedded reference plugin"}
	_, feats, err := LoadPlugin(ps)
	if err != nil {
		in.Close()
		return conformance.Target{}, err
	}
	return conformance.Target{Name: "embedded reference plugin", Embedded: true, Features: feats,
		Settings: Settings{Plugin: ps}, Arm: in.Arm, Close: in.Close}, nil
}

func isPluginCheck(i conformance.Info) bool { return i.Category() == "P" }

// Every P check passes against the reference plugin, report-level.
func TestPluginChecksPassOnReference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tgt, err := startReferencePlugin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	start := time.Now()
	rep, err := conformance.Run(ctx, Suite, tgt, conformance.RunOptions{Select: isPluginCheck})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rep.Results {
		if !strings.HasPrefix(r.ID, "P") {
			continue
		}
		n++
		if r.Verdict != conformance.VerdictPass {
			t.Errorf("%s: %s: %s", r.Title(), r.Verdict, r.Message)
			for _, c := range r.Cases {
				if c.Status != conformance.Passed {
					t.Logf("  case %s: %s %s", c.Name, c.Status, c.Message)
				}
			}
		}
		for _, o := range r.Notes {
			t.Logf("%s note %s: %s", r.ID, o.Name, o.Value)
		}
	}
	if n != 16 || !rep.OK() {
		t.Errorf("%d P checks ran, report OK=%v", n, rep.OK())
	}
	t.Logf("P checks against the reference plugin: %s", time.Since(start).Round(time.Millisecond))
}

func TestLoadPluginRejects(t *testing.T) {
	t.Parallel()
	in, err := refplugin.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dir := t.TempDir()
	plain := filepath.Join(dir, refplugin.BinaryName)
	os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	good, _ := os.ReadFile(in.ConfigFile)
	for _, tc := range []struct {
		name string
		s    PluginSettings
		want string
	}{
		{"missing binary", PluginSettings{Path: filepath.Join(dir, "nope"), ConfigFile: in.ConfigFile}, "did not exist"},
		{"not executable", PluginSettings{Path: plain, ConfigFile: in.ConfigFile}, "not an executable file"},
		{"no config", PluginSettings{Path: in.Path}, "--plugin-config"},
		{"unknown field", PluginSettings{Path: in.Path, ConfigFile: write("u.yaml", string(good)+"bogus: 1\n")}, `unknown field "bogus"`},
		{"wrong kind", PluginSettings{Path: in.Path, ConfigFile: write("k.yaml", "apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n")}, "wrong Kind"},
		{"no defaultCacheDuration", PluginSettings{Path: in.Path, ConfigFile: write("d.yaml", strings.Replace(string(good), "defaultCacheDuration: 10m", "", 1))}, "providers.defaultCacheDuration: Required value"},
		{"negative duration", PluginSettings{Path: in.Path, ConfigFile: write("n.yaml", strings.Replace(string(good), "defaultCacheDuration: 10m", "defaultCacheDuration: -1m", 1))}, "must be greater than or equal to 0"},
		{"no cacheType", PluginSettings{Path: in.Path, ConfigFile: write("c.yaml", strings.Replace(string(good), "cacheType: ServiceAccount", "", 1))}, "cacheType is required"},
		{"required keys without requireServiceAccount", PluginSettings{Path: in.Path, ConfigFile: write("r.yaml", strings.Replace(string(good), "optionalServiceAccountAnnotationKeys", "requiredServiceAccountAnnotationKeys", 1))}, "requireServiceAccount cannot be false"},
		{"provider not named after binary", PluginSettings{Path: in.Path, ConfigFile: write("p.yaml", strings.Replace(string(good), "name: "+refplugin.BinaryName, "name: other", 1))}, `no provider named "` + refplugin.BinaryName},
		{"duplicate provider across a config dir", PluginSettings{Path: in.Path, ConfigFile: mkdirWith(t, map[string]string{"a.yaml": string(good), "b.json": string(good), "c.txt": "ignored"})}, "duplicate provider name"},
		{"empty config dir", PluginSettings{Path: in.Path, ConfigFile: mkdirWith(t, map[string]string{"c.txt": "ignored"})}, "no configuration files found"},
		{"bad contract", PluginSettings{Path: in.Path, ConfigFile: in.ConfigFile, ContractFile: write("ct.yaml", "noToken: maybe\n")}, "noToken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := LoadPlugin(tc.s)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("LoadPlugin = %v, want one line containing %q", err, tc.want)
			}
		})
	}
}

func mkdirWith(t *testing.T, files map[string]string) string {
	d := t.TempDir()
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(d, n), []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// A config directory is merged like the kubelet's (and a relative --plugin
// path is made absolute: exec must not search $PATH).
func TestLoadPluginConfigDir(t *testing.T) {
	t.Parallel()
	in, err := refplugin.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	good, _ := os.ReadFile(in.ConfigFile)
	other := strings.ReplaceAll(string(good), "name: "+refplugin.BinaryName, "name: other-provider")
	dir := mkdirWith(t, map[string]string{"10-ref.yaml": string(good), "20-other.yml": other})
	e, feats, err := LoadPlugin(PluginSettings{Path: in.Path, ConfigFile: dir, ContractFile: in.ContractFile})
	if err != nil {
		t.Fatal(err)
	}
	if e.provider.Name != refplugin.BinaryName || len(feats) != 4 || !filepath.IsAbs(e.settings.Path) {
		t.Fatalf("provider %q, features %v, path %q", e.provider.Name, feats, e.settings.Path)
	}
}

func TestImageMatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key, image string
		want       bool
	}{
		{"registry.gauntlet.test", "registry.gauntlet.test/team/app", true},
		{"https://registry.gauntlet.test", "registry.gauntlet.test/team/app", true},
		{"registry.gauntlet.test/team/app", "registry.gauntlet.test/team/app", true},
		{"registry.gauntlet.test/team/app", "registry.gauntlet.test/team/app2", true}, // plain prefix
		{"registry.gauntlet.test/p16-01", "registry.gauntlet.test/p16-10", false},
		{"*.gauntlet.test", "registry.gauntlet.test/x", true},
		{"*.gauntlet.test", "a.registry.gauntlet.test/x", false},
		{"reg:5000", "reg/x", false},
		{"reg:5000", "reg:5000/x", true},
		{"reg:5000/*", "reg:5000/pause", false},
		{"other-registry.gauntlet.test", "registry.gauntlet.test/x", false},
	} {
		if got := imageMatches(tc.key, tc.image); got != tc.want {
			t.Errorf("imageMatches(%q, %q) = %v, want %v", tc.key, tc.image, got, tc.want)
		}
	}
}
