package credprovider

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The config errors read exactly like the kubelet's. The wanted strings were
// recorded from the real kubelet package (k8s.io/kubernetes v1.37.2
// pkg/credentialprovider/plugin, via hack/credprovider-kubelet's wrapper)
// fed the same files.
func TestPluginConfigValidationMatchesKubelet(t *testing.T) {
	t.Parallel()
	base, err := os.ReadFile("../../hack/credprovider/ecr-credential-provider.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "ecr-credential-provider")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, kubelet string }{
		{"no defaultCacheDuration", "defaultCacheDuration: 12h", "",
			`failed to validate credential provider config: providers.defaultCacheDuration: Required value`},
		{"negative defaultCacheDuration", "defaultCacheDuration: 12h", "defaultCacheDuration: -1m",
			`failed to validate credential provider config: providers.defaultCacheDuration: Invalid value: "-1m0s": must be greater than or equal to 0`},
		{"no cacheType", "cacheType: ServiceAccount", "",
			`failed to validate credential provider config: providers.tokenAttributes.cacheType: Required value: cacheType is required to be set when tokenAttributes is specified. Supported values are: ServiceAccount, Token`},
		{"bad name", "name: ecr-credential-provider", `name: "a b/c"`,
			`failed to validate credential provider config: [providers.name: Invalid value: "a b/c": provider name cannot contain '/', providers.name: Invalid value: "a b/c": provider name cannot contain spaces]`},
		{"required keys with requireServiceAccount false", "requireServiceAccount: true", "requireServiceAccount: false",
			`failed to validate credential provider config: providers.tokenAttributes.requiredServiceAccountAnnotationKeys: Forbidden: requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set`},
		{"unknown apiVersion", "apiVersion: credentialprovider.kubelet.k8s.io/v1", "apiVersion: credentialprovider.kubelet.k8s.io/v9",
			`failed to validate credential provider config: [providers.apiVersion: Unsupported value: "credentialprovider.kubelet.k8s.io/v9": supported values: "credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1alpha1", "credentialprovider.kubelet.k8s.io/v1beta1", providers.tokenAttributes: Forbidden: tokenAttributes is only supported for credentialprovider.kubelet.k8s.io/v1 API version]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(cfg, []byte(strings.Replace(string(base), tc.from, tc.to, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadPlugin(PluginSettings{Path: bin, ConfigFile: cfg})
			if err == nil || !strings.HasSuffix(err.Error(), ": "+tc.kubelet) {
				t.Fatalf("got  %v\nwant …: %s", err, tc.kubelet)
			}
		})
	}
}
