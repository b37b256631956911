package busybox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"
)

// env is what an applet or builtin runs with.
type env struct {
	p    *proc
	fds  *fdTable
	argv []string
	name string // prefix of error messages: the applet name, or "sh" for builtins
	sh   *shell // the shell, for builtins
	err  error  // control flow a builtin raises (exit, break, return, killed)

	environ map[string]string // exported variables
	quiet   bool              // write errors are not reported (printf)
}

func (e *env) ctx() context.Context { return e.p.ctx }

// write writes to fd; a broken pipe raises SIGPIPE in the process, as the
// kernel would.
func (e *env) write(fd int, b []byte) error {
	_, err := e.fds.write(e.p.ctx, fd, b)
	if err == nil || interrupted(err) {
		return err
	}
	if errors.Is(err, errEPIPE) {
		e.p.deliver(sigPIPE, true)
	}
	if e.p.alive() && !e.quiet {
		// Only a process that survives (SIGPIPE ignored, or EBADF) says so.
		e.errf("write error: %s", strerror(err))
	}
	return err
}

func (e *env) out(s string) error { return e.write(1, []byte(s)) }

func (e *env) errf(format string, args ...any) {
	e.fds.write(e.p.ctx, 2, []byte(e.name+": "+fmt.Sprintf(format, args...)+"\n")) //nolint:errcheck
}

func (e *env) read(fd int, b []byte) (int, error) { return e.fds.read(e.p.ctx, fd, b) }

// fatal raises one of ash's "sh: NAME: line N: msg" errors, which end a
// non-interactive shell with status 2.
func (e *env) fatal(name, format string, args ...any) int {
	e.sh.builtinErr(e.fds, name, format, args...)
	if !e.sh.interactive {
		e.err = exitErr{2}
	}
	return 2
}

// softErr prints the same format without ending the shell (cd, wait).
func (e *env) softErr(name, format string, args ...any) int {
	e.sh.builtinErr(e.fds, name, format, args...)
	return 2
}

// shellBuiltins run inside the shell process (no fork, no new PID).
var shellBuiltins map[string]func(*env) int

func init() {
	shellBuiltins = map[string]func(*env) int{
		":":        func(*env) int { return 0 },
		"true":     func(*env) int { return 0 },
		"false":    func(*env) int { return 1 },
		"echo":     appletEcho,
		"printf":   appletPrintf,
		"kill":     appletKill,
		"test":     appletTest,
		"[":        appletTest,
		"exit":     builtinExit,
		"read":     builtinRead,
		"wait":     builtinWait,
		"cd":       builtinCd,
		"pwd":      func(e *env) int { return boolStatus(e.out(e.sh.vars["PWD"]+"\n") == nil) },
		"export":   builtinExport,
		"readonly": builtinExport,
		"local":    builtinExport,
		"unset":    builtinUnset,
		"shift":    builtinShift,
		"set":      builtinSet,
		"break":    func(e *env) int { return builtinLoop(e, true) },
		"continue": func(e *env) int { return builtinLoop(e, false) },
		"return":   builtinReturn,
		"eval":     builtinEval,
		"trap":     func(*env) int { return 0 }, // accepted; traps are not emulated
	}
}

func boolStatus(ok bool) int {
	if ok {
		return 0
	}
	return 1
}

func builtinExit(e *env) int {
	code := e.sh.status
	if len(e.argv) > 1 {
		n, err := strconv.Atoi(e.argv[1])
		if err != nil || n < 0 {
			return e.fatal("exit", "Illegal number: %s", e.argv[1])
		}
		code = n
	}
	e.err = exitErr{code & 0xff}
	return code & 0xff
}

func builtinReturn(e *env) int {
	code := e.sh.status
	if len(e.argv) > 1 {
		n, err := strconv.Atoi(e.argv[1])
		if err != nil {
			return e.fatal("return", "Illegal number: %s", e.argv[1])
		}
		code = n & 0xff
	}
	if e.sh.funcDepth > 0 {
		e.err = returnErr{code}
	} else {
		e.err = exitErr{code}
	}
	return code
}

func builtinLoop(e *env, brk bool) int {
	n := 1
	if len(e.argv) > 1 {
		v, err := strconv.Atoi(e.argv[1])
		if err != nil || v < 1 {
			return e.fatal(e.argv[0], "Illegal number: %s", e.argv[1])
		}
		n = v
	}
	if e.sh.loopDepth == 0 {
		return 0
	}
	n = min(n, e.sh.loopDepth)
	e.err = loopErr{brk: brk, n: n}
	return 0
}

func builtinCd(e *env) int {
	dir := e.sh.vars["HOME"]
	if len(e.argv) > 1 {
		dir = e.argv[1]
	}
	if !path.IsAbs(dir) {
		dir = path.Join(e.sh.vars["PWD"], dir)
	}
	if isDir, ok := e.p.m.fs.stat(dir); !ok || !isDir {
		return e.softErr("cd", "can't cd to %s: No such file or directory", e.argv[len(e.argv)-1])
	}
	e.sh.vars["PWD"] = cleanPath(dir)
	return 0
}

func builtinExport(e *env) int {
	for _, a := range e.argv[1:] {
		if strings.HasPrefix(a, "-") {
			continue
		}
		name, val, ok := strings.Cut(a, "=")
		if !isName(name) {
			return e.fatal(e.argv[0], "%s: bad variable name", name)
		}
		if ok {
			e.sh.vars[name] = val
		} else if _, set := e.sh.vars[name]; !set && e.argv[0] == "local" {
			e.sh.vars[name] = ""
		}
		if e.argv[0] == "export" {
			e.sh.exported[name] = true
		}
	}
	return 0
}

func builtinUnset(e *env) int {
	funcs := false
	for _, a := range e.argv[1:] {
		switch a {
		case "-f":
			funcs = true
		case "-v":
			funcs = false
		default:
			if funcs {
				delete(e.sh.funcs, a)
			} else {
				delete(e.sh.vars, a)
			}
		}
	}
	return 0
}

func builtinShift(e *env) int {
	n := 1
	if len(e.argv) > 1 {
		v, err := strconv.Atoi(e.argv[1])
		if err != nil || v < 0 {
			return e.fatal("shift", "Illegal number: %s", e.argv[1])
		}
		n = v
	}
	if n > len(e.sh.params) {
		return 1
	}
	e.sh.params = e.sh.params[n:]
	return 0
}

func builtinSet(e *env) int {
	args := e.argv[1:]
	if len(args) == 0 {
		var b strings.Builder
		for _, k := range e.sh.sortedVars() {
			b.WriteString(k + "='" + strings.ReplaceAll(e.sh.vars[k], "'", `'"'"'`) + "'\n")
		}
		return boolStatus(e.out(b.String()) == nil)
	}
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			e.sh.params = args[1:]
			return 0
		}
		if len(a) < 2 || (a[0] != '-' && a[0] != '+') {
			e.sh.params = args
			return 0
		}
		on := a[0] == '-'
		for _, f := range a[1:] {
			switch f {
			case 'e':
				e.sh.errexit = on
			case 'o':
				// set -o NAME: only errexit means anything here.
				if len(args) > 1 {
					if args[1] == "errexit" {
						e.sh.errexit = on
					}
					args = args[1:]
				}
			}
		}
		args = args[1:]
	}
	return 0
}

func builtinEval(e *env) int {
	src := strings.Join(e.argv[1:], " ")
	l, err := parseAll(src, e.sh.line)
	if err != nil {
		e.sh.warn(e.fds, "%v", err)
		if !e.sh.interactive {
			e.err = exitErr{2}
		}
		return 2
	}
	saved := e.sh.fds
	e.sh.fds = e.fds
	defer func() { e.sh.fds = saved }()
	if err := e.sh.runList(l, false); err != nil {
		e.err = err
	}
	return e.sh.status
}

// builtinRead is `read [-r] [-p PROMPT] [-t SECS] [-n N] [-s] [NAME...]`. It
// reads a byte at a time, so the rest of the input stays for later readers.
func builtinRead(e *env) int {
	raw := false
	prompt := ""
	limit := -1
	var timeout time.Duration
	args := e.argv[1:]
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		a := args[0]
		args = args[1:]
		if a == "--" {
			break
		}
		for i := 1; i < len(a); i++ {
			opt := a[i]
			val := ""
			if strings.IndexByte("ptnu", opt) >= 0 {
				if i+1 < len(a) {
					val = a[i+1:]
				} else if len(args) > 0 {
					val, args = args[0], args[1:]
				} else {
					e.errf("read: option requires an argument -- '%c'", opt)
					return 2
				}
				i = len(a)
			}
			switch opt {
			case 'r':
				raw = true
			case 's':
			case 'p':
				prompt = val
			case 't':
				f, err := strconv.ParseFloat(val, 64)
				if err != nil || f < 0 {
					return e.fatal("read", "invalid timeout '%s'", val)
				}
				timeout = time.Duration(f * float64(time.Second))
			case 'n':
				n, err := strconv.Atoi(val)
				if err != nil || n < 0 {
					return e.fatal("read", "invalid count '%s'", val)
				}
				limit = n
			case 'u':
			default:
				e.errf("read: invalid option -- '%c'", opt)
				return 2
			}
		}
	}
	reply := len(args) == 0
	if reply {
		args = []string{"REPLY"}
	}
	for _, n := range args {
		if !isName(n) {
			return e.fatal("read", "'%s': not a valid identifier", n)
		}
	}
	if prompt != "" && e.fds.ttyOf(0) != nil {
		e.fds.write(e.p.ctx, 2, []byte(prompt)) //nolint:errcheck
	}
	ctx := e.p.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// Collect the line; protected marks backslash-escaped bytes, which field
	// splitting must not touch.
	var line []byte
	var protected []bool
	status := 0
	one := make([]byte, 1)
	escaped := false
	for limit < 0 || len(line) < limit {
		n, err := e.fds.read(ctx, 0, one)
		if n == 0 {
			if err != nil && errors.Is(err, errInterrupted) && e.p.ctx.Err() != nil {
				e.err = errKilled
				return 1
			}
			status = 1
			break
		}
		c := one[0]
		if escaped {
			escaped = false
			if c == '\n' {
				continue
			}
			line = append(line, c)
			protected = append(protected, true)
			continue
		}
		if c == '\\' && !raw {
			escaped = true
			continue
		}
		if c == '\n' {
			break
		}
		line = append(line, c)
		protected = append(protected, false)
	}
	if reply {
		e.sh.vars["REPLY"] = string(line) // REPLY keeps the whitespace
	} else {
		assignRead(e.sh, args, line, protected)
	}
	return status
}

// assignRead splits a line over names: IFS whitespace trimmed, the last name
// takes the rest of the line.
func assignRead(sh *shell, names []string, line []byte, protected []bool) {
	ifs := sh.ifs()
	isSep := func(i int) bool { return !protected[i] && strings.IndexByte(ifs, line[i]) >= 0 }
	isWS := func(i int) bool { return isSep(i) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\n') }
	i := 0
	for ni, name := range names {
		for i < len(line) && isWS(i) {
			i++
		}
		if ni == len(names)-1 {
			end := len(line)
			for end > i && isWS(end-1) {
				end--
			}
			sh.vars[name] = string(line[i:end])
			return
		}
		start := i
		for i < len(line) && !isSep(i) {
			i++
		}
		sh.vars[name] = string(line[start:i])
		for i < len(line) && isWS(i) {
			i++
		}
		if i < len(line) && isSep(i) {
			i++ // one non-white separator
		}
	}
}

func builtinWait(e *env) int {
	sh := e.sh
	wait := func(c *proc) bool {
		select {
		case <-c.done:
			return true
		case <-e.p.ctx.Done():
			e.err = errKilled
			return false
		}
	}
	if len(e.argv) == 1 {
		for _, j := range sh.jobs {
			if !wait(j) {
				return 1
			}
		}
		sh.jobs = nil
		return 0
	}
	status := 0
	for _, a := range e.argv[1:] {
		pid, err := strconv.Atoi(a)
		if err != nil {
			return e.softErr("wait", "Illegal number: %s", a)
		}
		status = 127
		for i, j := range sh.jobs {
			if j.pid != pid {
				continue
			}
			if !wait(j) {
				return 1
			}
			st, sig := j.result()
			status = st
			sh.reportSignal(e.fds, sig)
			sh.jobs = append(sh.jobs[:i:i], sh.jobs[i+1:]...)
			break
		}
	}
	return status
}

// ---- echo and printf ----

func appletEcho(e *env) int {
	args := e.argv[1:]
	nl, esc := true, false
	for len(args) > 0 {
		a := args[0]
		if len(a) < 2 || a[0] != '-' || strings.Trim(a[1:], "neE") != "" {
			break
		}
		for _, f := range a[1:] {
			switch f {
			case 'n':
				nl = false
			case 'e':
				esc = true
			case 'E':
				esc = false
			}
		}
		args = args[1:]
	}
	s := strings.Join(args, " ")
	if esc {
		var stop bool
		s, stop = unescape(s, escEcho)
		if stop {
			nl = false
		}
	}
	if nl {
		s += "\n"
	}
	return boolStatus(e.out(s) == nil)
}

type escMode int

const (
	escEcho   escMode = iota // echo -e and printf %b: \0NNN and \NNN
	escFormat                // printf format: \NNN, at most 3 digits
)

// unescape processes backslash escapes; stop reports a \c (end all output).
func unescape(s string, mode escMode) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch c = s[i]; c {
		case '\\':
			b.WriteByte('\\')
		case 'a':
			b.WriteByte(7)
		case 'b':
			b.WriteByte(8)
		case 'e':
			b.WriteByte(27)
		case 'f':
			b.WriteByte(12)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte(11)
		case 'c':
			return b.String(), true
		case 'x':
			v, n := 0, 0
			for n < 2 && i+1 < len(s) && isHex(s[i+1]) {
				v = v*16 + hexVal(s[i+1])
				i++
				n++
			}
			if n == 0 {
				b.WriteString(`\x`)
				continue
			}
			b.WriteByte(byte(v))
		case '0', '1', '2', '3', '4', '5', '6', '7':
			if mode == escEcho && c == '0' {
				// \0NNN: the 0 introduces up to three more digits.
				v, n := 0, 0
				for n < 3 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7' {
					v = v*8 + int(s[i+1]-'0')
					i++
					n++
				}
				b.WriteByte(byte(v))
				continue
			}
			v, n := int(c-'0'), 1
			for n < 3 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7' {
				v = v*8 + int(s[i+1]-'0')
				i++
				n++
			}
			b.WriteByte(byte(v))
		default:
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	return b.String(), false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return int(c-'A') + 10
}

func appletPrintf(e *env) int {
	if len(e.argv) < 2 {
		e.errf("usage: printf FORMAT [ARGUMENT...]")
		return 2
	}
	format, args := e.argv[1], e.argv[2:]
	e.quiet = true
	var out strings.Builder
	status := 0
	flush := func() bool {
		err := e.out(out.String())
		out.Reset()
		return err == nil
	}
	for {
		consumed, stop, err := printfOnce(e, &out, format, &args, &status)
		if err != nil {
			flush()
			return 1
		}
		if stop || len(args) == 0 || !consumed {
			break
		}
		if out.Len() > chunkSize && !flush() {
			return 1
		}
	}
	if !flush() {
		return 1
	}
	return status
}

// printfOnce runs the format once. consumed reports whether any argument was
// used; stop a \c.
func printfOnce(e *env, out *strings.Builder, format string, args *[]string, status *int) (consumed, stop bool, err error) {
	next := func() (string, bool) {
		if len(*args) == 0 {
			return "", false
		}
		a := (*args)[0]
		*args = (*args)[1:]
		consumed = true
		return a, true
	}
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c == '\\' {
			res, st := unescapeOne(format[i:])
			if st {
				return consumed, true, nil
			}
			out.WriteString(res.text)
			i += res.used - 1
			continue
		}
		if c != '%' {
			out.WriteByte(c)
			continue
		}
		// %[flags][width][.prec][length]conv
		j := i + 1
		for j < len(format) && strings.IndexByte("-+ #0'", format[j]) >= 0 {
			j++
		}
		flags := strings.ReplaceAll(format[i+1:j], "'", "")
		width := ""
		if j < len(format) && format[j] == '*' {
			a, _ := next()
			n, _ := parseCInt(e, a, status)
			width = strconv.FormatInt(n, 10)
			j++
		} else {
			k := j
			for j < len(format) && format[j] >= '0' && format[j] <= '9' {
				j++
			}
			width = format[k:j]
		}
		prec, hasPrec := "", false
		if j < len(format) && format[j] == '.' {
			hasPrec = true
			j++
			if j < len(format) && format[j] == '*' {
				a, _ := next()
				n, _ := parseCInt(e, a, status)
				prec = strconv.FormatInt(n, 10)
				j++
			} else {
				k := j
				for j < len(format) && format[j] >= '0' && format[j] <= '9' {
					j++
				}
				prec = format[k:j]
				if prec == "" {
					prec = "0"
				}
			}
		}
		for j < len(format) && strings.IndexByte("hlLqjzt", format[j]) >= 0 {
			j++
		}
		if j >= len(format) {
			e.errf("%s: invalid format", format[i:])
			return consumed, false, errors.New("invalid format")
		}
		conv := format[j]
		spec := "%" + flags + width
		if hasPrec {
			spec += "." + prec
		}
		switch conv {
		case '%':
			out.WriteByte('%')
		case 's':
			a, _ := next()
			fmt.Fprintf(out, spec+"s", a)
		case 'b':
			a, _ := next()
			s, st := unescape(a, escEcho)
			fmt.Fprintf(out, spec+"s", s)
			if st {
				return consumed, true, nil
			}
		case 'c':
			a, _ := next()
			if a != "" {
				a = a[:1]
			} else {
				a = "\x00" // the string's terminating NUL
			}
			fmt.Fprintf(out, "%"+flags+width+"s", a)
		case 'd', 'i':
			a, _ := next()
			n, _ := parseCInt(e, a, status)
			fmt.Fprintf(out, spec+"d", n)
		case 'u', 'o', 'x', 'X':
			a, _ := next()
			n, _ := parseCInt(e, a, status)
			verb := string(conv)
			if conv == 'u' {
				verb = "d"
			}
			fmt.Fprintf(out, spec+verb, uint64(n))
		case 'e', 'E', 'f', 'F', 'g', 'G', 'a', 'A':
			a, _ := next()
			f := parseCFloat(e, a, status)
			if !hasPrec && conv != 'a' && conv != 'A' {
				spec += ".6"
			}
			verb := string(conv)
			if conv == 'a' || conv == 'A' {
				verb = map[byte]string{'a': "x", 'A': "X"}[conv]
			}
			fmt.Fprintf(out, spec+verb, f)
		default:
			e.errf("%s: invalid format", format[i:j+1])
			return consumed, false, errors.New("invalid format")
		}
		i = j
	}
	return consumed, false, nil
}

type escResult struct {
	text string
	used int
}

// unescapeOne decodes the single printf-format escape at the start of s.
func unescapeOne(s string) (escResult, bool) {
	if len(s) < 2 {
		return escResult{s, len(s)}, false
	}
	c := s[1]
	switch {
	case c == 'c':
		return escResult{}, true
	case c == 'x':
		v, n := 0, 0
		for n < 2 && 2+n < len(s) && isHex(s[2+n]) {
			v = v*16 + hexVal(s[2+n])
			n++
		}
		if n == 0 {
			return escResult{`\x`, 2}, false
		}
		return escResult{string([]byte{byte(v)}), 2 + n}, false
	case c >= '0' && c <= '7':
		v, n := 0, 0
		for n < 3 && 1+n < len(s) && s[1+n] >= '0' && s[1+n] <= '7' {
			v = v*8 + int(s[1+n]-'0')
			n++
		}
		return escResult{string([]byte{byte(v)}), 1 + n}, false
	}
	t, _ := unescape(s[:2], escFormat)
	return escResult{t, 2}, false
}

// parseCInt parses a printf integer argument like strtoll(base 0), with
// 'c' meaning the character's code; failures print busybox's message.
func parseCInt(e *env, a string, status *int) (int64, bool) {
	s := strings.TrimLeft(a, " \t\n")
	if s == "" {
		return 0, true
	}
	if s[0] == '\'' || s[0] == '"' {
		if len(s) > 1 {
			return int64(s[1]), true
		}
		return 0, true
	}
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		if u, uerr := strconv.ParseUint(s, 0, 64); uerr == nil {
			return int64(u), true
		}
		e.errf("invalid number '%s'", a)
		*status = 1
		return 0, false
	}
	return n, true
}

func parseCFloat(e *env, a string, status *int) float64 {
	s := strings.TrimSpace(a)
	if s == "" {
		return 0
	}
	if s[0] == '\'' || s[0] == '"' {
		if len(s) > 1 {
			return float64(s[1])
		}
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if n, ierr := strconv.ParseInt(s, 0, 64); ierr == nil {
			return float64(n)
		}
		e.errf("invalid number '%s'", a)
		*status = 1
		return 0
	}
	return f
}

// ---- kill ----

var signalNames = []string{"", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1",
	"SEGV", "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
	"URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "POLL", "PWR", "SYS"}

// parseSignal accepts 9, KILL, SIGKILL, kill.
func parseSignal(s string) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, n >= 0 && n < 65
	}
	u := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	switch u {
	case "IOT":
		return 6, true
	case "IO":
		return 29, true
	case "CLD":
		return 17, true
	}
	for i, n := range signalNames {
		if i > 0 && n == u {
			return i, true
		}
	}
	return 0, false
}

func appletKill(e *env) int {
	args := e.argv[1:]
	sig := sigTERM
	if len(args) > 0 && args[0] == "-l" {
		if len(args) == 1 {
			var b strings.Builder
			for i := 1; i < len(signalNames); i++ {
				fmt.Fprintf(&b, "%2d) %s\n", i, signalNames[i])
			}
			return boolStatus(e.out(b.String()) == nil)
		}
		var b strings.Builder
		for _, a := range args[1:] {
			if n, err := strconv.Atoi(a); err == nil {
				if n > 128 {
					n -= 128
				}
				if n > 0 && n < len(signalNames) {
					b.WriteString(signalNames[n] + "\n")
				} else {
					b.WriteString(strconv.Itoa(n&0xff) + "\n")
				}
				continue
			}
			n, ok := parseSignal(a)
			if !ok {
				e.errf("bad signal name '%s'", a)
				e.out(b.String()) //nolint:errcheck
				return 1
			}
			b.WriteString(strconv.Itoa(n) + "\n")
		}
		return boolStatus(e.out(b.String()) == nil)
	}
	if len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' && args[0] != "--" {
		a := args[0][1:]
		args = args[1:]
		if a == "s" || a == "n" {
			if len(args) == 0 {
				e.errf("bad signal name '%s'", a)
				return 1
			}
			a, args = args[0], args[1:]
		}
		n, ok := parseSignal(a)
		if !ok {
			e.errf("bad signal name '%s'", a)
			return 1
		}
		sig = n
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		e.errf("you need to specify whom to kill")
		return 1
	}
	status := 0
	m := e.p.m
	for _, a := range args {
		pid, err := strconv.Atoi(a)
		if err != nil {
			e.errf("invalid number '%s'", a)
			status = 1
			continue
		}
		switch {
		case pid > 0:
			p := m.lookup(pid)
			if p == nil || !p.deliver(sig, true) {
				e.errf("can't kill pid %d: No such process", pid)
				status = 1
			}
		case pid == -1:
			// Everyone but init and the caller.
			for _, p := range m.snapshot() {
				if p.pid != 1 && p != e.p {
					p.deliver(sig, true)
				}
			}
		default:
			// Process groups are approximated by a process and its
			// descendants; 0 is the caller's group.
			leader := m.lookup(-pid)
			if pid == 0 {
				leader = e.p
				for leader.parent != nil && !leader.bg {
					leader = leader.parent
				}
			}
			if leader == nil {
				e.errf("can't kill pid %d: No such process", pid)
				status = 1
				continue
			}
			m.signalGroup(leader, sig, false, true)
		}
	}
	return status
}

// ---- test / [ ----

type testErr struct{ msg string }

func (t testErr) Error() string { return t.msg }

func appletTest(e *env) int {
	args := e.argv[1:]
	if path.Base(e.argv[0]) == "[" {
		if len(args) == 0 || args[len(args)-1] != "]" {
			e.errf("missing ]")
			return 2
		}
		args = args[:len(args)-1]
	}
	tp := &testParser{e: e, args: args}
	v, err := tp.eval()
	if err == nil && tp.pos < len(tp.args) {
		err = testErr{"unexpected operator"}
	}
	if err != nil {
		e.errf("%s", err.Error())
		return 2
	}
	return boolStatus(v)
}

type testParser struct {
	e    *env
	args []string
	pos  int
}

func (t *testParser) eval() (bool, error) {
	switch n := len(t.args); n {
	case 0:
		return false, nil
	case 1:
		t.pos = 1
		return t.args[0] != "", nil
	case 2:
		if t.args[0] == "!" {
			t.pos = 2
			return t.args[1] == "", nil
		}
	case 3:
		if isBinaryTestOp(t.args[1]) {
			t.pos = 3
			return t.binary(t.args[0], t.args[1], t.args[2])
		}
		if t.args[0] == "!" {
			t.pos = 1
			sub := &testParser{e: t.e, args: t.args[1:]}
			v, err := sub.eval()
			t.pos += sub.pos
			return !v, err
		}
		if t.args[0] == "(" && t.args[2] == ")" {
			t.pos = 3
			return t.args[1] != "", nil
		}
	case 4:
		if t.args[0] == "!" {
			sub := &testParser{e: t.e, args: t.args[1:]}
			v, err := sub.eval()
			t.pos = 1 + sub.pos
			return !v, err
		}
	}
	return t.or()
}

func (t *testParser) peek() (string, bool) {
	if t.pos < len(t.args) {
		return t.args[t.pos], true
	}
	return "", false
}

func (t *testParser) or() (bool, error) {
	v, err := t.and()
	for err == nil {
		if a, ok := t.peek(); !ok || a != "-o" {
			break
		}
		t.pos++
		var w bool
		w, err = t.and()
		v = v || w
	}
	return v, err
}

func (t *testParser) and() (bool, error) {
	v, err := t.not()
	for err == nil {
		if a, ok := t.peek(); !ok || a != "-a" {
			break
		}
		t.pos++
		var w bool
		w, err = t.not()
		v = v && w
	}
	return v, err
}

func (t *testParser) not() (bool, error) {
	if a, ok := t.peek(); ok && a == "!" {
		t.pos++
		v, err := t.not()
		return !v, err
	}
	return t.primary()
}

func (t *testParser) primary() (bool, error) {
	a, ok := t.peek()
	if !ok {
		return false, testErr{"argument expected"}
	}
	if a == "(" {
		t.pos++
		v, err := t.or()
		if err != nil {
			return false, err
		}
		if c, ok := t.peek(); !ok || c != ")" {
			return false, testErr{"closing paren expected"}
		}
		t.pos++
		return v, nil
	}
	if t.pos+2 < len(t.args)+0 && isBinaryTestOp(t.args[t.pos+1]) {
		l, op, r := t.args[t.pos], t.args[t.pos+1], t.args[t.pos+2]
		t.pos += 3
		return t.binary(l, op, r)
	}
	if len(a) == 2 && a[0] == '-' && strings.IndexByte("zneFfdsrwxthLbcpSgukOG", a[1]) >= 0 {
		t.pos++
		operand, ok := t.peek()
		if !ok {
			return false, testErr{"argument expected"}
		}
		t.pos++
		return t.unary(a[1], operand)
	}
	t.pos++
	return a != "", nil
}

func isBinaryTestOp(s string) bool {
	switch s {
	case "=", "==", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-nt", "-ot", "-ef":
		return true
	}
	return false
}

func (t *testParser) num(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, testErr{s + ": bad number"}
	}
	return n, nil
}

func (t *testParser) binary(l, op, r string) (bool, error) {
	switch op {
	case "=", "==":
		return l == r, nil
	case "!=":
		return l != r, nil
	case "<":
		return l < r, nil
	case ">":
		return l > r, nil
	case "-nt", "-ot", "-ef":
		return false, nil
	}
	a, err := t.num(l)
	if err != nil {
		return false, err
	}
	b, err := t.num(r)
	if err != nil {
		return false, err
	}
	switch op {
	case "-eq":
		return a == b, nil
	case "-ne":
		return a != b, nil
	case "-lt":
		return a < b, nil
	case "-le":
		return a <= b, nil
	case "-gt":
		return a > b, nil
	}
	return a >= b, nil
}

var deviceFiles = map[string]bool{"/dev/null": true, "/dev/zero": true, "/dev/urandom": true,
	"/dev/random": true, "/dev/tty": true, "/dev/stdin": true, "/dev/stdout": true, "/dev/stderr": true}

func (t *testParser) unary(op byte, s string) (bool, error) {
	switch op {
	case 'z':
		return s == "", nil
	case 'n':
		return s != "", nil
	case 't':
		fd, err := t.num(s)
		if err != nil {
			return false, err
		}
		return t.e.fds.ttyOf(int(fd)) != nil, nil
	}
	p := cleanPath(s)
	if !path.IsAbs(s) && t.e.sh != nil {
		p = cleanPath(path.Join(t.e.sh.vars["PWD"], s))
	}
	isDir, exists := t.e.p.m.fs.stat(p)
	dev := deviceFiles[p]
	switch op {
	case 'e', 'r', 'w':
		return exists || dev, nil
	case 'f':
		return exists && !isDir, nil
	case 'd':
		return isDir, nil
	case 'x':
		return isDir || lookupApplet(p) != nil, nil
	case 's':
		if exists && !isDir {
			data, _ := t.e.p.m.fs.contents(p)
			return len(data) > 0, nil
		}
		return isDir, nil
	case 'c':
		return dev, nil
	}
	return false, nil
}

// ---- arithmetic ----

type arithParser struct {
	s    string
	pos  int
	vars map[string]string
}

type arithError string

func (a arithError) Error() string { return string(a) }

// evalArith evaluates ash's $((...)) integer arithmetic, including
// assignments to variables.
func evalArith(s string, vars map[string]string) (int64, error) {
	p := &arithParser{s: s, vars: vars}
	p.skip()
	if p.pos >= len(p.s) {
		return 0, nil
	}
	v, err := p.assign()
	if err != nil {
		return 0, err
	}
	p.skip()
	if p.pos < len(p.s) {
		return 0, arithError("arithmetic syntax error")
	}
	return v, nil
}

func (p *arithParser) skip() {
	for p.pos < len(p.s) && strings.IndexByte(" \t\n", p.s[p.pos]) >= 0 {
		p.pos++
	}
}

func (p *arithParser) accept(op string) bool {
	p.skip()
	if !strings.HasPrefix(p.s[p.pos:], op) {
		return false
	}
	rest := p.s[p.pos+len(op):]
	if (op == "<" || op == ">") && rest != "" && strings.IndexByte("<>=", rest[0]) >= 0 {
		return false
	}
	p.pos += len(op)
	return true
}

func (p *arithParser) varValue(name string) (int64, error) {
	v := strings.TrimSpace(p.vars[name])
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil {
		return 0, arithError("arithmetic syntax error")
	}
	return n, nil
}

func (p *arithParser) assign() (int64, error) {
	p.skip()
	start := p.pos
	if p.pos < len(p.s) && isNameStart(p.s[p.pos]) {
		j := p.pos
		for j < len(p.s) && isNameChar(p.s[j]) {
			j++
		}
		name := p.s[p.pos:j]
		k := j
		for k < len(p.s) && (p.s[k] == ' ' || p.s[k] == '\t') {
			k++
		}
		for _, op := range []string{"=", "+=", "-=", "*=", "/=", "%="} {
			if strings.HasPrefix(p.s[k:], op) && !strings.HasPrefix(p.s[k:], "==") {
				p.pos = k + len(op)
				v, err := p.assign()
				if err != nil {
					return 0, err
				}
				if op != "=" {
					cur, err := p.varValue(name)
					if err != nil {
						return 0, err
					}
					v, err = arithOp(cur, v, op[:1])
					if err != nil {
						return 0, err
					}
				}
				p.vars[name] = strconv.FormatInt(v, 10)
				return v, nil
			}
		}
	}
	p.pos = start
	return p.ternary()
}

func (p *arithParser) ternary() (int64, error) {
	c, err := p.binary(0)
	if err != nil {
		return 0, err
	}
	if p.accept("?") {
		a, err := p.assign()
		if err != nil {
			return 0, err
		}
		if !p.accept(":") {
			return 0, arithError("arithmetic syntax error")
		}
		b, err := p.assign()
		if err != nil {
			return 0, err
		}
		if c != 0 {
			return a, nil
		}
		return b, nil
	}
	return c, nil
}

var arithLevels = [][]string{
	{"||"}, {"&&"}, {"|"}, {"^"}, {"&"}, {"==", "!="}, {"<=", ">=", "<", ">"}, {"<<", ">>"}, {"+", "-"}, {"*", "/", "%"},
}

func (p *arithParser) binary(level int) (int64, error) {
	if level == len(arithLevels) {
		return p.unary()
	}
	v, err := p.binary(level + 1)
	if err != nil {
		return 0, err
	}
	for {
		matched := ""
		for _, op := range arithLevels[level] {
			save := p.pos
			if p.accept(op) {
				// "|" must not eat "||", "&" not "&&".
				if (op == "|" || op == "&") && p.pos < len(p.s) && p.s[p.pos] == op[0] {
					p.pos = save
					continue
				}
				matched = op
				break
			}
		}
		if matched == "" {
			return v, nil
		}
		w, err := p.binary(level + 1)
		if err != nil {
			return 0, err
		}
		v, err = arithOp(v, w, matched)
		if err != nil {
			return 0, err
		}
	}
}

func arithOp(a, b int64, op string) (int64, error) {
	bool64 := func(x bool) int64 {
		if x {
			return 1
		}
		return 0
	}
	switch op {
	case "+":
		return a + b, nil
	case "-":
		return a - b, nil
	case "*":
		return a * b, nil
	case "/", "%":
		if b == 0 {
			return 0, arithError("divide by zero")
		}
		if a == math.MinInt64 && b == -1 {
			if op == "/" {
				return a, nil
			}
			return 0, nil
		}
		if op == "/" {
			return a / b, nil
		}
		return a % b, nil
	case "<<":
		return a << uint64(b&63), nil
	case ">>":
		return a >> uint64(b&63), nil
	case "<":
		return bool64(a < b), nil
	case "<=":
		return bool64(a <= b), nil
	case ">":
		return bool64(a > b), nil
	case ">=":
		return bool64(a >= b), nil
	case "==":
		return bool64(a == b), nil
	case "!=":
		return bool64(a != b), nil
	case "&":
		return a & b, nil
	case "^":
		return a ^ b, nil
	case "|":
		return a | b, nil
	case "&&":
		return bool64(a != 0 && b != 0), nil
	case "||":
		return bool64(a != 0 || b != 0), nil
	}
	return 0, arithError("arithmetic syntax error")
}

func (p *arithParser) unary() (int64, error) {
	p.skip()
	if p.pos >= len(p.s) {
		return 0, arithError("arithmetic syntax error")
	}
	switch p.s[p.pos] {
	case '-', '+', '!', '~':
		op := p.s[p.pos]
		p.pos++
		v, err := p.unary()
		if err != nil {
			return 0, err
		}
		switch op {
		case '-':
			return -v, nil
		case '!':
			if v == 0 {
				return 1, nil
			}
			return 0, nil
		case '~':
			return ^v, nil
		}
		return v, nil
	case '(':
		p.pos++
		v, err := p.assign()
		if err != nil {
			return 0, err
		}
		if !p.accept(")") {
			return 0, arithError("arithmetic syntax error")
		}
		return v, nil
	}
	c := p.s[p.pos]
	if c >= '0' && c <= '9' {
		j := p.pos
		for j < len(p.s) && (isNameChar(p.s[j])) {
			j++
		}
		n, err := strconv.ParseInt(p.s[p.pos:j], 0, 64)
		if err != nil {
			return 0, arithError("arithmetic syntax error")
		}
		p.pos = j
		return n, nil
	}
	if isNameStart(c) {
		j := p.pos
		for j < len(p.s) && isNameChar(p.s[j]) {
			j++
		}
		name := p.s[p.pos:j]
		p.pos = j
		return p.varValue(name)
	}
	return 0, arithError("arithmetic syntax error")
}
