package reports

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gauntlet-conformance/gauntlet/conformance"
)

// JSONPath is where WriteJSON puts a suite's machine-readable report
// (what --rerun-failed reads).
func JSONPath(dir, suite string) string { return filepath.Join(dir, suite+".json") }

// WriteJSON writes dir/<suite>.json.
func WriteJSON(dir string, r *conformance.Report) (string, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := JSONPath(dir, r.Suite)
	return p, os.WriteFile(p, append(b, '\n'), 0o644)
}

// ReadJSON reads a report written by WriteJSON.
func ReadJSON(path string) (*conformance.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r conformance.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s is not a gauntlet JSON report: %w", path, err)
	}
	return &r, nil
}

// Rerun lists the IDs an earlier report judged red (failed, error,
// unexpected pass, not run, interrupted): what --rerun-failed selects.
func Rerun(r *conformance.Report) map[string]bool {
	ids := map[string]bool{}
	for _, res := range r.Results {
		if res.Verdict.Red() {
			ids[res.ID] = true
		}
	}
	return ids
}
