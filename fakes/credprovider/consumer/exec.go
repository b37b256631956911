package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/gauntlet-conformance/gauntlet/faults"
)

type response = credentialproviderv1.CredentialProviderResponse

func statDir(dir string) error {
	_, err := os.Stat(dir)
	if os.IsNotExist(err) {
		return fmt.Errorf("plugin binary directory %s did not exist", dir)
	}
	if err != nil {
		return fmt.Errorf("error inspecting binary directory %s: %w", dir, err)
	}
	return nil
}

func lookPath(dir, name string) error {
	p := filepath.Join(dir, name)
	if _, err := exec.LookPath(p); err != nil {
		return fmt.Errorf("plugin binary executable %s did not exist", p)
	}
	return nil
}

// exec runs a provider's plugin once: the request on stdin, the config's
// args, the host env with the config's env over it, the exec deadline.
func (s *scenario) exec(pr *provider, image, token string, annotations map[string]string, fs faults.Set) (*response, error) {
	cfg := pr.cfg
	req := credentialproviderv1.CredentialProviderRequest{Image: image}
	req.Kind, req.APIVersion = "CredentialProviderRequest", cfg.APIVersion
	if token != "" {
		req.ServiceAccountToken = token
		req.ServiceAccountAnnotations = annotations
	}
	in, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("failed to encode auth request: %w", err)
	}
	ctx := s.ctx
	if !fs.Has(faults.CCDeadlineIgnored) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.ref.deadline)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, cfg.Name), cfg.Args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &stdout, &stderr
	var confEnv []string
	for _, e := range cfg.Env {
		confEnv = append(confEnv, e.Name+"="+e.Value)
	}
	// exec keeps the last of duplicate variables: the config's come last.
	cmd.Env = append(append([]string{}, s.environ...), confEnv...)
	if fs.Has(faults.CCEnvHostWins) {
		cmd.Env = append(confEnv, s.environ...)
	}
	if !fs.Has(faults.CCWaitForPluginChildren) {
		// A child the plugin left behind may hold stdout open; after the
		// kill, wait for it only briefly.
		cmd.WaitDelay = time.Second
	}
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("error execing credential provider plugin %s for image %s: %w: %s", cfg.Name, image, ctx.Err(), stderr.String())
	case err != nil && !(fs.Has(faults.CCExitStatusIgnored) && stdout.Len() > 0):
		return nil, fmt.Errorf("error execing credential provider plugin %s for image %s: %w: %s", cfg.Name, image, err, stderr.String())
	}
	return decodeResponse(stdout.Bytes(), cfg.APIVersion, fs)
}

// decodeResponse: the apiVersion must be the request's; decoding is strict
// (unknown and duplicate fields, any text around the document are errors).
func decodeResponse(data []byte, apiVersion string, fs faults.Set) (*response, error) {
	var r response
	if fs.Has(faults.CCDecodeLax) {
		if i := bytes.IndexByte(data, '{'); i >= 0 {
			data = data[i:]
		}
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(&r); err != nil {
			return nil, errors.New("error decoding credential provider plugin response from stdout")
		}
		return &r, nil
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(data, &tm); err != nil {
		return nil, fmt.Errorf("error reading GVK from response: %w", err)
	}
	if tm.APIVersion != apiVersion {
		return nil, fmt.Errorf("apiVersion from credential plugin response did not match expected apiVersion:%s, actual apiVersion:%s", apiVersion, tm.APIVersion)
	}
	strict, err := sigsjson.UnmarshalStrict(data, &r, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil || len(strict) > 0 {
		// Not wrapped: the text may hold credentials.
		return nil, errors.New("error decoding credential provider plugin response from stdout")
	}
	if tm.Kind != "CredentialProviderResponse" {
		return nil, fmt.Errorf("failed to decode CredentialProviderResponse, unexpected Kind: %q", tm.Kind)
	}
	return &r, nil
}
