package consumer

import (
	"net/url"
	"sort"
	"strings"
)

// keyring orders what the providers returned as the kubelet's
// BasicDockerKeyring does: auth keys reverse-sorted (more specific paths
// first), each key's credentials in provider order, Docker Hub's
// index.docker.io entry as the fallback for default-registry images.
type keyring struct {
	index []string
	creds map[string][]Credential
}

func (k *keyring) add(cfg map[string]Credential) {
	if k.creds == nil {
		k.creds = map[string][]Credential{}
	}
	// One provider's keys in a stable order (the kubelet ranges over a
	// map; distinct keys land in the sorted index anyway).
	keys := make([]string, 0, len(cfg))
	for r := range cfg {
		keys = append(keys, r)
	}
	sort.Strings(keys)
	for _, r := range keys {
		c := cfg[r]
		repo := r
		if !strings.HasPrefix(repo, "https://") && !strings.HasPrefix(repo, "http://") {
			repo = "https://" + repo
		}
		u, err := url.Parse(repo)
		if err != nil {
			continue
		}
		p := u.Path
		if strings.HasPrefix(p, "/v2/") || strings.HasPrefix(p, "/v1/") {
			p = p[3:]
		}
		key := u.Host
		if p != "" && p != "/" {
			key += p
		}
		if _, seen := k.creds[key]; !seen {
			k.index = append(k.index, key)
		}
		k.creds[key] = append(k.creds[key], c)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(k.index)))
}

func (k *keyring) lookup(image string) []Credential {
	out := []Credential{}
	for _, key := range k.index {
		if urlsMatch(key, image, nil) {
			out = append(out, k.creds[key]...)
		}
	}
	if len(out) == 0 && isDefaultRegistry(image) {
		out = append(out, k.creds["index.docker.io"]...)
	}
	return out
}

func isDefaultRegistry(image string) bool {
	first, _, found := strings.Cut(image, "/")
	switch {
	case first == "":
		return false
	case !found:
		return true
	case first == "docker.io" || first == "index.docker.io":
		return true
	}
	return !strings.ContainsAny(first, ".:")
}
