package busybox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// applets are the programs in the image's /bin; each runs as its own process.
var applets map[string]func(*env) int

func init() {
	applets = map[string]func(*env) int{
		"sh":      appletSh,
		"ash":     appletSh,
		"busybox": appletBusybox,
		"cat":     appletCat,
		"echo":    appletEcho,
		"env":     appletEnv,
		"false":   func(*env) int { return 1 },
		"head":    appletHead,
		"httpd":   appletHttpd,
		"kill":    appletKill,
		"nc":      appletNc,
		"printf":  appletPrintf,
		"ps":      appletPs,
		"seq":     appletSeq,
		"sleep":   appletSleep,
		"stty":    appletStty,
		"test":    appletTest,
		"[":       appletTest,
		"true":    func(*env) int { return 0 },
		"wc":      appletWc,
		"yes":     appletYes,
	}
}

// binDirs are where the image has its applet links.
var binDirs = map[string]bool{"/bin": true, "/sbin": true, "/usr/bin": true, "/usr/sbin": true}

// lookupApplet resolves a command name or path the way PATH lookup and
// execve would in the image.
func lookupApplet(name string) func(*env) int {
	if strings.Contains(name, "/") {
		dir, base := path.Split(name)
		if !binDirs[path.Clean(dir)] {
			return nil
		}
		return applets[base]
	}
	return applets[name]
}

// execArgv runs argv in process p with descriptors t and returns its exit
// status. An unknown program prints ash's "not found" message (the runtime
// would report an exec failure; 127 either way).
func execArgv(p *proc, t *fdTable, argv []string, environ map[string]string) int {
	a := lookupApplet(argv[0])
	if a == nil {
		t.write(p.ctx, 2, []byte("sh: "+argv[0]+": not found\n")) //nolint:errcheck
		return 127
	}
	return a(&env{p: p, fds: t, argv: argv, name: path.Base(argv[0]), environ: environ})
}

// baseEnviron is a container process's initial environment.
func baseEnviron() map[string]string {
	return map[string]string{
		"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME": "/root",
	}
}

const bbVersion = "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary."

// usage prints an applet's help the way busybox does for bad invocations.
func usage(e *env, text string) int {
	e.fds.write(e.p.ctx, 2, []byte(bbVersion+"\n\n"+text)) //nolint:errcheck
	return 1
}

func appletBusybox(e *env) int {
	if len(e.argv) < 2 {
		e.out(bbVersion + "\n") //nolint:errcheck
		return 0
	}
	name := e.argv[1]
	a := applets[name]
	if a == nil {
		e.errf("applet not found")
		return 1
	}
	return a(&env{p: e.p, fds: e.fds, argv: e.argv[1:], name: name, environ: e.environ})
}

func appletEnv(e *env) int {
	environ := copyMap(e.environ)
	args := e.argv[1:]
	for len(args) > 0 && strings.Contains(args[0], "=") {
		k, v, _ := strings.Cut(args[0], "=")
		environ[k] = v
		args = args[1:]
	}
	if len(args) > 0 {
		return execArgv(e.p, e.fds, args, environ)
	}
	keys := make([]string, 0, len(environ))
	for k := range environ {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + environ[k] + "\n")
	}
	return boolStatus(e.out(b.String()) == nil)
}

// interrupted reports whether err means "the process was killed".
func interrupted(err error) bool { return errors.Is(err, errInterrupted) }

// copyOut streams from src to stdout in chunks; n < 0 means until EOF.
// It returns false if writing failed.
func copyOut(e *env, read func([]byte) (int, error), n int64) (ok bool, rerr error) {
	buf := make([]byte, chunkSize)
	for n != 0 {
		want := len(buf)
		if n > 0 && int64(want) > n {
			want = int(n)
		}
		k, err := read(buf[:want])
		if k > 0 {
			if e.write(1, buf[:k]) != nil {
				return false, nil
			}
			if n > 0 {
				n -= int64(k)
			}
		}
		if err != nil {
			if err == io.EOF {
				return true, nil
			}
			return true, err
		}
	}
	return true, nil
}

// open opens an applet's file operand ("-" is stdin).
func (e *env) open(name string) (*ofile, error) {
	if name == "-" {
		o := e.fds.get(0)
		if o == nil {
			return nil, syscall.EBADF
		}
		return o.ref(), nil
	}
	return e.p.m.openFile(e.fds, name, false, false)
}

func appletCat(e *env) int {
	var files []string
	for _, a := range e.argv[1:] {
		if len(a) > 1 && a[0] == '-' {
			continue // -u and friends change nothing here
		}
		files = append(files, a)
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	status := 0
	for _, f := range files {
		o, err := e.open(f)
		if err != nil {
			e.errf("can't open '%s': %s", f, strerror(err))
			status = 1
			continue
		}
		ok, rerr := copyOut(e, func(b []byte) (int, error) { return o.f.read(e.ctx(), b) }, -1)
		o.unref()
		if !ok {
			return 1
		}
		if rerr != nil {
			if interrupted(rerr) {
				return 1
			}
			e.errf("read error: %s", strerror(rerr))
			status = 1
		}
	}
	return status
}

// parseSize parses head's N with busybox's b/k/m suffixes.
func parseSize(s string) (int64, bool) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "b"):
		mult, s = 512, s[:len(s)-1]
	case strings.HasSuffix(s, "k"):
		mult, s = 1024, s[:len(s)-1]
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n * mult, true
}

func appletHead(e *env) int {
	lines, bytesMode := int64(10), false
	count := lines
	verbose, quiet := false, false
	var files []string
	args := e.argv[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-" || len(a) < 2 || a[0] != '-' {
			files = append(files, a)
			continue
		}
		if a == "--" {
			files = append(files, args[i+1:]...)
			break
		}
		if a[1] >= '0' && a[1] <= '9' {
			n, ok := parseSize(a[1:])
			if !ok {
				e.errf("invalid number '%s'", a[1:])
				return 1
			}
			count, bytesMode = n, false
			continue
		}
		switch a[1] {
		case 'c', 'n':
			val := a[2:]
			if val == "" {
				if i+1 >= len(args) {
					e.errf("option requires an argument -- '%c'", a[1])
					return usage(e, headUsage)
				}
				i++
				val = args[i]
			}
			n, ok := parseSize(val)
			if !ok {
				e.errf("invalid number '%s'", val)
				return 1
			}
			count, bytesMode = n, a[1] == 'c'
		case 'q':
			quiet = true
		case 'v':
			verbose = true
		default:
			e.errf("invalid option -- '%c'", a[1])
			return usage(e, headUsage)
		}
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	headers := (len(files) > 1 && !quiet) || verbose
	status := 0
	for i, f := range files {
		o, err := e.open(f)
		if err != nil {
			e.errf("%s: %s", f, strerror(err))
			status = 1
			continue
		}
		if headers {
			sep := ""
			if i > 0 {
				sep = "\n"
			}
			name := f
			if f == "-" {
				name = "standard input"
			}
			if e.out(sep+"==> "+name+" <==\n") != nil {
				o.unref()
				return 1
			}
		}
		read := func(b []byte) (int, error) { return o.f.read(e.ctx(), b) }
		var ok bool
		var rerr error
		if bytesMode {
			ok, rerr = copyOut(e, read, count)
		} else {
			ok, rerr = headLines(e, read, count)
		}
		o.unref()
		if !ok || interrupted(rerr) {
			return 1
		}
	}
	return status
}

const headUsage = `Usage: head [OPTIONS] [FILE]...

Print first 10 lines of FILEs (or stdin).
With more than one FILE, precede each with a filename header.

	-n N[bkm]	Print first N lines
	-n -N[bkm]	Print all except N last lines
	-c [-]N[bkm]	Print first N bytes
			(b:*512 k:*1024 m:*1024^2)
	-q		Never print headers
	-v		Always print headers
`

func headLines(e *env, read func([]byte) (int, error), n int64) (bool, error) {
	buf := make([]byte, chunkSize)
	for n > 0 {
		k, err := read(buf)
		chunk := buf[:k]
		for i, c := range chunk {
			if c == '\n' {
				n--
				if n == 0 {
					chunk = chunk[:i+1]
					break
				}
			}
		}
		if len(chunk) > 0 && e.write(1, chunk) != nil {
			return false, nil
		}
		if err != nil {
			if err == io.EOF {
				return true, nil
			}
			return true, err
		}
	}
	return true, nil
}

func appletWc(e *env) int {
	var want []byte // columns in busybox order: l w c/m L
	var files []string
	for _, a := range e.argv[1:] {
		if len(a) > 1 && a[0] == '-' {
			for _, f := range []byte(a[1:]) {
				if strings.IndexByte("lwcmL", f) < 0 {
					e.errf("invalid option -- '%c'", f)
					return 1
				}
				if bytes.IndexByte(want, f) < 0 {
					want = append(want, f)
				}
			}
			continue
		}
		files = append(files, a)
	}
	if len(want) == 0 {
		want = []byte("lwc")
	}
	var cols []byte
	for _, c := range []byte("lwmcL") {
		if bytes.IndexByte(want, c) >= 0 {
			cols = append(cols, c)
		}
	}
	names := files
	if len(files) == 0 {
		names = []string{"-"}
	}
	total := map[byte]int64{}
	status := 0
	var out strings.Builder
	format := func(counts map[byte]int64, name string) {
		for i, c := range cols {
			if len(cols) == 1 {
				fmt.Fprintf(&out, "%d", counts[c])
				break
			}
			if i > 0 {
				out.WriteByte(' ')
			}
			fmt.Fprintf(&out, "%9d", counts[c])
		}
		if name != "" {
			out.WriteString(" " + name)
		}
		out.WriteByte('\n')
	}
	for _, f := range names {
		o, err := e.open(f)
		if err != nil {
			e.errf("can't open '%s': %s", f, strerror(err))
			status = 1
			continue
		}
		counts := map[byte]int64{}
		inWord := false
		var lineLen int64
		buf := make([]byte, chunkSize)
		for {
			k, err := o.f.read(e.ctx(), buf)
			for _, c := range buf[:k] {
				counts['c']++
				if c&0xc0 != 0x80 {
					counts['m']++
				}
				if c == '\n' {
					counts['l']++
					lineLen = 0
				} else {
					lineLen++
					counts['L'] = max(counts['L'], lineLen)
				}
				space := c == ' ' || c >= '\t' && c <= '\r'
				if !space && !inWord {
					counts['w']++
				}
				inWord = !space
			}
			if err != nil {
				if interrupted(err) {
					o.unref()
					return 1
				}
				break
			}
		}
		o.unref()
		for c, v := range counts {
			if c == 'L' {
				total[c] = max(total[c], v)
			} else {
				total[c] += v
			}
		}
		name := f
		if len(files) == 0 {
			name = ""
		}
		format(counts, name)
	}
	if len(files) > 1 {
		format(total, "total")
	}
	if e.out(out.String()) != nil {
		return 1
	}
	return status
}

const sleepUsage = `Usage: sleep [N]...

Pause for a time equal to the total of the args given, where each arg can
have an optional suffix of (s)econds, (m)inutes, (h)ours, or (d)ays
`

func appletSleep(e *env) int {
	if len(e.argv) < 2 {
		return usage(e, sleepUsage)
	}
	var total float64
	for _, a := range e.argv[1:] {
		mult := 1.0
		s := a
		if s != "" {
			switch s[len(s)-1] {
			case 's':
				s = s[:len(s)-1]
			case 'm':
				mult, s = 60, s[:len(s)-1]
			case 'h':
				mult, s = 3600, s[:len(s)-1]
			case 'd':
				mult, s = 86400, s[:len(s)-1]
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || strings.ContainsAny(s, "xXpP_") {
			if strings.EqualFold(a, "inf") || strings.EqualFold(a, "infinity") {
				f, mult = math.Inf(1), 1
			} else {
				e.errf("invalid number '%s'", a)
				return 1
			}
		}
		total += f * mult
	}
	var timer <-chan time.Time
	if !math.IsInf(total, 1) && total < float64(math.MaxInt64/int64(time.Second)) {
		t := time.NewTimer(time.Duration(total * float64(time.Second)))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return 0
	case <-e.ctx().Done():
		return 1
	}
}

func appletStty(e *env) int {
	t := e.fds.ttyOf(0)
	if t == nil {
		e.errf("standard input: Inappropriate ioctl for device")
		return 1
	}
	args := e.argv[1:]
	if len(args) == 0 {
		return boolStatus(e.out(t.describe()) == nil)
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		on := !strings.HasPrefix(a, "-")
		name := strings.TrimPrefix(a, "-")
		t.mu.Lock()
		switch name {
		case "size":
			t.mu.Unlock()
			w, h := t.size()
			if e.out(fmt.Sprintf("%d %d\n", h, w)) != nil {
				return 1
			}
			continue
		case "echo":
			t.echo = on
		case "icanon":
			t.icanon = on
		case "isig":
			t.isig = on
		case "icrnl":
			t.icrnl = on
		case "onlcr", "opost":
			t.onlcr = on
		case "raw", "cooked":
			cooked := (name == "raw") != on
			t.icanon, t.isig, t.icrnl, t.onlcr = cooked, cooked, cooked, cooked
		case "sane":
			t.echo, t.icanon, t.isig, t.icrnl, t.onlcr = true, true, true, true, true
		case "rows", "cols", "columns", "min", "time", "speed", "ispeed", "ospeed", "line":
			i++ // settings this terminal does not model
		case "-a", "a", "-g", "g":
			t.mu.Unlock()
			if e.out(t.describe()) != nil {
				return 1
			}
			continue
		default:
			if _, err := strconv.Atoi(a); err != nil {
				t.mu.Unlock()
				e.errf("invalid number '%s'", a)
				return 1
			}
		}
		t.mu.Unlock()
	}
	return 0
}

// describe is `stty` with no arguments: the settings that differ from sane
// (as busybox prints them for a fresh pty).
func (t *tty) describe() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	b.WriteString("speed 38400 baud; line = 0;\n")
	if !t.icanon {
		b.WriteString("intr = ^C; quit = ^\\; erase = ^?; kill = ^U; eof = ^D; eol = <undef>;\n" +
			"eol2 = <undef>; swtch = <undef>; start = ^Q; stop = ^S; susp = ^Z; rprnt = ^R;\n" +
			"werase = ^W; lnext = ^V; flush = ^O; min = 1; time = 0;\n")
	}
	b.WriteString("-brkint")
	if !t.icrnl {
		b.WriteString(" -icrnl")
	}
	b.WriteString(" -imaxbel\n")
	if !t.onlcr {
		b.WriteString("-opost\n")
	}
	var l []string
	if !t.isig {
		l = append(l, "-isig")
	}
	if !t.icanon {
		l = append(l, "-icanon")
	}
	if !t.echo {
		l = append(l, "-echo")
	}
	if len(l) > 0 {
		b.WriteString(strings.Join(l, " ") + "\n")
	}
	return b.String()
}

// appletPs prints busybox ps's default format ("PID USER COMMAND"; this
// build has no TIME column), truncated to the terminal width minus one when
// stdout is a tty.
func appletPs(e *env) int {
	width := 0
	if t := e.fds.ttyOf(1); t != nil {
		w, _ := t.size()
		width = int(w)
		if width <= 0 {
			width = 80
		}
		width--
	}
	var b strings.Builder
	line := func(s string) {
		if width > 0 && len(s) > width {
			s = s[:width]
		}
		b.WriteString(s + "\n")
	}
	line(fmt.Sprintf("%-5s %-8s %s", "PID", "USER", "COMMAND"))
	for _, p := range e.p.m.Processes() {
		// Like /proc/PID/cmdline as ps reads it: control characters show as spaces.
		cmd := strings.Map(func(r rune) rune {
			if r < ' ' {
				return ' '
			}
			return r
		}, p.Cmdline)
		line(fmt.Sprintf("%5d %-8s %s", p.PID, "root", cmd))
	}
	return boolStatus(e.out(b.String()) == nil)
}

func appletSeq(e *env) int {
	sep, width := "\n", false
	var nums []string
	args := e.argv[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-s" && i+1 < len(args):
			i++
			sep = args[i]
		case strings.HasPrefix(a, "-s") && len(a) > 2:
			sep = a[2:]
		case a == "-w":
			width = true
		default:
			nums = append(nums, a)
		}
	}
	if len(nums) < 1 || len(nums) > 3 {
		return usage(e, "Usage: seq [-w] [-s SEP] [FIRST [INC]] LAST\n\nPrint numbers from FIRST to LAST, in steps of INC.\nFIRST, INC default to 1.\n\n\t-w\tPad to last with leading zeros\n\t-s SEP\tString separator\n")
	}
	vals := []float64{1, 1, 0}
	prec := 0
	parsed := make([]float64, len(nums))
	for i, n := range nums {
		f, err := strconv.ParseFloat(n, 64)
		if err != nil {
			e.errf("invalid number '%s'", n)
			return 1
		}
		parsed[i] = f
		if dot := strings.IndexByte(n, '.'); dot >= 0 {
			prec = max(prec, len(n)-dot-1)
		}
	}
	switch len(parsed) {
	case 1:
		vals[2] = parsed[0]
	case 2:
		vals[0], vals[2] = parsed[0], parsed[1]
	case 3:
		vals[0], vals[1], vals[2] = parsed[0], parsed[1], parsed[2]
	}
	first, inc, last := vals[0], vals[1], vals[2]
	if inc == 0 {
		return 0
	}
	w := 0
	if width {
		w = len(strconv.FormatFloat(math.Max(math.Abs(first), math.Abs(last)), 'f', prec, 64))
	}
	var b strings.Builder
	n := 0
	for i := 0; ; i++ {
		v := first + float64(i)*inc
		if (inc > 0 && v > last) || (inc < 0 && v < last) {
			break
		}
		if n > 0 {
			b.WriteString(sep)
		}
		s := strconv.FormatFloat(v, 'f', prec, 64)
		for len(s) < w {
			s = "0" + s
		}
		b.WriteString(s)
		n++
		if b.Len() >= chunkSize {
			if e.out(b.String()) != nil {
				return 1
			}
			b.Reset()
		}
	}
	if n > 0 {
		b.WriteString("\n")
	}
	return boolStatus(e.out(b.String()) == nil)
}

func appletYes(e *env) int {
	s := "y"
	if len(e.argv) > 1 {
		s = strings.Join(e.argv[1:], " ")
	}
	line := s + "\n"
	block := []byte(strings.Repeat(line, max(1, 8192/len(line))))
	for {
		if e.write(1, block) != nil {
			return 1
		}
	}
}

// ---- networking ----

// acceptCtx waits for a connection or the process's death.
func acceptCtx(ctx context.Context, l net.Listener) (*conn, error) {
	c, err := l.(*listener).accept(ctx.Done())
	if err != nil {
		return nil, err
	}
	return c.(*conn), nil
}

// isLocalHost reports whether nc's HOST names this namespace.
func isLocalHost(h string) (string, bool) {
	switch h {
	case "localhost", "0.0.0.0", "::", "::1", "ip6-localhost":
		if strings.Contains(h, ":") {
			return "::1", true
		}
		return "127.0.0.1", true
	}
	if ip := net.ParseIP(h); ip != nil {
		return h, ip.IsLoopback()
	}
	return h, false
}

const ncUsage = `Usage: nc [-iN] [-wN] [-l] [-p PORT] [-f FILE|IPADDR PORT] [-e PROG]

Open a pipe to IP:PORT or FILE

	-l	Listen mode, for inbound connects
		(use -ll with -e for persistent server)
	-p PORT	Local port
	-w SEC	Connect timeout
	-i SEC	Delay interval for lines sent
	-f FILE	Use file (ala /dev/ttyS0) instead of network
	-e PROG	Run PROG after connect
`

func appletNc(e *env) int {
	listen := 0
	port := -1
	var prog, pos []string
	args := e.argv[1:]
parse:
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			switch a[j] {
			case 'l':
				listen++
			case 'p', 'w', 'i', 'f':
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return usage(e, ncUsage)
					}
					i++
					val = args[i]
				}
				if a[j] == 'p' {
					n, err := strconv.Atoi(val)
					if err != nil || n < 0 || n > 65535 {
						e.errf("invalid number '%s'", val)
						return 1
					}
					port = n
				}
				j = len(a)
			case 'e':
				// Everything after -e is the program and its arguments.
				if rest := a[j+1:]; rest != "" {
					prog = append([]string{rest}, args[i+1:]...)
				} else {
					prog = args[i+1:]
				}
				if len(prog) == 0 {
					return usage(e, ncUsage)
				}
				break parse
			case 'n', 'v':
			default:
				return usage(e, ncUsage)
			}
		}
	}
	ns := e.p.m.ns
	if listen > 0 {
		if port < 0 {
			port = 0 // an ephemeral port, like busybox without -p
		}
		l, err := ns.Listen(port)
		if err != nil {
			e.errf("bind: %s", strerror(err))
			return 1
		}
		e.p.onExit(func() { l.Close() })
		for {
			c, err := acceptCtx(e.ctx(), l)
			if err != nil {
				return 1
			}
			switch {
			case prog == nil:
				l.Close()
				return ncRelay(e, c)
			case listen > 1:
				ncSpawn(e, c, prog)
			default:
				l.Close()
				return ncExec(e, c, prog)
			}
		}
	}
	if len(pos) != 2 {
		return usage(e, ncUsage)
	}
	host, ok := isLocalHost(pos[0])
	rport, err := strconv.Atoi(pos[1])
	if err != nil || rport < 1 || rport > 65535 {
		e.errf("bad port '%s'", pos[1])
		return 1
	}
	if !ok {
		e.errf("can't connect to remote host (%s): Network is unreachable", host)
		return 1
	}
	nc, err := ns.Dial(e.ctx(), rport)
	if err != nil {
		e.errf("can't connect to remote host (%s): %s", host, strerror(err))
		return 1
	}
	c := nc.(*conn)
	if prog != nil {
		return ncExec(e, c, prog)
	}
	return ncRelay(e, c)
}

// ncFiles is PROG's descriptor table: the connection on 0 and 1, nc's
// stderr on 2 (busybox's nc does not redirect stderr).
func ncFiles(e *env, c *conn) *fdTable {
	t := &fdTable{}
	o := newOfile(connFile{c}, true, true)
	t.f[0] = o
	t.f[1] = o.ref()
	if errf := e.fds.get(2); errf != nil {
		t.f[2] = errf.ref()
	}
	return t
}

// ncSpawn is -ll: a child process per connection; it outlives nc.
func ncSpawn(e *env, c *conn, prog []string) {
	child := e.p.m.spawn(e.p, context.WithoutCancel(e.p.ctx), prog, false, e.p.getIgnore())
	if child == nil {
		c.Close()
		return
	}
	t := ncFiles(e, c)
	child.setFiles(t)
	go func() { child.exit(execArgv(child, t, prog, e.environ)) }()
}

// ncExec is -l -e: nc execs PROG in place with the connection.
func ncExec(e *env, c *conn, prog []string) int {
	t := ncFiles(e, c)
	e.p.setArgv(prog)
	if old := e.p.swapFiles(t); old != nil {
		old.closeAll()
	}
	return execArgv(e.p, t, prog, e.environ)
}

// ncRelay pumps stdin to the connection and the connection to stdout until
// the peer closes.
func ncRelay(e *env, c *conn) int {
	defer c.Close()
	ctx, cancel := context.WithCancel(e.ctx())
	defer cancel()
	go func() {
		buf := make([]byte, chunkSize)
		for {
			n, err := e.fds.read(ctx, 0, buf)
			if n > 0 {
				if _, werr := c.wr.write(ctx.Done(), time.Time{}, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if !interrupted(err) {
					c.CloseWrite()
				}
				return
			}
		}
	}()
	ok, err := copyOut(e, func(b []byte) (int, error) {
		n, err := c.rd.read(e.ctx().Done(), time.Time{}, b)
		if errors.Is(err, io.ErrClosedPipe) {
			err = io.EOF
		}
		return n, err
	}, -1)
	if !ok || interrupted(err) {
		return 1
	}
	return 0
}

const httpdUsage = `Usage: httpd [-ifv[v]] [-c CONFFILE] [-p [IP:]PORT] [-u USER[:GRP]] [-r REALM] [-h HOME]
or httpd -d/-e/-m STRING

Listen for incoming HTTP requests

	-i		Inetd mode
	-f		Run in foreground
	-v[v]		Verbose
	-p [IP:]PORT	Bind to IP:PORT (default *:80)
	-u USER[:GRP]	Set uid/gid after binding to port
	-r REALM	Authentication Realm for Basic Authentication
	-h HOME		Home directory (default .)
	-c FILE		Configuration file (default {/etc,HOME}/httpd.conf)
	-m STRING	MD5 crypt STRING
	-e STRING	HTML encode STRING
	-d STRING	URL decode STRING
`

// appletHttpd serves files from the in-memory filesystem under HOME. Like
// busybox it forks a process per connection; without -f it daemonizes.
func appletHttpd(e *env) int {
	foreground := false
	port := 80
	home := "/" // busybox's default is ".", the container's working directory
	args := e.argv[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			return usage(e, httpdUsage)
		}
		for j := 1; j < len(a); j++ {
			switch a[j] {
			case 'f':
				foreground = true
			case 'v', 'i':
			case 'p', 'h', 'c', 'u', 'r':
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return usage(e, httpdUsage)
					}
					i++
					val = args[i]
				}
				switch a[j] {
				case 'p':
					if k := strings.LastIndexByte(val, ':'); k >= 0 {
						val = val[k+1:]
					}
					n, err := strconv.Atoi(val)
					if err != nil || n < 0 || n > 65535 {
						e.errf("invalid number '%s'", val)
						return 1
					}
					port = n
				case 'h':
					home = val
				}
				j = len(a)
			default:
				return usage(e, httpdUsage)
			}
		}
	}
	l, err := e.p.m.ns.Listen(port)
	if err != nil {
		e.errf("bind: %s", strerror(err))
		return 1
	}
	if !path.IsAbs(home) {
		home = "/" + home
	}
	server := e.p
	if !foreground {
		// Daemonize: the server continues in an orphan with /dev/null stdio.
		server = e.p.m.spawn(e.p, context.WithoutCancel(e.p.ctx), e.p.getArgv(), true, e.p.getIgnore())
		if server == nil {
			l.Close()
			return 1
		}
		t := &fdTable{}
		for fd := 0; fd < 3; fd++ {
			t.f[fd] = newOfile(nullFile{}, true, true)
		}
		server.setFiles(t)
		server.onExit(func() { l.Close() })
		go func() { server.exit(httpdServe(server, l, home)) }()
		return 0
	}
	e.p.onExit(func() { l.Close() })
	return httpdServe(server, l, home)
}

func httpdServe(p *proc, l net.Listener, home string) int {
	for {
		c, err := acceptCtx(p.ctx, l)
		if err != nil {
			return 1
		}
		child := p.m.spawn(p, context.WithoutCancel(p.ctx), p.getArgv(), false, p.getIgnore())
		if child == nil {
			c.Close()
			return 1
		}
		child.onExit(func() { c.Close() })
		go func() {
			httpdHandle(child, c, home)
			child.exit(0)
		}()
	}
}

// httpdHeaderTimeout is busybox httpd's limit for receiving the request.
const httpdHeaderTimeout = 60 * time.Second

func httpdHandle(p *proc, c *conn, home string) {
	ctx, cancel := context.WithTimeout(p.ctx, httpdHeaderTimeout)
	defer cancel()
	var req []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(req, []byte("\r\n\r\n")) && !bytes.Contains(req, []byte("\n\n")) && len(req) < 64<<10 {
		n, err := c.rd.read(ctx.Done(), time.Time{}, buf)
		req = append(req, buf[:n]...)
		if err != nil {
			if len(req) == 0 || interrupted(err) {
				return
			}
			break
		}
	}
	first, _, _ := bytes.Cut(req, []byte("\n"))
	fields := strings.Fields(strings.TrimRight(string(first), "\r"))
	send := func(b []byte) { c.wr.write(p.ctx.Done(), time.Time{}, b) } //nolint:errcheck
	date := time.Now().UTC().Format(http1Date)
	errorPage := func(code int, status, text string) {
		body := fmt.Sprintf("<HTML><HEAD><TITLE>%d %s</TITLE></HEAD>\n<BODY><H1>%d %s</H1>\n%s\n</BODY></HTML>\n",
			code, status, code, status, text)
		send([]byte(fmt.Sprintf("HTTP/1.1 %d %s\r\nDate: %s\r\nConnection: close\r\nContent-type: text/html\r\n\r\n%s",
			code, status, date, body)))
	}
	if len(fields) < 3 || !strings.HasPrefix(fields[2], "HTTP/") || !strings.HasPrefix(fields[1], "/") {
		errorPage(400, "Bad Request", "Unsupported method")
		return
	}
	method := fields[0]
	if method != "GET" && method != "HEAD" {
		errorPage(501, "Not Implemented", "The requested method is not recognized")
		return
	}
	rawPath, _, _ := strings.Cut(fields[1], "?")
	upath, err := url.PathUnescape(rawPath)
	if err != nil || strings.Contains("/"+upath+"/", "/../") {
		errorPage(400, "Bad Request", "Unsupported method")
		return
	}
	if strings.HasSuffix(upath, "/") {
		upath += "index.html"
	}
	fpath := cleanPath(path.Join(home, upath))
	fs := p.m.fs
	fs.mu.Lock()
	f, ok := fs.files[fpath]
	var data []byte
	var mtime time.Time
	if ok {
		data, mtime = f.data, f.mtime
	}
	fs.mu.Unlock()
	if !ok {
		errorPage(404, "Not Found", "The requested URL was not found")
		return
	}
	ctype := "application/octet-stream"
	switch path.Ext(fpath) {
	case ".html", ".htm":
		ctype = "text/html"
	case ".txt", ".c", ".h", ".cc", ".cpp":
		ctype = "text/plain"
	case ".css":
		ctype = "text/css"
	case ".js":
		ctype = "application/javascript"
	case ".json":
		ctype = "application/json"
	case ".png":
		ctype = "image/png"
	case ".jpg", ".jpeg":
		ctype = "image/jpeg"
	case ".gif":
		ctype = "image/gif"
	}
	head := fmt.Sprintf("HTTP/1.1 200 OK\r\nDate: %s\r\nConnection: close\r\nContent-type: %s\r\nAccept-Ranges: bytes\r\n"+
		"Last-Modified: %s\r\nETag: \"%x-%x\"\r\nContent-Length: %d\r\n\r\n",
		date, ctype, mtime.UTC().Format(http1Date), mtime.Unix(), len(data), len(data))
	// busybox sends the body for HEAD too.
	send(append([]byte(head), data...))
}

const http1Date = "Mon, 02 Jan 2006 15:04:05 GMT"
