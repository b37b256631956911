package plugin

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/gauntlet-conformance/gauntlet/faults"
)

// Reference-plugin facts the contract file states (the suite reads them from
// the contract, never from this package).
const (
	Registry        = "registry.gauntlet.test"
	Audience        = "gauntlet-registry"
	RoleAnnotation  = "gauntlet.test/role"
	ConfigUsername  = "gauntlet-cfg-env"
	ConfigPrefix    = "cfgarg-"
	outOfScopeImage = "elsewhere.gauntlet.test/team/app"
)

// Instance is a running reference plugin: a state directory holding a link
// to the current executable named BinaryName (the kubelet's plugin bin
// dir), a CredentialProviderConfig, a contract file and the script.
type Instance struct {
	Dir          string
	BinDir       string // the kubelet's --image-credential-provider-bin-dir
	Path         string // BinDir/BinaryName
	ConfigFile   string // kubelet.config.k8s.io/v1 CredentialProviderConfig
	ContractFile string // what the plugin declares (credprovider.PluginContract)

	mu     sync.Mutex
	script Script
}

// Start prepares a reference plugin in a fresh temporary directory with fs
// active from the start (usually none: Arm them later).
func Start(fs ...faults.Fault) (*Instance, error) {
	for _, f := range fs {
		if !faults.CredProvider.Has(f) {
			return nil, fmt.Errorf("unknown credprovider fault %q", f)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("reference plugin: locate this executable: %w", err)
	}
	dir, err := os.MkdirTemp("", "gauntlet-refplugin-")
	if err != nil {
		return nil, err
	}
	in := &Instance{Dir: dir, BinDir: filepath.Join(dir, "bin"), ConfigFile: filepath.Join(dir, "config.yaml"),
		ContractFile: filepath.Join(dir, "contract.yaml")}
	in.Path = filepath.Join(in.BinDir, BinaryName)
	in.script = Script{
		Registries: []string{Registry, "*." + Registry}, Audience: Audience, RequiredAnnotations: []string{RoleAnnotation},
		Lifetimes: map[string]string{Registry + "/p07/ten-minutes": "10m", Registry + "/p07/expired": "-1m"},
		Faults:    append([]faults.Fault(nil), fs...),
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
- name: %s
  apiVersion: credentialprovider.kubelet.k8s.io/v1
  matchImages: ["%s", "*.%s"]
  defaultCacheDuration: 10m
  args: ["--password-prefix=%s"]
  env:
  - {name: %s, value: %q}
  - {name: %s, value: %s}
  tokenAttributes:
    serviceAccountTokenAudience: %s
    cacheType: ServiceAccount
    requireServiceAccount: false
    optionalServiceAccountAnnotationKeys: ["%s"]
`, BinaryName, Registry, Registry, ConfigPrefix, StateEnv, dir, UsernameEnv, ConfigUsername, Audience, RoleAnnotation)
	contract := fmt.Sprintf(`# What the reference plugin declares (credprovider.PluginContract).
images: ["%[1]s/team/app"]
outOfScopeImage: %[2]s
apiVersions: [credentialprovider.kubelet.k8s.io/v1, credentialprovider.kubelet.k8s.io/v1beta1, credentialprovider.kubelet.k8s.io/v1alpha1]
username: %[3]s
passwordPrefix: %[4]s
lifetimes: {"%[1]s/p07/ten-minutes": 10m, "%[1]s/p07/expired": -1m}
latencyBudget: 5s
noToken: credentials
serviceAccount:
  namespace: gauntlet
  name: puller
  uid: 5b0c6a52-8c36-4c4e-9a54-0a3f5ad0e1a1
  podName: app-0
  podUID: 0f7d3e52-2c1b-4d8e-8a43-3b1a6f9e2c10
  annotations: {"%[5]s": reader}
  requiredAnnotations: ["%[5]s"]
`, Registry, outOfScopeImage, ConfigUsername, ConfigPrefix, RoleAnnotation)
	err = os.Mkdir(in.BinDir, 0o755)
	if err == nil {
		err = os.Symlink(self, in.Path)
	}
	if err == nil {
		err = os.WriteFile(in.ConfigFile, []byte(config), 0o600)
	}
	if err == nil {
		err = os.WriteFile(in.ContractFile, []byte(contract), 0o600)
	}
	if err == nil {
		err = in.save()
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("reference plugin: %w", err)
	}
	return in, nil
}

// save writes the script atomically: a concurrent exec reads the old or the
// new one, never half of it.
func (in *Instance) save() error {
	b, err := json.MarshalIndent(in.script, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(in.Dir, "script-*.tmp")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	tmp.Close()
	return os.Rename(tmp.Name(), filepath.Join(in.Dir, ScriptFile))
}

// Arm switches faults on for every later exec.
func (in *Instance) Arm(fs ...faults.Fault) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, f := range fs {
		info, ok := faults.CredProvider.Lookup(f)
		if !ok || !slices.ContainsFunc(credPluginFaultNames(), func(g faults.Fault) bool { return g == f }) {
			return fmt.Errorf("%q is not a reference plugin fault", f)
		}
		if !info.Armable() {
			return fmt.Errorf("%q is fixed at start", f)
		}
		if !slices.Contains(in.script.Faults, f) {
			in.script.Faults = append(in.script.Faults, f)
		}
	}
	return in.save()
}

// SetRules replaces the scripted answers.
func (in *Instance) SetRules(rs []Rule) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.script.Rules = append([]Rule(nil), rs...)
	return in.save()
}

// Close removes the state directory.
func (in *Instance) Close() error { return os.RemoveAll(in.Dir) }

// credPluginFaultNames are the catalogue faults this plugin implements.
func credPluginFaultNames() []faults.Fault {
	var out []faults.Fault
	for _, i := range faults.CredProvider.All() {
		if len(i.Name) > 3 && i.Name[:3] == "cp-" {
			out = append(out, i.Name)
		}
	}
	return out
}
