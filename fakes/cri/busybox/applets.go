package busybox

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type applet func(ctx context.Context, m *Machine, p *proc, argv []string, io *procIO) int

var builtins map[string]applet

// shellBuiltin marks applets ash runs in-process (no new PID).
var shellBuiltin = map[string]bool{"echo": true, "printf": true, "true": true, "false": true, "kill": true, ":": true}

func init() {
	builtins = map[string]applet{
		"sh": func(ctx context.Context, m *Machine, p *proc, argv []string, io *procIO) int {
			return m.runSh(ctx, p, argv[1:], io)
		},
		"echo":   appletEcho,
		"printf": appletPrintf,
		"true":   func(context.Context, *Machine, *proc, []string, *procIO) int { return 0 },
		":":      func(context.Context, *Machine, *proc, []string, *procIO) int { return 0 },
		"false":  func(context.Context, *Machine, *proc, []string, *procIO) int { return 1 },
		"cat":    appletCat,
		"sleep":  appletSleep,
		"kill":   appletKill,
		"head":   appletHead,
		"wc":     appletWc,
		"stty":   appletStty,
		"ps":     appletPs,
		"nc":     appletNc,
		"httpd":  appletHttpd,
	}
	builtins["/bin/sh"] = builtins["sh"]
}

// exec runs argv in process p (the applet table is the container's /bin).
func (m *Machine) exec(ctx context.Context, p *proc, argv []string, io *procIO) int {
	name := argv[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 && builtins[name] == nil {
		name = name[i+1:]
		if !strings.HasPrefix(argv[0], "/bin/") && !strings.HasPrefix(argv[0], "/usr/bin/") && !strings.HasPrefix(argv[0], "/usr/sbin/") {
			name = "\x00" // an absolute path outside /bin does not exist
		}
	}
	a, ok := builtins[name]
	if !ok {
		io.write(io.err, []byte("sh: "+argv[0]+": not found\n")) //nolint:errcheck
		return 127
	}
	code := a(ctx, m, p, argv, io)
	if io.pipe {
		return 141
	}
	return code
}

func appletEcho(_ context.Context, _ *Machine, _ *proc, argv []string, io *procIO) int {
	args := argv[1:]
	nl := true
	if len(args) > 0 && args[0] == "-n" {
		nl, args = false, args[1:]
	}
	s := strings.Join(args, " ")
	if nl {
		s += "\n"
	}
	if io.write(io.out, []byte(s)) != nil {
		return 1
	}
	return 0
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		case '0':
			j := i + 1
			for j < len(s) && j < i+4 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			n, _ := strconv.ParseUint(s[i+1:j], 8, 8)
			b.WriteByte(byte(n))
			i = j - 1
		case 'x':
			j := i + 1
			for j < len(s) && j < i+3 && strings.IndexByte("0123456789abcdefABCDEF", s[j]) >= 0 {
				j++
			}
			n, _ := strconv.ParseUint(s[i+1:j], 16, 8)
			b.WriteByte(byte(n))
			i = j - 1
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func appletPrintf(_ context.Context, _ *Machine, _ *proc, argv []string, io *procIO) int {
	if len(argv) < 2 {
		io.write(io.err, []byte("printf: usage\n")) //nolint:errcheck
		return 1
	}
	format, args := unescape(argv[1]), argv[2:]
	var b strings.Builder
	for {
		for i := 0; i < len(format); i++ {
			if format[i] != '%' || i+1 >= len(format) {
				b.WriteByte(format[i])
				continue
			}
			i++
			switch format[i] {
			case '%':
				b.WriteByte('%')
			case 's', 'd':
				v := ""
				if len(args) > 0 {
					v, args = args[0], args[1:]
				}
				if format[i] == 'd' {
					n, _ := strconv.Atoi(v)
					v = strconv.Itoa(n)
				}
				b.WriteString(v)
			default:
				b.WriteByte('%')
				b.WriteByte(format[i])
			}
		}
		if len(args) == 0 || !strings.Contains(format, "%") {
			break
		}
	}
	if io.write(io.out, []byte(b.String())) != nil {
		return 1
	}
	return 0
}

func appletCat(ctx context.Context, _ *Machine, _ *proc, argv []string, io *procIO) int {
	for {
		b, err := io.in.next(ctx, false)
		if len(b) > 0 {
			if io.write(io.out, b) != nil {
				return 1
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return 130
			}
			return 0
		}
	}
}

func appletSleep(ctx context.Context, _ *Machine, _ *proc, argv []string, io *procIO) int {
	if len(argv) < 2 {
		io.write(io.err, []byte("sleep: missing operand\n")) //nolint:errcheck
		return 1
	}
	f, err := strconv.ParseFloat(argv[1], 64)
	if err != nil {
		io.write(io.err, []byte("sleep: invalid number '"+argv[1]+"'\n")) //nolint:errcheck
		return 1
	}
	t := time.NewTimer(time.Duration(f * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return 0
	case <-ctx.Done():
		return 130
	}
}

func appletKill(_ context.Context, m *Machine, _ *proc, argv []string, io *procIO) int {
	sig := syscall.SIGTERM
	args := argv[1:]
	if len(args) > 0 && strings.HasPrefix(args[0], "-") {
		s := strings.TrimPrefix(args[0], "-")
		args = args[1:]
		if s == "s" && len(args) > 0 {
			s, args = args[0], args[1:]
		}
		switch strings.TrimPrefix(strings.ToUpper(s), "SIG") {
		case "9", "KILL":
			sig = syscall.SIGKILL
		case "15", "TERM":
			sig = syscall.SIGTERM
		case "2", "INT":
			sig = syscall.SIGINT
		case "1", "HUP":
			sig = syscall.SIGHUP
		default:
			io.write(io.err, []byte("kill: bad signal name '"+s+"'\n")) //nolint:errcheck
			return 1
		}
	}
	code := 0
	for _, a := range args {
		pid, err := strconv.Atoi(a)
		if err != nil || !m.signal(pid, sig) {
			io.write(io.err, []byte("kill: can't kill pid "+a+": No such process\n")) //nolint:errcheck
			code = 1
		}
	}
	return code
}

func appletHead(ctx context.Context, _ *Machine, _ *proc, argv []string, io *procIO) int {
	n := int64(-1)
	file := ""
	for i := 1; i < len(argv); i++ {
		if argv[i] == "-c" && i+1 < len(argv) {
			v, err := strconv.ParseInt(argv[i+1], 10, 64)
			if err != nil {
				io.write(io.err, []byte("head: invalid number '"+argv[i+1]+"'\n")) //nolint:errcheck
				return 1
			}
			n = v
			i++
		} else {
			file = argv[i]
		}
	}
	if n < 0 {
		io.write(io.err, []byte("head: only -c is supported here\n")) //nolint:errcheck
		return 1
	}
	switch file {
	case "/dev/zero", "/dev/urandom":
		chunk := make([]byte, 32<<10)
		var x uint32 = 2463534242
		for n > 0 {
			if ctx.Err() != nil {
				return 130
			}
			k := int64(len(chunk))
			if n < k {
				k = n
			}
			if file == "/dev/urandom" {
				for i := range chunk[:k] { // xorshift: deterministic stand-in
					x ^= x << 13
					x ^= x >> 17
					x ^= x << 5
					chunk[i] = byte(x)
				}
			}
			if io.write(io.out, chunk[:k]) != nil {
				return 1
			}
			n -= k
		}
		return 0
	case "", "-":
		for n > 0 {
			b, err := io.in.next(ctx, false)
			if int64(len(b)) > n {
				b = b[:n]
			}
			if io.write(io.out, b) != nil {
				return 1
			}
			n -= int64(len(b))
			if err != nil {
				return 0
			}
		}
		return 0
	}
	io.write(io.err, []byte("head: "+file+": No such file or directory\n")) //nolint:errcheck
	return 1
}

func appletWc(ctx context.Context, _ *Machine, _ *proc, argv []string, io *procIO) int {
	var total int
	for {
		b, err := io.in.next(ctx, false)
		total += len(b)
		if err != nil {
			break
		}
	}
	io.write(io.out, []byte(strconv.Itoa(total)+"\n")) //nolint:errcheck
	return 0
}

func appletStty(_ context.Context, _ *Machine, _ *proc, argv []string, io *procIO) int {
	if io.tty == nil {
		io.write(io.err, []byte("stty: standard input: Inappropriate ioctl for device\n")) //nolint:errcheck
		return 1
	}
	if len(argv) > 1 && argv[1] == "size" {
		w, h := io.tty.Size()
		io.write(io.out, []byte(fmt.Sprintf("%d %d\n", h, w))) //nolint:errcheck
	}
	return 0
}

func appletPs(_ context.Context, m *Machine, _ *proc, _ []string, io *procIO) int {
	var b bytes.Buffer
	b.WriteString("PID   USER     TIME  COMMAND\n")
	for _, p := range m.Processes() {
		fmt.Fprintf(&b, "%5d %-8s %5s %s\n", p.PID, "root", "0:00", p.Cmdline)
	}
	if io.write(io.out, b.Bytes()) != nil {
		return 1
	}
	return 0
}

// serve accepts on port and runs handle per connection until ctx ends.
func serve(ctx context.Context, m *Machine, port int, once bool, io *procIO, handle func(net.Conn)) int {
	ln, err := m.ns.Listen(port)
	if err != nil {
		io.write(io.err, []byte(fmt.Sprintf("bind: %v\n", err))) //nolint:errcheck
		return 1
	}
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			return 130
		}
		if once {
			handle(c)
			return 0
		}
		go handle(c)
	}
}

func appletNc(ctx context.Context, m *Machine, _ *proc, argv []string, io *procIO) int {
	listen, port, prog := 0, -1, []string(nil)
	for i := 1; i < len(argv); i++ {
		switch a := argv[i]; {
		case a == "-l":
			listen++
		case a == "-ll" || a == "-lk" || a == "-kl":
			listen += 2
		case a == "-p" && i+1 < len(argv):
			port, _ = strconv.Atoi(argv[i+1])
			i++
		case a == "-e" && i+1 < len(argv):
			prog = argv[i+1:]
			i = len(argv)
		}
	}
	if listen == 0 || port <= 0 || prog == nil {
		io.write(io.err, []byte("nc: only nc -l[l] -p PORT -e PROG is supported here\n")) //nolint:errcheck
		return 1
	}
	return serve(ctx, m, port, listen == 1, io, func(c net.Conn) {
		defer c.Close()
		cio := &procIO{in: newStdinReader(c), out: c, err: io.err}
		m.spawn(m.root, prog, cio)
	})
}

func appletHttpd(ctx context.Context, m *Machine, _ *proc, argv []string, io *procIO) int {
	port := 80
	for i := 1; i < len(argv); i++ {
		if argv[i] == "-p" && i+1 < len(argv) {
			port, _ = strconv.Atoi(argv[i+1])
			i++
		}
	}
	return serve(ctx, m, port, false, io, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			l, err := br.ReadString('\n')
			if err != nil || strings.TrimSpace(l) == "" {
				break
			}
		}
		body := "<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD>\n<BODY><H1>404 Not Found</H1>\nThe requested URL was not found\n</BODY></HTML>\n"
		fmt.Fprintf(c, "HTTP/1.1 404 Not Found\r\nContent-type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	})
}

var _ = io.EOF
