package busybox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a goroutine-safe bytes.Buffer for process output.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

type result struct {
	stdout, stderr string
	code           int
}

// runFake runs argv on a fresh machine whose PID 1 is a long sleep (as in a
// container, so exec'd commands are not init).
func runFake(t testing.TB, stdin string, argv ...string) result {
	t.Helper()
	m := NewMachine(NewNetns())
	defer m.KillAll()
	startInit(t, m)
	return runOn(t, m, stdin, argv...)
}

func startInit(t testing.TB, m *Machine) {
	t.Helper()
	go m.Run(context.Background(), []string{"sleep", "3600"}, Stdio{})
	waitFor(t, func() bool { return len(m.Processes()) == 1 })
}

func runOn(t testing.TB, m *Machine, stdin string, argv ...string) result {
	t.Helper()
	out, errb := newSyncBuffer(), newSyncBuffer()
	stdio := Stdio{Stdout: out, Stderr: errb}
	if stdin != "" {
		stdio.Stdin = strings.NewReader(stdin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code := m.Run(ctx, argv, stdio)
	return result{out.String(), errb.String(), code}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const realBusybox = "/bin/busybox"

func runReal(t testing.TB, stdin string, argv ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, realBusybox, argv...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		t.Fatalf("run busybox: %v", err)
	}
	return result{out.String(), errb.String(), code}
}

// compareCases are command lines whose output must be byte-identical to
// real busybox (they avoid PIDs, timing and the host filesystem).
var compareCases = []struct {
	name  string
	stdin string
	argv  []string
}{
	{"printf out err", "", sh("printf out; printf err >&2")},
	{"exit 3", "", sh("exit 3")},
	{"exit 300", "", sh("exit 300")},
	{"exit bad", "", sh("echo a; exit abc")},
	{"exit bad line 2", "", sh("echo a\nexit abc")},
	{"echo hi exit", "", sh("echo hi; exit 3")},
	{"true", "", []string{"true"}},
	{"false", "", []string{"false"}},
	{"echo applet", "", []string{"echo", "alive"}},
	{"echo -n", "", sh("echo -n a; echo b")},
	{"echo -e", "", sh(`echo -e "a\tb\0101\101\x41\e\q\c" z; echo`)},
	{"echo no -e", "", sh(`echo "a\nb" -x -n`)},
	{"echo options", "", sh(`echo -nx a; echo -- b; echo -n -e 'c\n'`)},
	{"quoting", "", sh(`x="a  b"; echo $x "$x" '$x' \$x "\$x" "a\\b" 'a\\b' a\\b ""`)},
	{"empty args", "", sh(`printf '[%s]' "" '' a""b; echo`)},
	{"vars", "", sh(`x=1; y=2; echo ${x}y $x$y "${x}" ${undefined}end`)},
	{"param ops", "", sh(`echo ${x:-def} ${#x} ${x-un}; x=; echo ${x:-d} ${x-u} ${x:+p} ${x+q}; y=abc; echo ${#y} ${y:+set} ${z:=zz} $z`)},
	{"param error", "", sh(`echo ${x?oops}; echo after`)},
	{"status", "", sh(`false; echo $?; true; echo $?; ! true; echo $?`)},
	{"and or", "", sh(`true && echo a; false && echo b; false || echo c; true || echo d; false || false && echo e; echo $?`)},
	{"for", "", sh(`for i in 1 2 3; do echo burst$i; done`)},
	{"for empty", "", sh(`for i in; do echo x; done; echo $?`)},
	{"for args", "", sh(`for a; do echo "<$a>"; done`, "zero", "one", "two words")},
	{"positional", "", sh(`echo $0 $# $1 "$2"; shift; echo $1; set -- x y; echo $# $@`, "name", "a", "b c")},
	{"dollar at", "", sh(`printf '<%s>' "$@"; echo; printf '<%s>' $@; echo; printf '<%s>' "$*"; echo`, "n", "a b", "c")},
	{"while", "", sh(`i=0; while [ $i -lt 3 ]; do echo $i; i=$((i+1)); done`)},
	{"until", "", sh(`i=0; until [ $i -ge 2 ]; do i=$((i+1)); done; echo $i`)},
	{"break continue", "", sh(`for i in 1 2 3 4; do [ $i = 2 ] && continue; [ $i = 4 ] && break; echo $i; done; for i in a b; do for j in 1 2; do echo $i$j; break 2; done; done`)},
	{"if", "", sh(`if false; then echo a; elif true; then echo b; else echo c; fi; if false; then :; fi; echo $?`)},
	{"brace group", "", sh(`{ echo a; echo b; } >&2; { echo c; }`)},
	{"subshell", "", sh(`x=1; (x=2; echo $x; exit 4); echo $? $x`)},
	{"case", "", sh(`for w in apple b.txt x; do case $w in a*) echo A;; *.txt|*.md) echo T;; *) echo other;; esac; done`)},
	{"functions", "", sh(`f() { echo "f:$1:$#"; return 3; }; f a b; echo $?; g() { echo g; }; g`)},
	{"cmd subst", "", sh(`echo "$(echo hi; echo)" $(echo a   b) ` + "`echo c`" + `; x=$(false); echo $?`)},
	{"arith", "", sh(`x=5; echo $((x*2+1)) $((x/2)) $((x%3)) $((1<<4)) $((x>3 && x<10)) $((0x10)) $((010)) $((-x)) $((x==5?7:8)); echo $((y+=3)) $y`)},
	{"arith div zero", "", sh(`echo $((1/0)); echo after`)},
	{"arith syntax", "", sh(`echo $((1+))`)},
	{"heredoc", "", sh("x=v\ncat <<EOF\nline $x\n  two\nEOF\ncat <<'E'\nraw $x\nE")},
	{"redirects", "", sh(`echo out >/dev/null; echo err 2>/dev/null >&2; echo both 2>&1; ls_nope 2>/dev/null; echo $?; echo x 1>&2`)},
	{"redirect bad fd", "", sh(`echo a >&5; echo $?`)},
	{"redirect missing file", "", sh(`cat < /nonexist; echo $?`)},
	{"redirect nonexistent dir", "", sh(`echo a > /nonexist/x; echo $?`)},
	{"exec redirect", "", sh(`exec 2>&1; echo to-err >&2`)},
	{"exec not found", "", sh(`exec nosuch`)},
	{"not found", "", sh(`nosuch; echo $?`)},
	{"not found path", "", sh(`/gauntlet/no-such-binary; echo $?`)},
	{"syntax if", "", sh(`if true; then echo`)},
	{"syntax early", "", sh(`echo a; if`)},
	{"syntax late", "", sh("echo a\nif")},
	{"syntax done", "", sh(`done`)},
	{"syntax quote", "", sh(`echo 'a`)},
	{"syntax semi", "", sh(`if true; then; fi`)},
	{"syntax fi", "", sh(`if true; fi`)},
	{"syntax for", "", sh(`for x in a; echo; done`)},
	{"syntax paren", "", sh(`echo )`)},
	{"syntax andand", "", sh(`a && && b`)},
	{"syntax dsemi", "", sh(`echo a;;`)},
	{"syntax brace", "", sh(`{ echo a`)},
	{"syntax redirect", "", sh(`echo a >`)},
	{"syntax subst", "", sh(`echo $(echo`)},
	{"syntax arith", "", sh(`echo $((`)},
	{"syntax param", "", sh(`echo ${x`)},
	{"printf formats", "", sh(`printf "%5s|%-5s|%05d|%x|%X|%o|%u|%c|%i|%%|%.2s|%5.1s|%+d|% d\n" a b 42 255 255 8 3 abc 4 abcdef xyz 5 6`)},
	{"printf reuse", "", sh(`printf "%s-%s\n" a b c; printf "%s %s\n" a; printf "x\n" extra`)},
	{"printf numbers", "", sh(`printf "%d %d %d %d\n" 0x1f 010 "'A" -3; printf "%u %x\n" -1 -1`)},
	{"printf bad number", "", sh(`printf "%d|%d\n" abc 3.5; echo $?`)},
	{"printf floats", "", sh(`printf "%f %.2f %e %g %g\n" 1.5 2 12345.678 0.0001 1234567`)},
	{"printf escapes", "", sh(`printf '\e|\q|\0101|\101|\x41|\x4g|%b|\t|\\|\r\n' '\0101\101\e\n'`)},
	{"printf %b \\c", "", sh(`printf '%b|after' 'x\cy'; echo`)},
	{"printf no args", "", sh(`printf`)},
	{"printf bad format", "", sh(`printf "%q" a; echo $?`)},
	{"printf applet", "", []string{"printf", "%s=%d\n", "a", "1", "b", "2"}},
	{"read loop", "one\ntwo\n  three  four \nlast", sh(`while read l; do echo "got:$l"; done`)},
	{"read fields", "a b c d\n", sh(`read x y z; echo "[$x][$y][$z]"`)},
	{"read backslash", "a\\ b\\\nc\n", sh(`read x; echo "[$x]"`)},
	{"read raw", "a\\ b\n", sh(`read -r x; echo "[$x]"`)},
	{"read eof", "", sh(`read x; echo $? "[$x]"`)},
	{"read then cat", "first\nrest1\nrest2\n", sh(`read x; echo "[$x]"; cat`)},
	{"read reply", " sp \n", sh(`read; echo "[$REPLY]"`)},
	{"cat stdin", "hello\nworld\n", []string{"cat"}},
	{"cat dash", "abc", sh(`cat -; echo`)},
	{"cat missing", "", sh(`cat /nonexist; echo $?`)},
	{"head -c zero", "", sh(`head -c 100000 /dev/zero | wc -c`)},
	{"head -c stdin", "abcdefgh", []string{"head", "-c", "3"}},
	{"head lines", "1\n2\n3\n4\n", sh(`head -n 2; echo; printf '1\n2\n3\n' | head -1`)},
	{"head missing", "", sh(`head -c 5 /nonexist; echo $?`)},
	{"head sizes", "", sh(`head -c 1k /dev/zero | wc -c; head -c 2b /dev/zero | wc -c`)},
	{"wc", "a b\nc\n", sh(`wc`)},
	{"wc -c", "hello", []string{"wc", "-c"}},
	{"wc -l", "a\nb\n", sh(`wc -l; printf 'a b\nc\n' | wc -w -c`)},
	{"pipes", "", sh(`echo hello | cat | wc -c; yes | head -c 6; echo; false | true; echo $?; true | false; echo $?`)},
	{"pipe status", "", sh(`yes | head -n 2; echo $?`)},
	{"seq", "", sh(`seq 3; seq 2 4; seq 1 2 7; seq -s , 3; echo; seq 3 1`)},
	{"test", "", sh(`[ 1 = 1 ] && echo a; [ a != a ] || echo b; test -z "" && echo c; test -n x && echo d; [ 2 -gt 1 -a 3 -le 3 ] && echo e; [ ! -e /nonexist ] && echo f; [ -d /tmp ] && echo g; test; echo $?`)},
	{"test errors", "", sh(`test 1 -eq a; echo $?; [ 1 = 1; echo $?; test a -a; echo $?`)},
	{"kill errors", "", sh(`kill; echo $?; kill -9; echo $?; kill abc; echo $?; kill -FOO 1; echo $?; kill -s; echo $?; kill 99999; echo $?`)},
	{"kill -l", "", sh(`kill -l; kill -l 9 137 TERM`)},
	{"kill self", "", sh(`echo before; kill -9 $$; echo after`)},
	{"kill self term", "", sh(`kill $$`)},
	{"signal messages", "", sh(`sh -c 'kill -9 $$'; echo $?; sh -c 'kill $$'; echo $?; sh -c 'kill -HUP $$'; echo $?; sh -c 'kill -INT $$'; echo $?; sh -c 'kill -PIPE $$'; echo $?; sh -c 'kill -USR1 $$'; echo $?; sh -c 'kill -ABRT $$'; echo $?`)},
	{"quit ignored", "", sh(`kill -QUIT $$; echo survived`)},
	{"signal redirected", "", sh(`sh -c 'kill $$' 2>/dev/null; echo $?`)},
	{"bg wait", "", sh(`sleep 0.1 & wait; echo $?; (exit 3) & wait $!; echo $?; wait 12345; echo $?`)},
	{"bg killed wait", "", sh(`sleep 5 & kill -9 $!; wait $!; echo $?`)},
	{"sleep errors", "", sh(`sleep abc; echo $?`)},
	{"sleep usage", "", sh(`sleep; echo $?`)},
	{"sleep sum", "", sh(`sleep 0.05 0.01s; echo $?`)},
	{"stty no tty", "", []string{"stty", "size"}},
	{"stty no tty sh", "", sh(`stty size; echo $?`)},
	{"errexit", "", sh(`set -e; true; false; echo no`)},
	{"errexit cond", "", sh(`set -e; if false; then :; fi; false || true; ! true; echo yes`)},
	{"eval", "", sh(`eval "echo \$((2+3))"; x='echo evaluated'; eval $x`)},
	{"cd", "", sh(`cd /nonexist; echo after`)},
	{"tilde", "", sh(`echo ~ ~/x a~`)},
	{"dollar dash", "", sh(`echo $-`)},
	{"comments", "", sh("echo a # comment\n# whole line\necho b#c")},
	{"line continuation", "", sh("echo a \\\nb")},
	{"semicolon newline", "", sh("echo a;\necho b\n\n")},
	{"nc usage", "", []string{"nc"}},
	{"shift too many", "", sh(`shift 3; echo $?`)},
	{"unset", "", sh(`x=1; unset x; echo "[$x]"`)},
	{"prefix assign", "", sh(`x=1; x=2 true; echo $x`)},
	{"ifs", "", sh(`IFS=:; x=a:b:c; for i in $x; do echo $i; done`)},
	{"nested quotes", "", sh(`echo "$(echo "inner $(echo deep)")"`)},
	{"break outside", "", sh(`break; echo x`)},
	{"stdin script", "echo a\nif true\nthen echo b; fi\nexit abc\necho no\n", []string{"sh"}},
	{"stdin script syntax", "echo a\nif\n", []string{"sh"}},
	{"subshell pid", "", sh(`[ "$(echo $$)" = "$$" ] && (echo $$) | grep_missing 2>/dev/null; [ "$(echo $$)" = "$$" ] && echo same`)},
	{"exec stdout", "", sh(`exec >/dev/null; echo hidden; echo shown >&2`)},
	{"closed fd", "", sh(`echo a >&-; echo $?; printf x >&-; echo $?`)},
	{"heredoc dash", "", sh("cat <<-E\n\tindented $HOME\n\tE\necho after")},
	{"case quoting", "", sh(`x='*'; case a in "$x") echo lit;; *) echo glob;; esac; case '*' in "$x") echo lit;; esac`)},
	{"head default", "", sh(`seq 20 | head; seq 3 | head -n 1; seq 5 | head -3`)},
	{"seq -w", "", sh(`seq -w 8 10; seq 0.5 0.5 2`)},
	{"yes args", "", sh(`yes a b | head -n 2`)},
	{"kill -0", "", sh(`kill -0 $$; echo $?`)},
	{"read prompt no tty", "", sh(`read -p "name? " x </dev/null; echo "[$x]"`)},
	{"export", "", sh(`export X=1; Y=2 sh -c 'echo $X $Y'; Z=3; sh -c 'echo [$Z]'; env | grep_missing 2>/dev/null; true`)},
	{"printf width star", "", sh(`printf '%*d|%-*s|\n' 5 42 4 ab`)},
	{"printf %c", "", sh(`printf '%c%c%c\n' abc "" z`)},
	{"arith vars", "", sh(`a=3; b=4; echo $((a*b)) $(( a + b )) $((a<b)) $((a<<1)) $((b>>1)) $((a&b|1^2)) $((!a)) $((~a)) $(( (a+1)*2 ))`)},
	{"wc files", "", sh(`printf 'ab\nc' > /tmp/bbcmp-wc; wc -l -c /tmp/bbcmp-wc; wc -L < /tmp/bbcmp-wc`)},
	{"cat files", "", sh(`printf 'one\n' > /tmp/bbcmp-cat; cat /tmp/bbcmp-cat - /tmp/bbcmp-cat </dev/null`)},
	{"redirect append", "", sh(`echo a > /tmp/bbcmp-app; echo b >> /tmp/bbcmp-app; cat /tmp/bbcmp-app`)},
	{"loop redirect", "a\nb\n", sh(`while read l; do echo "<$l>"; done > /tmp/bbcmp-loop; cat /tmp/bbcmp-loop`)},
	{"bg ignores INT QUIT", "", sh(`sleep 0.3 & p=$!; sleep 0.1; kill -INT $p; wait $p; echo $?; sleep 0.3 & p=$!; sleep 0.1; kill -QUIT $p; wait $p; echo $?; sleep 5 & p=$!; sleep 0.1; kill -TERM $p; wait $p; echo $?`)},
	{"echo builtin vs applet", "", sh(`echo -e 'x\ty'; /bin/echo -e 'x\ty'`)},
}

func sh(script string, args ...string) []string {
	return append([]string{"sh", "-c", script}, args...)
}

func TestCompareWithRealBusybox(t *testing.T) {
	if _, err := os.Stat(realBusybox); err != nil {
		t.Skip("no real busybox to compare with")
	}
	// A run started under nohup, or as a shell's background job, inherits
	// SIGHUP/SIGINT/SIGQUIT ignored, and exec keeps them ignored: the real
	// busybox would then survive `kill -HUP $$`, unlike in a container. A
	// caught signal is reset to its default on exec, so catch the ignored
	// ones while the real busybox runs.
	caught := make(chan os.Signal, 1)
	for _, s := range []os.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT} {
		if signal.Ignored(s) {
			signal.Notify(caught, s)
		}
	}
	t.Cleanup(func() { signal.Stop(caught) })
	t.Cleanup(func() {
		// Files the real busybox wrote for the cases that use /tmp.
		names, _ := filepath.Glob("/tmp/bbcmp-*")
		for _, n := range names {
			os.Remove(n)
		}
	})
	for _, tc := range compareCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := runReal(t, tc.stdin, tc.argv...)
			got := runFake(t, tc.stdin, tc.argv...)
			if got != want {
				t.Errorf("%q\n got: stdout %q stderr %q code %d\nwant: stdout %q stderr %q code %d",
					tc.argv, got.stdout, got.stderr, got.code, want.stdout, want.stderr, want.code)
			}
		})
	}
}
