package consumer

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	configv1 "k8s.io/kubelet/config/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/gauntlet-conformance/gauntlet/faults"
)

// Config apiVersions the kubelet decodes a CredentialProviderConfig from
// (its scheme registers the three; their provider fields are a superset
// chain, so the v1 type reads all of them).
var configAPIVersions = sets.New("kubelet.config.k8s.io/v1alpha1", "kubelet.config.k8s.io/v1beta1", "kubelet.config.k8s.io/v1")

// Request/response apiVersions a provider may name.
var providerAPIVersions = sets.New("credentialprovider.kubelet.k8s.io/v1alpha1", "credentialprovider.kubelet.k8s.io/v1beta1", "credentialprovider.kubelet.k8s.io/v1")

const v1APIVersion = "credentialprovider.kubelet.k8s.io/v1"

// readConfig reads a config file, or every *.json|*.yaml|*.yml file of a
// directory in lexicographic order, merging providers; a name defined twice
// across files is an error.
func readConfig(path string, fs faults.Set) (*configv1.CredentialProviderConfig, error) {
	if path == "" {
		return nil, fmt.Errorf("credential provider config path is empty")
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("unable to access path %q: %w", path, err)
	}
	files := []string{path}
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("unable to read directory %q: %w", path, err)
		}
		files = nil
		for _, e := range ents {
			switch filepath.Ext(e.Name()) {
			case ".json", ".yaml", ".yml":
				if !e.IsDir() {
					files = append(files, filepath.Join(path, e.Name()))
				}
			}
		}
		sort.Strings(files)
		if fs.Has(faults.CCConfigDirUnsorted) {
			sort.Sort(sort.Reverse(sort.StringSlice(files)))
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("no configuration files found in directory %q", path)
		}
	}
	merged := &configv1.CredentialProviderConfig{}
	seen := sets.New[string]()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("unable to read file %q: %w", f, err)
		}
		c, err := decodeConfig(b)
		if err != nil {
			return nil, fmt.Errorf("error decoding config %q: %w", f, err)
		}
		for _, p := range c.Providers {
			if seen.Has(p.Name) && !fs.Has(faults.CCConfigDirUnsorted) {
				return nil, fmt.Errorf("duplicate provider name %q found in configuration file(s)", p.Name)
			}
			seen.Insert(p.Name)
			merged.Providers = append(merged.Providers, p)
		}
	}
	return merged, nil
}

// decodeConfig decodes YAML or JSON strictly (unknown and duplicate fields
// are errors), as the kubelet's strict codec does.
func decodeConfig(b []byte) (*configv1.CredentialProviderConfig, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, err
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(j, &tm); err != nil {
		return nil, err
	}
	if tm.Kind == "" || tm.APIVersion == "" {
		return nil, fmt.Errorf("Object 'Kind' or 'apiVersion' is missing in '%s'", strings.TrimSpace(string(b)))
	}
	if !configAPIVersions.Has(tm.APIVersion) {
		return nil, fmt.Errorf("no kind %q is registered for version %q", tm.Kind, tm.APIVersion)
	}
	if tm.Kind != "CredentialProviderConfig" {
		return nil, fmt.Errorf("failed to decode %q (wrong Kind)", tm.Kind)
	}
	var c configv1.CredentialProviderConfig
	strict, err := sigsjson.UnmarshalStrict(j, &c, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, err
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("strict decoding error: %s", strings.Join(msgs, ", "))
	}
	return &c, nil
}

// validateConfig applies the kubelet's rules (and its field paths and
// wording, which users grep for). fs switches rule groups off.
func validateConfig(c *configv1.CredentialProviderConfig, fs faults.Set) field.ErrorList {
	var errs field.ErrorList
	path := field.NewPath("providers")
	if !fs.Has(faults.CCConfigUnvalidated) {
		if len(c.Providers) == 0 {
			errs = append(errs, field.Required(path, "at least 1 item in plugins is required"))
		}
		names := sets.New[string]()
		for _, p := range c.Providers {
			errs = append(errs, validateProvider(path, p, names)...)
		}
	}
	if !fs.Has(faults.CCTokenAttrsUnvalidated) {
		for _, p := range c.Providers {
			if p.TokenAttributes != nil {
				errs = append(errs, validateTokenAttributes(path.Child("tokenAttributes"), p)...)
			}
		}
	}
	return errs
}

func validateProvider(path *field.Path, p configv1.CredentialProvider, names sets.Set[string]) field.ErrorList {
	var errs field.ErrorList
	name := path.Child("name")
	for _, r := range []struct {
		bad bool
		msg string
	}{
		{strings.Contains(p.Name, "/"), "provider name cannot contain '/'"},
		{strings.Contains(p.Name, " "), "provider name cannot contain spaces"},
		{p.Name == ".", "provider name cannot be '.'"},
		{p.Name == "..", "provider name cannot be '..'"},
	} {
		if r.bad {
			errs = append(errs, field.Invalid(name, p.Name, r.msg))
		}
	}
	if names.Has(p.Name) {
		errs = append(errs, field.Duplicate(name, p.Name))
	}
	names.Insert(p.Name)
	switch {
	case p.APIVersion == "":
		errs = append(errs, field.Required(path.Child("apiVersion"), ""))
	case !providerAPIVersions.Has(p.APIVersion):
		errs = append(errs, field.NotSupported(path.Child("apiVersion"), p.APIVersion, sets.List(providerAPIVersions)))
	}
	if len(p.MatchImages) == 0 {
		errs = append(errs, field.Required(path.Child("matchImages"), "at least 1 item in matchImages is required"))
	}
	for _, m := range p.MatchImages {
		if _, err := parseSchemeless(m); err != nil {
			errs = append(errs, field.Invalid(path.Child("matchImages"), m, "match image is invalid: "+err.Error()))
		}
	}
	switch {
	case p.DefaultCacheDuration == nil:
		errs = append(errs, field.Required(path.Child("defaultCacheDuration"), ""))
	case p.DefaultCacheDuration.Duration < 0:
		errs = append(errs, field.Invalid(path.Child("defaultCacheDuration"), p.DefaultCacheDuration, "must be greater than or equal to 0"))
	}
	return errs
}

var cacheTypes = sets.New(string(configv1.ServiceAccountServiceAccountTokenCacheType), string(configv1.TokenServiceAccountTokenCacheType))

func validateTokenAttributes(path *field.Path, p configv1.CredentialProvider) field.ErrorList {
	var errs field.ErrorList
	ta := p.TokenAttributes
	if ta.ServiceAccountTokenAudience == "" {
		errs = append(errs, field.Required(path.Child("serviceAccountTokenAudience"), ""))
	}
	if ta.RequireServiceAccount == nil {
		errs = append(errs, field.Required(path.Child("requireServiceAccount"), ""))
	}
	if p.APIVersion != v1APIVersion {
		errs = append(errs, field.Forbidden(path, "tokenAttributes is only supported for "+v1APIVersion+" API version"))
	}
	if ta.RequireServiceAccount != nil && !*ta.RequireServiceAccount && len(ta.RequiredServiceAccountAnnotationKeys) > 0 {
		errs = append(errs, field.Forbidden(path.Child("requiredServiceAccountAnnotationKeys"), "requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set"))
	}
	errs = append(errs, validateAnnotationKeys(path.Child("requiredServiceAccountAnnotationKeys"), ta.RequiredServiceAccountAnnotationKeys)...)
	errs = append(errs, validateAnnotationKeys(path.Child("optionalServiceAccountAnnotationKeys"), ta.OptionalServiceAccountAnnotationKeys)...)
	if both := sets.New(ta.RequiredServiceAccountAnnotationKeys...).Intersection(sets.New(ta.OptionalServiceAccountAnnotationKeys...)); both.Len() > 0 {
		errs = append(errs, field.Invalid(path, sets.List(both), "annotation keys cannot be both required and optional"))
	}
	switch {
	case ta.CacheType == "":
		errs = append(errs, field.Required(path.Child("cacheType"), "cacheType is required to be set when tokenAttributes is specified. Supported values are: "+strings.Join(sets.List(cacheTypes), ", ")))
	case !cacheTypes.Has(string(ta.CacheType)):
		errs = append(errs, field.NotSupported(path.Child("cacheType"), ta.CacheType, sets.List(cacheTypes)))
	}
	return errs
}

// validateAnnotationKeys: annotation-key rules (a qualified name, case
// insensitive) and no duplicates.
func validateAnnotationKeys(path *field.Path, keys []string) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for _, k := range keys {
		for _, msg := range validation.IsQualifiedName(strings.ToLower(k)) {
			errs = append(errs, field.Invalid(path, k, msg))
		}
		if seen.Has(k) {
			errs = append(errs, field.Duplicate(path, k))
		}
		seen.Insert(k)
	}
	return errs
}
