package tailbuf

import "testing"

func TestBuffer(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"under the limit", 10, []string{"ab", "cd"}, "abcd"},
		{"at the limit", 4, []string{"ab", "cd"}, "abcd"},
		{"over in one write", 3, []string{"abcdef"}, "def"},
		{"over across writes", 5, []string{"abc", "def", "gh"}, "defgh"},
		{"nothing written", 5, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := New(tc.max)
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := b.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}
