package busybox

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// This file is the ash interpreter: running the AST with ash's process
// structure (what forks, what execs in place, which signals are ignored).

// Control flow travels as errors through the evaluator.
type exitErr struct{ code int }
type loopErr struct {
	brk bool
	n   int
}
type returnErr struct{ code int }

func (e exitErr) Error() string   { return fmt.Sprintf("exit %d", e.code) }
func (e loopErr) Error() string   { return "break/continue" }
func (e returnErr) Error() string { return "return" }

// errKilled unwinds a shell whose process has been killed.
var errKilled = errors.New("killed")

type shell struct {
	p        *proc
	m        *Machine
	fds      *fdTable
	vars     map[string]string
	exported map[string]bool
	funcs    map[string]*funcDef
	arg0     string
	params   []string
	flags    string // $-

	status    int
	lastSubst int // status of the last $(...) in the current command, -1 if none
	lastBg    int
	jobs      []*proc
	rootPID   int // $$: subshells keep their parent's

	line     int // line of the command being run, for "line N:" messages
	lineBase int

	interactive bool
	errexit     bool
	condDepth   int // inside if/while conditions and && || left sides: no errexit
	loopDepth   int
	funcDepth   int

	// execIgnore is the signal set programs this shell execs start with: ash
	// runs background jobs with SIGINT and SIGQUIT ignored.
	execIgnore sigset
}

// defaultVars is the environment a busybox container process starts with.
func defaultVars() map[string]string {
	return map[string]string{
		"PATH":   "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME":   "/root",
		"PWD":    "/",
		"IFS":    " \t\n",
		"PS1":    "\\w \\$ ",
		"PS2":    "> ",
		"PS4":    "+ ",
		"OPTIND": "1",
	}
}

// newShell starts a shell whose variables come from environ (all exported).
func newShell(p *proc, fds *fdTable, arg0 string, environ map[string]string) *shell {
	sh := &shell{p: p, m: p.m, fds: fds, vars: defaultVars(), exported: map[string]bool{},
		funcs: map[string]*funcDef{}, arg0: arg0, rootPID: p.pid}
	for k, v := range environ {
		sh.vars[k] = v
		sh.exported[k] = true
	}
	return sh
}

// environ is what a program started by the shell inherits.
func (sh *shell) environ() map[string]string {
	env := map[string]string{}
	for k := range sh.exported {
		if v, ok := sh.vars[k]; ok {
			env[k] = v
		}
	}
	return env
}

// appletSh is `sh`: sh -c SCRIPT [ARG0 ARGS...], sh FILE, or commands from
// stdin (interactive with a prompt if stdin is a terminal).
func appletSh(e *env) int {
	p := e.p
	args := e.argv[1:]
	var script *string
	forceStdin, forceInteractive := false, false
	sh := newShell(p, e.fds, "sh", e.environ)
	// ash ignores SIGQUIT itself; what it runs starts with the dispositions
	// the shell was given (background jobs keep SIGINT/SIGQUIT ignored).
	sh.execIgnore = p.getIgnore()
	p.setIgnore(sh.execIgnore | sigmask(sigQUIT))
	for len(args) > 0 && len(args[0]) > 1 && (args[0][0] == '-' || args[0][0] == '+') {
		a := args[0]
		args = args[1:]
		if a == "--" || a == "-" {
			break
		}
		for _, f := range a[1:] {
			switch f {
			case 'c':
				if script == nil {
					if len(args) == 0 {
						e.errf("-c requires an argument")
						return 2
					}
					s := args[0]
					script = &s
					args = args[1:]
				}
			case 's':
				forceStdin = true
			case 'i':
				forceInteractive = true
			case 'e':
				sh.errexit = a[0] == '-'
			case 'x', 'u', 'v', 'n', 'f', 'l', 'm', 'a', 'b', 'C':
				// accepted, not emulated
			default:
				e.errf("%s: invalid option", string(f))
				return 2
			}
		}
	}
	if script != nil {
		sh.flags = "c"
		if len(args) > 0 {
			sh.arg0 = args[0]
			sh.params = args[1:]
		}
		return sh.runScript(*script, 0)
	}
	if len(args) > 0 && !forceStdin {
		data, err := p.m.fs.contents(args[0])
		if err != nil {
			e.errf("can't open '%s': %s", args[0], strerror(err))
			return 127
		}
		sh.arg0 = args[0]
		sh.params = args[1:]
		return sh.runScript(string(data), 1)
	}
	sh.params = args
	sh.flags = "s"
	sh.interactive = forceInteractive || e.fds.ttyOf(0) != nil
	if sh.interactive {
		sh.flags = "is"
		p.setIgnore(p.getIgnore() | sigmask(sigINT, sigQUIT, sigTERM))
	}
	return sh.runStdin()
}

func (sh *shell) killed() bool { return sh.p.ctx.Err() != nil }

// warn prints "sh: msg" the way ash's plain messages look.
func (sh *shell) warn(t *fdTable, format string, args ...any) {
	msg := sh.arg0 + ": " + fmt.Sprintf(format, args...) + "\n"
	t.write(sh.p.ctx, 2, []byte(msg)) //nolint:errcheck
}

// builtinErr prints ash's error format for a builtin: "sh: NAME: line N: msg".
func (sh *shell) builtinErr(t *fdTable, name, format string, args ...any) {
	sh.warn(t, "%s: line %d: %s", name, sh.line, fmt.Sprintf(format, args...))
}

// runScript runs source text, one complete command at a time.
func (sh *shell) runScript(src string, lineBase int) int {
	sh.lineBase = lineBase
	ps := newParser(src, lineBase)
	for {
		if sh.killed() {
			return sh.status
		}
		l, err := ps.parseCommandLine()
		if err != nil {
			sh.warn(sh.fds, "%v", err)
			return 2
		}
		if l == nil {
			return sh.status
		}
		if done, code := sh.top(l, ps.atEnd()); done {
			return code
		}
	}
}

// top runs one parsed command line and reports whether the shell must exit.
func (sh *shell) top(l *list, last bool) (bool, int) {
	err := sh.runList(l, last)
	var ee exitErr
	switch {
	case err == nil:
	case errors.As(err, &ee):
		return true, ee.code
	case errors.Is(err, errKilled):
		return true, sh.status
	}
	return false, 0
}

// runStdin reads commands from descriptor 0, a line at a time.
func (sh *shell) runStdin() int {
	var buf strings.Builder
	line := 1
	for {
		if sh.killed() {
			return sh.status
		}
		if sh.interactive {
			prompt := sh.ps1()
			if buf.Len() > 0 {
				prompt = sh.vars["PS2"]
			}
			sh.fds.write(sh.p.ctx, 2, []byte(prompt)) //nolint:errcheck
		}
		text, eof := sh.readLine()
		if sh.killed() {
			return sh.status
		}
		buf.WriteString(text)
		ps := newParser(buf.String(), line)
		ps.more = !eof
		var lists []*list
		var perr error
		for {
			l, err := ps.parseCommandLine()
			if err != nil {
				perr = err
				break
			}
			if l == nil {
				break
			}
			lists = append(lists, l)
		}
		var se *syntaxError
		if perr != nil && errors.As(perr, &se) && se.eof && !eof {
			continue // incomplete: read another line
		}
		line = ps.line
		buf.Reset()
		for _, l := range lists {
			if done, code := sh.top(l, false); done {
				return code
			}
		}
		if perr != nil {
			sh.warn(sh.fds, "%v", perr)
			if !sh.interactive {
				return 2
			}
			sh.status = 2
		}
		if eof {
			return sh.status
		}
	}
}

// ps1 renders busybox's default root prompt, '\w \$ '.
func (sh *shell) ps1() string {
	dir := sh.vars["PWD"]
	if home := sh.vars["HOME"]; home != "" && home != "/" && (dir == home || strings.HasPrefix(dir, home+"/")) {
		dir = "~" + dir[len(home):]
	}
	return dir + " # "
}

// readLine reads up to and including a newline from fd 0, a byte at a time
// like ash, so whatever follows stays for the commands it runs.
func (sh *shell) readLine() (string, bool) {
	var b strings.Builder
	one := make([]byte, 1)
	for {
		n, err := sh.fds.read(sh.p.ctx, 0, one)
		if n == 1 {
			b.WriteByte(one[0])
			if one[0] == '\n' {
				return b.String(), false
			}
			continue
		}
		if err != nil {
			return b.String(), true
		}
	}
}

func (sh *shell) runList(l *list, tail bool) error {
	for i, item := range l.items {
		if sh.killed() {
			return errKilled
		}
		last := i == len(l.items)-1
		if item.bg {
			sh.background(item.ao)
			sh.status = 0
			continue
		}
		if err := sh.runAndOr(item.ao, tail && last); err != nil {
			return err
		}
	}
	return nil
}

func (sh *shell) runAndOr(ao *andOr, tail bool) error {
	n := len(ao.pipes)
	if n > 1 {
		sh.condDepth++
	}
	err := sh.runPipeline(ao.pipes[0], tail && n == 1)
	if n > 1 {
		sh.condDepth--
	}
	ran := 0
	for i, op := range ao.ops {
		if err != nil {
			return err
		}
		if (op == "&&") != (sh.status == 0) {
			continue
		}
		last := i == n-2
		if !last {
			sh.condDepth++
		}
		err = sh.runPipeline(ao.pipes[i+1], tail && last)
		if !last {
			sh.condDepth--
		}
		ran = i + 1
	}
	if err != nil {
		return err
	}
	if sh.errexit && sh.condDepth == 0 && sh.status != 0 && ran == n-1 && !ao.pipes[ran].negate {
		return exitErr{sh.status}
	}
	return nil
}

func (sh *shell) runPipeline(pl *pipeline, tail bool) error {
	if pl.negate {
		sh.condDepth++
		defer func() { sh.condDepth-- }()
	}
	var err error
	if len(pl.cmds) == 1 {
		err = sh.runCommand(pl.cmds[0], tail && !pl.negate)
	} else {
		err = sh.runPipe(pl.cmds)
	}
	if pl.negate && err == nil {
		if sh.status == 0 {
			sh.status = 1
		} else {
			sh.status = 0
		}
	}
	return err
}

// runPipe forks one process per stage, connected by pipes; the status is the
// last stage's.
func (sh *shell) runPipe(cmds []command) error {
	var procs []*proc
	var prev *bytePipe
	for i, c := range cmds {
		t := sh.fds.clone()
		if prev != nil {
			t.set(0, newOfile(pipeReadEnd{prev}, true, false))
		}
		var next *bytePipe
		if i < len(cmds)-1 {
			next = newBytePipe()
			t.set(1, newOfile(pipeWriteEnd{next}, false, true))
		}
		c := c
		child := sh.fork(t, false, func(sub *shell) int {
			return sub.subshellRun(func() error { return sub.runCommand(c, true) })
		})
		if child == nil {
			return errKilled
		}
		procs = append(procs, child)
		prev = next
	}
	for _, c := range procs {
		select {
		case <-c.done:
		case <-sh.p.ctx.Done():
			return errKilled
		}
	}
	last := procs[len(procs)-1]
	st, sig := last.result()
	sh.status = st
	sh.reportSignal(sh.fds, sig)
	return nil
}

// fork starts a subshell process sharing nothing but the descriptor table t
// (which it takes over). Background forks outlive this shell.
func (sh *shell) fork(t *fdTable, bg bool, fn func(sub *shell) int) *proc {
	parentCtx := sh.p.ctx
	ignore := sh.p.getIgnore()
	execIgnore := sh.execIgnore
	if bg {
		parentCtx = context.WithoutCancel(sh.p.ctx)
		ignore |= sigmask(sigINT, sigQUIT)
		execIgnore |= sigmask(sigINT, sigQUIT)
	}
	child := sh.m.spawn(sh.p, parentCtx, sh.p.getArgv(), bg, ignore)
	if child == nil {
		t.closeAll()
		return nil
	}
	child.setFiles(t)
	sub := &shell{p: child, m: sh.m, fds: t, vars: copyMap(sh.vars), exported: copyBoolMap(sh.exported), funcs: sh.funcs, arg0: sh.arg0,
		params: sh.params, flags: sh.flags, status: sh.status, lastBg: sh.lastBg, rootPID: sh.rootPID,
		line: sh.line, lineBase: sh.lineBase, errexit: sh.errexit, execIgnore: execIgnore}
	go func() { child.exit(fn(sub)) }()
	return child
}

// subshellRun turns a subshell's control flow into its exit status.
func (sh *shell) subshellRun(f func() error) int {
	err := f()
	var ee exitErr
	var re returnErr
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &re):
		return re.code
	}
	return sh.status
}

func copyBoolMap(m map[string]bool) map[string]bool {
	c := make(map[string]bool, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func copyMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// background runs `ao &`: a forked job with stdin from /dev/null (ash does
// this for non-interactive shells) and SIGINT/SIGQUIT ignored.
func (sh *shell) background(ao *andOr) {
	t := sh.fds.clone()
	t.set(0, newOfile(nullFile{}, true, true))
	child := sh.fork(t, true, func(sub *shell) int {
		return sub.subshellRun(func() error { return sub.runAndOr(ao, true) })
	})
	if child == nil {
		return
	}
	sh.jobs = append(sh.jobs, child)
	sh.lastBg = child.pid
}

// signalMessages are what ash prints when a foreground job dies of a signal
// (none for SIGINT and SIGPIPE).
var signalMessages = map[int]string{
	1: "Hangup", 3: "Quit", 4: "Illegal instruction", 5: "Trace/breakpoint trap", 6: "Aborted",
	7: "Bus error", 8: "Floating point exception", 9: "Killed", 10: "User defined signal 1",
	11: "Segmentation fault", 12: "User defined signal 2", 14: "Alarm clock", 15: "Terminated",
	16: "Stack fault", 24: "CPU time limit exceeded", 25: "File size limit exceeded",
	26: "Virtual timer expired", 27: "Profiling timer expired", 29: "I/O possible", 30: "Power failure",
	31: "Bad system call",
}

func (sh *shell) reportSignal(t *fdTable, sig int) {
	if msg, ok := signalMessages[sig]; ok && !sh.killed() {
		t.write(sh.p.ctx, 2, []byte(msg+"\n")) //nolint:errcheck
	}
}

func (sh *shell) runCommand(c command, tail bool) error {
	if sh.killed() {
		return errKilled
	}
	switch c := c.(type) {
	case *simpleCmd:
		return sh.runSimple(c, tail)
	case *funcDef:
		sh.funcs[c.name] = c
		sh.status = 0
		return nil
	case *compound:
		t, err := sh.redirect(sh.fds, c.redirs)
		if err != nil {
			sh.status = 1
			return nil
		}
		saved := sh.fds
		sh.fds = t
		defer func() {
			sh.fds = saved
			t.closeAll()
		}()
		if len(c.redirs) > 0 {
			tail = false // the saved descriptors must be restored
		}
		return sh.runCompound(c.body, tail)
	}
	return fmt.Errorf("unknown command %T", c)
}

func (sh *shell) runCompound(c command, tail bool) error {
	switch c := c.(type) {
	case *braceGroup:
		return sh.runList(c.body, tail)
	case *subshell:
		child := sh.fork(sh.fds.clone(), false, func(sub *shell) int {
			return sub.subshellRun(func() error { return sub.runList(c.body, true) })
		})
		if child == nil {
			return errKilled
		}
		return sh.waitFG(child, sh.fds)
	case *ifCmd:
		for i, cond := range c.conds {
			sh.condDepth++
			err := sh.runList(cond, false)
			sh.condDepth--
			if err != nil {
				return err
			}
			if sh.status == 0 {
				return sh.runList(c.thens[i], tail)
			}
		}
		if c.orElse != nil {
			return sh.runList(c.orElse, tail)
		}
		sh.status = 0
		return nil
	case *loopCmd:
		return sh.runLoop(c)
	case *forCmd:
		return sh.runFor(c)
	case *caseCmd:
		subject, err := sh.expandString(c.subject)
		if err != nil {
			return err
		}
		for _, item := range c.items {
			for _, pw := range item.patterns {
				pat, err := sh.expandPattern(pw)
				if err != nil {
					return err
				}
				if globMatch(pat, subject) {
					if item.body == nil {
						sh.status = 0
						return nil
					}
					return sh.runList(item.body, tail)
				}
			}
		}
		sh.status = 0
		return nil
	}
	return fmt.Errorf("unknown compound %T", c)
}

// loopBody runs a loop body and digests break/continue aimed at this loop.
// It reports whether the loop must stop.
func (sh *shell) loopBody(body *list) (stop bool, err error) {
	err = sh.runList(body, false)
	var le loopErr
	if errors.As(err, &le) {
		if le.n > 1 {
			le.n--
			return true, le
		}
		return le.brk, nil
	}
	return err != nil, err
}

func (sh *shell) runLoop(c *loopCmd) error {
	sh.loopDepth++
	defer func() { sh.loopDepth-- }()
	status := 0
	for {
		if sh.killed() {
			return errKilled
		}
		sh.condDepth++
		err := sh.runList(c.cond, false)
		sh.condDepth--
		if err != nil {
			var le loopErr
			if errors.As(err, &le) {
				if le.n > 1 {
					le.n--
					return le
				}
				if le.brk {
					break
				}
				continue
			}
			return err
		}
		if (sh.status == 0) == c.until {
			break
		}
		stop, err := sh.loopBody(c.body)
		status = sh.status
		if err != nil {
			return err
		}
		if stop {
			break
		}
	}
	sh.status = status
	return nil
}

func (sh *shell) runFor(c *forCmd) error {
	var items []string
	if c.hasIn {
		var err error
		items, err = sh.expandWords(c.words)
		if err != nil {
			return err
		}
	} else {
		items = append(items, sh.params...)
	}
	sh.loopDepth++
	defer func() { sh.loopDepth-- }()
	sh.status = 0
	for _, it := range items {
		if sh.killed() {
			return errKilled
		}
		sh.vars[c.name] = it
		stop, err := sh.loopBody(c.body)
		if err != nil {
			return err
		}
		if stop {
			break
		}
	}
	return nil
}

// waitFG waits for a foreground child and takes its status, printing ash's
// message if a signal killed it.
func (sh *shell) waitFG(child *proc, t *fdTable) error {
	select {
	case <-child.done:
	case <-sh.p.ctx.Done():
		return errKilled
	}
	st, sig := child.result()
	sh.status = st
	sh.reportSignal(t, sig)
	return nil
}

func (sh *shell) runSimple(c *simpleCmd, tail bool) error {
	sh.line = c.line
	sh.lastSubst = -1
	argv, err := sh.expandWords(c.words)
	if err != nil {
		return err
	}
	if sh.killed() {
		return errKilled
	}
	if len(argv) == 0 {
		// Assignments only (status is the last command substitution's).
		for _, a := range c.assigns {
			v, err := sh.expandString(a.value)
			if err != nil {
				return err
			}
			sh.vars[a.name] = v
		}
		t, err := sh.redirect(sh.fds, c.redirs)
		if err != nil {
			sh.status = 1
			return nil
		}
		t.closeAll()
		sh.status = max(sh.lastSubst, 0)
		return nil
	}
	// Prefix assignments are visible to the command only (and exported to it).
	var restore map[string]*string
	environ := sh.environ()
	if len(c.assigns) > 0 {
		restore = map[string]*string{}
		for _, a := range c.assigns {
			v, err := sh.expandString(a.value)
			if err != nil {
				return err
			}
			if _, done := restore[a.name]; !done {
				if old, ok := sh.vars[a.name]; ok {
					restore[a.name] = &old
				} else {
					restore[a.name] = nil
				}
			}
			sh.vars[a.name] = v
			environ[a.name] = v
		}
		defer func() {
			for k, v := range restore {
				if v == nil {
					delete(sh.vars, k)
				} else {
					sh.vars[k] = *v
				}
			}
		}()
	}
	t, err := sh.redirect(sh.fds, c.redirs)
	if err != nil {
		sh.status = 1
		return nil
	}
	name := argv[0]
	if f := sh.funcs[name]; f != nil {
		defer t.closeAll()
		return sh.callFunc(f, argv, t)
	}
	if name == "exec" {
		return sh.doExec(argv[1:], t, environ)
	}
	if b := shellBuiltins[name]; b != nil {
		defer t.closeAll()
		e := &env{p: sh.p, fds: t, argv: argv, name: sh.arg0, sh: sh, environ: environ}
		st := b(e)
		if e.err != nil {
			return e.err
		}
		if sh.killed() {
			return errKilled
		}
		sh.status = st
		return nil
	}
	if lookupApplet(name) == nil {
		sh.warn(t, "%s: not found", name)
		t.closeAll()
		sh.status = 127
		return nil
	}
	if tail {
		// ash execs the last command of `sh -c` in place: same PID.
		return sh.execInPlace(argv, t, environ)
	}
	child := sh.m.spawn(sh.p, sh.p.ctx, argv, false, sh.execIgnore)
	if child == nil {
		t.closeAll()
		return errKilled
	}
	child.setFiles(t.clone())
	go func() { child.exit(execArgv(child, child.files(), argv, environ)) }()
	err = sh.waitFG(child, t)
	t.closeAll()
	return err
}

// execInPlace replaces the shell with argv in the same process.
func (sh *shell) execInPlace(argv []string, t *fdTable, environ map[string]string) error {
	p := sh.p
	p.setArgv(argv)
	p.setIgnore(sh.execIgnore)
	old := p.swapFiles(t)
	if old != nil && old != t {
		old.closeAll()
	}
	sh.fds = t
	return exitErr{execArgv(p, t, argv, environ)}
}

func (sh *shell) doExec(args []string, t *fdTable, environ map[string]string) error {
	if len(args) == 0 {
		// Redirections only: they become the shell's own descriptors.
		old := sh.p.swapFiles(t)
		if old != nil && old != t {
			old.closeAll()
		}
		sh.fds = t
		sh.status = 0
		return nil
	}
	if lookupApplet(args[0]) == nil {
		sh.builtinErr(t, "exec", "%s: not found", args[0])
		t.closeAll()
		return exitErr{127}
	}
	return sh.execInPlace(args, t, environ)
}

func (sh *shell) callFunc(f *funcDef, argv []string, t *fdTable) error {
	savedParams, savedFds := sh.params, sh.fds
	sh.params = argv[1:]
	sh.fds = t
	sh.funcDepth++
	defer func() {
		sh.params, sh.fds = savedParams, savedFds
		sh.funcDepth--
	}()
	err := sh.runCommand(f.body, false)
	var re returnErr
	if errors.As(err, &re) {
		sh.status = re.code
		return nil
	}
	return err
}

// redirect applies redirections to a copy of base. On failure it prints
// ash's message and returns an error (the command does not run).
func (sh *shell) redirect(base *fdTable, rs []*redir) (*fdTable, error) {
	t := base.clone()
	for _, r := range rs {
		if err := sh.redirectOne(t, r); err != nil {
			t.closeAll()
			return nil, err
		}
	}
	return t, nil
}

func (sh *shell) redirectOne(t *fdTable, r *redir) error {
	if r.op == "<<" || r.op == "<<-" {
		body := ""
		if r.doc != nil {
			s, err := sh.expandString(r.doc)
			if err != nil {
				return err
			}
			body = s
		}
		t.set(r.fd, newOfile(&memReader{data: []byte(body)}, true, false))
		return nil
	}
	target, err := sh.expandString(r.target)
	if err != nil {
		return err
	}
	switch r.op {
	case "<&", ">&":
		if target == "-" {
			t.set(r.fd, nil)
			return nil
		}
		n, err := strconv.Atoi(target)
		if err != nil || n < 0 || n > 9 {
			if r.op == ">&" {
				// ">&file" is ">file 2>&1" in ash.
				o, err := sh.m.openFile(t, target, true, false)
				if err != nil {
					sh.warn(t, "can't create %s: %s", target, createErr(err))
					return err
				}
				t.set(1, o)
				t.set(2, o.ref())
				return nil
			}
			sh.warn(t, "%s: Bad file descriptor", target)
			return syscall.EBADF
		}
		o := t.get(n)
		if o == nil {
			sh.warn(t, "%d: Bad file descriptor", n)
			return syscall.EBADF
		}
		if n != r.fd {
			t.set(r.fd, o.ref())
		}
		return nil
	case "<":
		o, err := sh.m.openFile(t, target, false, false)
		if err != nil {
			msg := strerror(err)
			if errors.Is(err, syscall.ENOENT) {
				msg = "no such file"
			}
			sh.warn(t, "can't open %s: %s", target, msg)
			return err
		}
		t.set(r.fd, o)
	case "<>":
		o, err := sh.m.openFile(t, target, false, false)
		if err != nil {
			o, err = sh.m.openFile(t, target, true, false)
		}
		if err != nil {
			sh.warn(t, "can't create %s: %s", target, createErr(err))
			return err
		}
		t.set(r.fd, o)
	default: // > >> >|
		o, err := sh.m.openFile(t, target, true, r.op == ">>")
		if err != nil {
			sh.warn(t, "can't create %s: %s", target, createErr(err))
			return err
		}
		t.set(r.fd, o)
	}
	return nil
}

func createErr(err error) string {
	if errors.Is(err, errNonexistentDir) {
		return "nonexistent directory"
	}
	return strerror(err)
}

// ---- expansion ----

type fieldBuilder struct {
	fields []string
	cur    strings.Builder
	has    bool
	ifs    string
}

func (f *fieldBuilder) quoted(s string) {
	f.cur.WriteString(s)
	f.has = true
}

func (f *fieldBuilder) push() {
	if f.has {
		f.fields = append(f.fields, f.cur.String())
	}
	f.cur.Reset()
	f.has = false
}

// unquoted adds expansion output subject to field splitting on IFS.
func (f *fieldBuilder) unquoted(s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(f.ifs, c) < 0 {
			f.cur.WriteByte(c)
			f.has = true
			continue
		}
		if c == ' ' || c == '\t' || c == '\n' {
			f.push()
			continue
		}
		// A non-white IFS character always ends a field (maybe empty).
		f.has = true
		f.push()
	}
}

func (sh *shell) ifs() string {
	if v, ok := sh.vars["IFS"]; ok {
		return v
	}
	return " \t\n"
}

func (sh *shell) expandWords(ws []*word) ([]string, error) {
	var out []string
	for _, w := range ws {
		fs, err := sh.expandFields(w)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

func (sh *shell) expandFields(w *word) ([]string, error) {
	fb := &fieldBuilder{ifs: sh.ifs()}
	for i, part := range w.parts {
		switch part.kind {
		case pLit:
			text := part.text
			if i == 0 && !part.quoted && strings.HasPrefix(text, "~") {
				if rest := text[1:]; rest == "" || rest[0] == '/' {
					text = sh.vars["HOME"] + rest
				}
			}
			fb.quoted(text)
		case pParam:
			if part.op == "" && (part.name == "@" || part.name == "*") {
				if part.quoted && part.name == "@" {
					for j, v := range sh.params {
						if j > 0 {
							fb.push()
						}
						fb.quoted(v)
					}
					continue
				}
				if part.quoted {
					sep := ""
					if ifs := sh.ifs(); ifs != "" {
						sep = ifs[:1]
					}
					fb.quoted(strings.Join(sh.params, sep))
					continue
				}
				for _, v := range sh.params {
					fb.unquoted(v)
					fb.push()
				}
				continue
			}
			v, err := sh.param(part)
			if err != nil {
				return nil, err
			}
			if part.quoted {
				fb.quoted(v)
			} else {
				fb.unquoted(v)
			}
		case pCmd:
			v, err := sh.cmdSubst(part.sub)
			if err != nil {
				return nil, err
			}
			if part.quoted {
				fb.quoted(v)
			} else {
				fb.unquoted(v)
			}
		case pArith:
			v, err := sh.arith(part.text)
			if err != nil {
				return nil, err
			}
			if part.quoted {
				fb.quoted(v)
			} else {
				fb.unquoted(v)
			}
		}
	}
	fb.push()
	return fb.fields, nil
}

// expandString expands without field splitting (assignments, redirection
// targets, case subjects, here-documents).
func (sh *shell) expandString(w *word) (string, error) {
	if w == nil {
		return "", nil
	}
	var b strings.Builder
	for i, part := range w.parts {
		switch part.kind {
		case pLit:
			text := part.text
			if i == 0 && !part.quoted && strings.HasPrefix(text, "~") {
				if rest := text[1:]; rest == "" || rest[0] == '/' {
					text = sh.vars["HOME"] + rest
				}
			}
			b.WriteString(text)
		case pParam:
			v, err := sh.param(part)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		case pCmd:
			v, err := sh.cmdSubst(part.sub)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		case pArith:
			v, err := sh.arith(part.text)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		}
	}
	return b.String(), nil
}

// expandPattern expands a case pattern: quoted characters match literally.
func (sh *shell) expandPattern(w *word) (string, error) {
	var b strings.Builder
	for _, part := range w.parts {
		if part.kind == pLit {
			if part.quoted {
				b.WriteString(globQuote(part.text))
			} else {
				b.WriteString(part.text)
			}
			continue
		}
		v, err := sh.expandString(&word{parts: []wordPart{part}})
		if err != nil {
			return "", err
		}
		if part.quoted {
			v = globQuote(v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func globQuote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lookupVar returns a parameter's value and whether it is set.
func (sh *shell) lookupVar(name string) (string, bool) {
	switch name {
	case "$":
		return strconv.Itoa(sh.rootPID), true
	case "?":
		return strconv.Itoa(sh.status), true
	case "!":
		if sh.lastBg == 0 {
			return "", false
		}
		return strconv.Itoa(sh.lastBg), true
	case "#":
		return strconv.Itoa(len(sh.params)), true
	case "-":
		return sh.flags, true
	case "0":
		return sh.arg0, true
	case "@", "*":
		return strings.Join(sh.params, " "), len(sh.params) > 0
	case "LINENO":
		return strconv.Itoa(sh.line), true
	case "PPID":
		if sh.p.parent != nil {
			return strconv.Itoa(sh.p.parent.pid), true
		}
		return "0", true
	}
	if n, err := strconv.Atoi(name); err == nil {
		if n >= 1 && n <= len(sh.params) {
			return sh.params[n-1], true
		}
		return "", false
	}
	v, ok := sh.vars[name]
	return v, ok
}

func (sh *shell) param(part wordPart) (string, error) {
	v, set := sh.lookupVar(part.name)
	switch part.op {
	case "":
		return v, nil
	case "#":
		return strconv.Itoa(len(v)), nil
	}
	colon := strings.HasPrefix(part.op, ":")
	useArg := !set || (colon && v == "")
	switch strings.TrimPrefix(part.op, ":") {
	case "-":
		if useArg {
			return sh.expandString(part.arg)
		}
		return v, nil
	case "=":
		if useArg {
			a, err := sh.expandString(part.arg)
			if err != nil {
				return "", err
			}
			if isName(part.name) {
				sh.vars[part.name] = a
			}
			return a, nil
		}
		return v, nil
	case "+":
		if useArg {
			return "", nil
		}
		return sh.expandString(part.arg)
	case "?":
		if useArg {
			msg, err := sh.expandString(part.arg)
			if err != nil {
				return "", err
			}
			if msg == "" {
				msg = "parameter not set"
			}
			sh.warn(sh.fds, "%s: %s", part.name, msg)
			return "", exitErr{2}
		}
		return v, nil
	}
	return v, nil
}

// cmdSubst runs $(...) in a subshell and returns its output minus trailing
// newlines.
func (sh *shell) cmdSubst(body *list) (string, error) {
	pipe := newBytePipe()
	t := sh.fds.clone()
	t.set(1, newOfile(pipeWriteEnd{pipe}, false, true))
	child := sh.fork(t, false, func(sub *shell) int {
		return sub.subshellRun(func() error { return sub.runList(body, true) })
	})
	if child == nil {
		return "", errKilled
	}
	r := newOfile(pipeReadEnd{pipe}, true, false)
	defer r.unref()
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.f.read(sh.p.ctx, buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if errors.Is(err, errInterrupted) {
				return "", errKilled
			}
			break
		}
	}
	select {
	case <-child.done:
	case <-sh.p.ctx.Done():
		return "", errKilled
	}
	st, _ := child.result()
	sh.lastSubst = st
	return strings.TrimRight(string(out), "\n"), nil
}

func (sh *shell) arith(expr string) (string, error) {
	// Expand $x, ${x}, $(...) inside first, as ash does.
	ps := &parser{src: expr}
	w, err := ps.scanWord(nil, true)
	if err != nil {
		return "", err
	}
	text, err := sh.expandString(w)
	if err != nil {
		return "", err
	}
	v, aerr := evalArith(text, sh.vars)
	if aerr != nil {
		sh.warn(sh.fds, "%s", aerr.Error())
		return "", exitErr{2}
	}
	return strconv.FormatInt(v, 10), nil
}

// sortedVars is `set`'s listing.
func (sh *shell) sortedVars() []string {
	keys := make([]string, 0, len(sh.vars))
	for k := range sh.vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
