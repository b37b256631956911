// Package probe is the recording probe plugin the credprovider suite's K and
// S checks install under every provider name of a consumer's config: a
// scriptable credential provider plugin that records each invocation (args,
// selected env, the request with the service-account token replaced by its
// hash, the token's decoded claims) and answers as its script says.
//
// It runs inside whatever binary links this package (the gauntlet CLI, a
// test binary): the suite writes a two-line shell wrapper per provider name,
//
//	#!/bin/sh
//	GAUNTLET_CREDPROVIDER_PROBE='<state>/<name>' exec '<this binary>' "$@"
//
// and this package's init, seeing the variable, runs the probe instead of
// the program and exits. The config's args reach the probe unchanged
// ("$@"), and the wrapper's exec keeps the PID the consumer kills at its
// deadline. Files, next to the state prefix P: P.script.json (written by the
// suite) and P.records.jsonl (one Record per invocation, appended under an
// exclusive lock so invocation numbers are exact under concurrency). The
// formats are internal/credwire's ProbeScript and ProbeRecord, shared with
// the suite that writes the scripts and reads the records.
package probe

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gauntlet-conformance/gauntlet/internal/credwire"
	"github.com/gauntlet-conformance/gauntlet/internal/satoken"
)

// Env names the state prefix of a probe invocation.
const Env = "GAUNTLET_CREDPROVIDER_PROBE"

// hangLimit bounds a hanging probe that nobody kills (a consumer without a
// deadline): it also exits as soon as its records file is removed, which the
// suite's scenario cleanup does.
const hangLimit = 10 * time.Minute

// childEnv marks the probe's own child (HangChild): it only waits.
const childEnv = "GAUNTLET_CREDPROVIDER_PROBE_CHILD"

func init() {
	if prefix := os.Getenv(Env); prefix != "" {
		if os.Getenv(childEnv) != "" {
			wait(prefix+".records.jsonl", hangLimit)
			os.Exit(0)
		}
		os.Exit(Main(prefix, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
}

// Executable is the binary the suite's wrappers exec: this one.
func Executable() (string, error) { return os.Executable() }

// Main runs one probe invocation; prefix is the state prefix.
func Main(prefix string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	rec := credwire.ProbeRecord{Name: filepath.Base(prefix), PID: os.Getpid(), Start: time.Now(), Args: append([]string{}, args...)}
	var script credwire.ProbeScript
	if b, err := os.ReadFile(prefix + ".script.json"); err != nil {
		fmt.Fprintf(stderr, "probe %s: no script: %v\n", rec.Name, err)
		return 3
	} else if err := json.Unmarshal(b, &script); err != nil {
		fmt.Fprintf(stderr, "probe %s: bad script: %v\n", rec.Name, err)
		return 3
	}
	for _, k := range script.RecordEnv {
		if v, ok := os.LookupEnv(k); ok {
			if rec.Env == nil {
				rec.Env = map[string]string{}
			}
			rec.Env[k] = v
		}
	}
	in, _ := io.ReadAll(io.LimitReader(stdin, 1<<20))
	var req map[string]json.RawMessage
	token := ""
	if err := json.Unmarshal(in, &req); err != nil {
		rec.RequestError = err.Error()
	} else {
		for k := range req {
			rec.Fields = append(rec.Fields, k)
		}
		str := func(k string) string {
			var s string
			_ = json.Unmarshal(req[k], &s)
			return s
		}
		rec.APIVersion, rec.Kind, rec.Image = str("apiVersion"), str("kind"), str("image")
		if _, ok := req["serviceAccountToken"]; ok {
			token = str("serviceAccountToken")
			rec.HasToken = true
			sum := sha256.Sum256([]byte(token))
			rec.TokenHash = fmt.Sprintf("sha256:%x", sum)
			c, err := satoken.Decode(token)
			rec.Claims = &credwire.ProbeClaims{Audience: c.Audience, Namespace: c.Namespace, ServiceAccount: c.ServiceAccount,
				ServiceAccountUID: c.ServiceAccountUID, PodName: c.PodName, PodUID: c.PodUID}
			if err != nil {
				rec.Claims.Error = err.Error()
			}
		}
		if a, ok := req["serviceAccountAnnotations"]; ok {
			_ = json.Unmarshal(a, &rec.Annotations)
		}
	}
	n, err := appendRecord(prefix+".records.jsonl", &rec)
	if err != nil {
		fmt.Fprintf(stderr, "probe %s: record: %v\n", rec.Name, err)
		return 3
	}
	if len(script.Responses) == 0 {
		fmt.Fprintf(stderr, "probe %s: the script has no responses\n", rec.Name)
		return 3
	}
	r := script.Responses[min(n, len(script.Responses))-1]
	sa, ns, pod := "-", "-", "-"
	if rec.Claims != nil {
		sa, ns, pod = rec.Claims.ServiceAccount, rec.Claims.Namespace, rec.Claims.PodName
	}
	tmpl := strings.NewReplacer("{name}", rec.Name, "{n}", strconv.Itoa(n), "{image}", rec.Image,
		"{ns}", ns, "{sa}", sa, "{pod}", pod, "{token}", token)

	if r.HangChild {
		if exe, err := os.Executable(); err == nil {
			c := exec.Command(exe)
			c.Env = append(os.Environ(), childEnv+"=1")
			c.Stdout, c.Stderr = stdout, stderr
			if err := c.Start(); err != nil {
				fmt.Fprintf(stderr, "probe %s: child: %v\n", rec.Name, err)
			}
		}
	}
	if r.Hang || r.HangChild {
		wait(prefix+".records.jsonl", hangLimit)
		return 4
	}
	if r.Sleep != "" {
		d, err := time.ParseDuration(r.Sleep)
		if err != nil {
			fmt.Fprintf(stderr, "probe %s: bad sleep %q\n", rec.Name, r.Sleep)
			return 3
		}
		wait(prefix+".records.jsonl", d)
	}
	if r.Stderr != "" {
		fmt.Fprint(stderr, tmpl.Replace(r.Stderr))
	}
	var out []byte
	if r.Raw != nil {
		out = []byte(tmpl.Replace(*r.Raw))
	} else {
		resp := map[string]any{"kind": "CredentialProviderResponse"}
		resp["apiVersion"] = rec.APIVersion
		if r.APIVersion != "" {
			resp["apiVersion"] = r.APIVersion
		}
		if r.CacheKeyType != "" {
			resp["cacheKeyType"] = r.CacheKeyType
		}
		if r.CacheDuration != nil {
			resp["cacheDuration"] = *r.CacheDuration
		}
		auth := map[string]credwire.Credential{}
		for k, v := range r.Auth {
			auth[tmpl.Replace(k)] = credwire.Credential{Username: tmpl.Replace(v.Username), Password: tmpl.Replace(v.Password)}
		}
		resp["auth"] = auth
		for k, v := range r.Extra {
			resp[k] = v
		}
		b, err := json.Marshal(resp)
		if err != nil {
			fmt.Fprintf(stderr, "probe %s: encode: %v\n", rec.Name, err)
			return 3
		}
		out = append([]byte(r.Prefix), b...)
	}
	if _, err := stdout.Write(out); err != nil {
		return 3
	}
	return r.ExitCode
}

// appendRecord numbers rec (1 + the records before it) and appends it, under
// an exclusive lock on the file.
func appendRecord(path string, rec *credwire.ProbeRecord) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return 0, err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	n := 1
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			n++
		}
	}
	rec.N = n
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	_, err = f.Write(append(b, '\n'))
	return n, err
}

// wait sleeps for d, or until path disappears (the scenario was cleaned up).
func wait(path string, d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		time.Sleep(min(100*time.Millisecond, time.Until(end)))
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return
		}
	}
}
