package expectations

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestJudge(t *testing.T) {
	f, err := Parse([]byte("target: t\nchecks:\n  C11: {reason: wedge, link: https://x}\n  C12: {reason: idle, link: https://y}\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		file  *File
		state State
		id    string
		want  string
	}{
		{"listed and failing", f, Failed, "C11", ExpectedFailure},
		{"listed but passing: the runtime was fixed", f, Passed, "C11", UnexpectedPass},
		{"listed and skipped is not judged", f, Skipped, "C12", Skip},
		{"unlisted failure", f, Failed, "A1", Fail},
		{"unlisted pass", f, Passed, "A1", Pass},
		{"no file: a failure is a failure", nil, Failed, "C11", Fail},
		{"no file: a pass is a pass", nil, Passed, "C11", Pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := tt.file.Judge([]Outcome{{ID: tt.id, State: tt.state}})
			if got := js[0].Verdict; got != tt.want {
				t.Fatalf("verdict %q, want %q", got, tt.want)
			}
			wantOK := tt.want != Fail && tt.want != UnexpectedPass
			if OK(js) != wantOK {
				t.Fatalf("OK = %v, want %v", OK(js), wantOK)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, doc, wantErr string }{
		{"missing link", "checks:\n  C11: {reason: wedge}\n", "needs both reason and link"},
		{"blank reason", "checks:\n  C11: {reason: ' ', link: https://x}\n", "needs both reason and link"},
		{"unknown field (typo)", "checks:\n  C11: {reason: r, link: l, reasn: x}\n", "reasn"},
		{"not YAML", "checks: [", "t.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "t.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestUnknown(t *testing.T) {
	f := &File{Checks: map[string]Entry{"C11": {}, "Z9": {}, "C99": {}}}
	got := f.Unknown(func(id string) bool { return id == "C11" })
	if want := []string{"C99", "Z9"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Unknown = %v, want %v", got, want)
	}
}

// Every committed expectations file parses, names its target after its
// file, and links each entry to a web page.
func TestCommittedFiles(t *testing.T) {
	paths, err := filepath.Glob("../../expectations/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no expectations files found (%v)", err)
	}
	id := regexp.MustCompile(`^[A-G][0-9]+$`)
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			f, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSuffix(filepath.Base(p), ".yaml"); f.Target != want && !(want == "reference" && f.Target != "") {
				t.Errorf("target %q, want %q (the file's name)", f.Target, want)
			}
			for k, e := range f.Checks {
				if !id.MatchString(k) {
					t.Errorf("%s: not a catalogue ID", k)
				}
				if !strings.HasPrefix(e.Link, "https://") {
					t.Errorf("%s: link %q is not a web page", k, e.Link)
				}
			}
		})
	}
	if _, err := os.Stat("../../expectations/reference.yaml"); err != nil {
		t.Errorf("the embedded run's default is missing: %v", err)
	}
}
