package busybox

import (
	"strings"
	"testing"
)

// FuzzParse checks that no input makes the parser panic or loop; the seeds
// are the comparison scripts.
func FuzzParse(f *testing.F) {
	for _, tc := range compareCases {
		if len(tc.argv) > 2 && tc.argv[0] == "sh" {
			f.Add(tc.argv[2])
		}
	}
	f.Add("a $((1+(2*3)) ${x:-${y}} `echo \\`a\\``\ncat <<E\n$x\nE")
	f.Fuzz(func(t *testing.T, src string) {
		p := newParser(src, 0)
		for i := 0; i <= len(src)+1; i++ {
			l, err := p.parseCommandLine()
			if err != nil || l == nil {
				return
			}
		}
		t.Fatalf("parser made no progress on %q", src)
	})
}

// FuzzArith checks the arithmetic evaluator never panics.
func FuzzArith(f *testing.F) {
	for _, s := range []string{"1+2*3", "x=5, y", "(1<<63)/-1", "a?b:c", "!~-+1", "x+=3", "010+0x1f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		evalArith(s, map[string]string{"x": "3", "a": "1", "b": strings.Repeat("9", 3)})
	})
}
