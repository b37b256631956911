package busybox

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// token is a shell word (raw, quotes kept for expansion) or an operator.
type token struct {
	op   string // ";", "&", "&&", "||", "\n", or "" for a word
	word string
}

func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '\n' || c == ';':
			toks = append(toks, token{op: string(c)})
			i++
		case c == '&' || c == '|':
			if i+1 < len(src) && src[i+1] == c {
				toks = append(toks, token{op: string([]byte{c, c})})
				i += 2
			} else if c == '&' {
				toks = append(toks, token{op: "&"})
				i++
			} else {
				return nil, fmt.Errorf("pipelines are not supported")
			}
		default:
			start := i
			for i < len(src) {
				c := src[i]
				if c == ' ' || c == '\t' || c == '\n' || c == ';' || (c == '&' && !(i > start && src[i-1] == '>')) || c == '|' {
					break
				}
				switch c {
				case '\\':
					i += 2
					continue
				case '\'':
					j := strings.IndexByte(src[i+1:], '\'')
					if j < 0 {
						return nil, fmt.Errorf("unterminated quoted string")
					}
					i += j + 2
					continue
				case '"':
					j := i + 1
					for j < len(src) && src[j] != '"' {
						if src[j] == '\\' {
							j++
						}
						j++
					}
					if j >= len(src) {
						return nil, fmt.Errorf("unterminated quoted string")
					}
					i = j + 1
					continue
				}
				i++
			}
			if i > len(src) {
				i = len(src)
			}
			toks = append(toks, token{word: src[start:i]})
		}
	}
	return toks, nil
}

// AST.
type node interface{}

type listNode struct {
	items []andOr
}

type andOr struct {
	parts []node   // commands
	ops   []string // "&&"/"||" between parts
	bg    bool
}

type simpleCmd struct {
	assigns []string
	words   []string
	redirs  []string
}

type forNode struct {
	name  string
	items []string
	body  *listNode
}

type whileNode struct {
	cond, body *listNode
}

type ifNode struct {
	cond, then, els *listNode
}

type groupNode struct{ body *listNode }

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peekWord() string {
	if p.pos < len(p.toks) && p.toks[p.pos].op == "" {
		return p.toks[p.pos].word
	}
	return ""
}

func (p *parser) skipSeps() {
	for p.pos < len(p.toks) && (p.toks[p.pos].op == ";" || p.toks[p.pos].op == "\n") {
		p.pos++
	}
}

func (p *parser) expectWord(w string) error {
	p.skipSeps()
	if p.peekWord() != w {
		return fmt.Errorf("syntax error: expected %q", w)
	}
	p.pos++
	return nil
}

var stopWords = map[string]bool{"do": true, "done": true, "then": true, "else": true, "fi": true, "}": true}

func (p *parser) list(stops ...string) (*listNode, error) {
	l := &listNode{}
	for {
		p.skipSeps()
		if p.pos >= len(p.toks) {
			return l, nil
		}
		if w := p.peekWord(); stopWords[w] {
			for _, s := range stops {
				if s == w {
					return l, nil
				}
			}
			return nil, fmt.Errorf("syntax error: unexpected %q", w)
		}
		ao, err := p.andOr()
		if err != nil {
			return nil, err
		}
		l.items = append(l.items, ao)
	}
}

func (p *parser) andOr() (andOr, error) {
	var ao andOr
	for {
		c, err := p.command()
		if err != nil {
			return ao, err
		}
		ao.parts = append(ao.parts, c)
		if p.pos < len(p.toks) {
			switch op := p.toks[p.pos].op; op {
			case "&&", "||":
				ao.ops = append(ao.ops, op)
				p.pos++
				p.skipSeps()
				continue
			case "&":
				ao.bg = true
				p.pos++
			}
		}
		return ao, nil
	}
}

func (p *parser) command() (node, error) {
	switch p.peekWord() {
	case "for":
		p.pos++
		name := p.peekWord()
		p.pos++
		var items []string
		if p.peekWord() == "in" {
			p.pos++
			for p.pos < len(p.toks) && p.toks[p.pos].op == "" {
				items = append(items, p.toks[p.pos].word)
				p.pos++
			}
		}
		if err := p.expectWord("do"); err != nil {
			return nil, err
		}
		body, err := p.list("done")
		if err != nil {
			return nil, err
		}
		if err := p.expectWord("done"); err != nil {
			return nil, err
		}
		return &forNode{name: name, items: items, body: body}, nil
	case "while":
		p.pos++
		cond, err := p.list("do")
		if err != nil {
			return nil, err
		}
		if err := p.expectWord("do"); err != nil {
			return nil, err
		}
		body, err := p.list("done")
		if err != nil {
			return nil, err
		}
		if err := p.expectWord("done"); err != nil {
			return nil, err
		}
		return &whileNode{cond: cond, body: body}, nil
	case "if":
		p.pos++
		cond, err := p.list("then")
		if err != nil {
			return nil, err
		}
		if err := p.expectWord("then"); err != nil {
			return nil, err
		}
		then, err := p.list("else", "fi")
		if err != nil {
			return nil, err
		}
		n := &ifNode{cond: cond, then: then}
		p.skipSeps()
		if p.peekWord() == "else" {
			p.pos++
			if n.els, err = p.list("fi"); err != nil {
				return nil, err
			}
		}
		if err := p.expectWord("fi"); err != nil {
			return nil, err
		}
		return n, nil
	case "{":
		p.pos++
		body, err := p.list("}")
		if err != nil {
			return nil, err
		}
		if err := p.expectWord("}"); err != nil {
			return nil, err
		}
		return &groupNode{body: body}, nil
	}
	c := &simpleCmd{}
	for p.pos < len(p.toks) && p.toks[p.pos].op == "" {
		w := p.toks[p.pos].word
		p.pos++
		switch {
		case isRedirect(w):
			if w == ">" || w == "<" || w == "2>" || w == "1>" {
				if p.pos < len(p.toks) && p.toks[p.pos].op == "" {
					w += p.toks[p.pos].word
					p.pos++
				}
			}
			c.redirs = append(c.redirs, w)
		case len(c.words) == 0 && isAssign(w):
			c.assigns = append(c.assigns, w)
		default:
			c.words = append(c.words, w)
		}
	}
	if len(c.words) == 0 && len(c.assigns) == 0 && len(c.redirs) == 0 {
		return nil, fmt.Errorf("syntax error: missing command")
	}
	return c, nil
}

func isRedirect(w string) bool {
	return strings.HasPrefix(w, ">") || strings.HasPrefix(w, "<") || strings.HasPrefix(w, "1>") || strings.HasPrefix(w, "2>")
}

func isAssign(w string) bool {
	i := strings.IndexByte(w, '=')
	if i <= 0 {
		return false
	}
	for _, r := range w[:i] {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// shell is one sh process's state.
type shell struct {
	m      *Machine
	p      *proc
	vars   map[string]string
	status int
	exited bool
	jobs   sync.WaitGroup
}

func (m *Machine) runSh(ctx context.Context, p *proc, args []string, io *procIO) int {
	if len(args) < 2 || args[0] != "-c" {
		// An interactive sh reads commands from stdin line by line.
		sh := &shell{m: m, p: p, vars: map[string]string{}}
		for {
			line, err := io.in.next(ctx, true)
			if len(line) > 0 {
				sh.script(ctx, string(line), io)
				if sh.exited {
					return sh.status
				}
			}
			if err != nil {
				return sh.status
			}
		}
	}
	sh := &shell{m: m, p: p, vars: map[string]string{}}
	for i, a := range args[2:] {
		sh.vars[strconv.Itoa(i)] = a
	}
	return sh.script(ctx, args[1], io)
}

func (sh *shell) script(ctx context.Context, src string, io *procIO) int {
	toks, err := lex(src)
	if err == nil {
		var l *listNode
		ps := &parser{toks: toks}
		if l, err = ps.list(); err == nil {
			sh.runList(ctx, l, io)
			return sh.status
		}
	}
	io.write(io.err, []byte("sh: "+err.Error()+"\n")) //nolint:errcheck
	sh.status = 2
	return 2
}

func (sh *shell) stop(ctx context.Context) bool {
	return sh.exited || ctx.Err() != nil || sh.p.signal != 0
}

func (sh *shell) runList(ctx context.Context, l *listNode, io *procIO) {
	for _, ao := range l.items {
		if sh.stop(ctx) {
			return
		}
		if ao.bg {
			ao := ao
			bg := sh.m.root
			sh.jobs.Add(1)
			go func() {
				defer sh.jobs.Done()
				child := &shell{m: sh.m, p: sh.p, vars: copyVars(sh.vars)}
				ao.bg = false
				child.runAndOr(bg, ao, io)
			}()
			sh.status = 0
			continue
		}
		sh.runAndOr(ctx, ao, io)
	}
}

func copyVars(v map[string]string) map[string]string {
	c := make(map[string]string, len(v))
	for k, x := range v {
		c[k] = x
	}
	return c
}

func (sh *shell) runAndOr(ctx context.Context, ao andOr, io *procIO) {
	for i, part := range ao.parts {
		if i > 0 {
			if (ao.ops[i-1] == "&&") != (sh.status == 0) {
				continue
			}
		}
		if sh.stop(ctx) {
			return
		}
		sh.runNode(ctx, part, io)
	}
}

func (sh *shell) runNode(ctx context.Context, n node, io *procIO) {
	switch n := n.(type) {
	case *simpleCmd:
		sh.runSimple(ctx, n, io)
	case *forNode:
		sh.status = 0
		for _, it := range n.items {
			for _, v := range sh.expandFields(it) {
				if sh.stop(ctx) {
					return
				}
				sh.vars[n.name] = v
				sh.runList(ctx, n.body, io)
			}
		}
	case *whileNode:
		for !sh.stop(ctx) {
			sh.runList(ctx, n.cond, io)
			if sh.status != 0 || sh.stop(ctx) {
				sh.status = 0
				return
			}
			sh.runList(ctx, n.body, io)
		}
	case *ifNode:
		sh.runList(ctx, n.cond, io)
		if sh.status == 0 {
			sh.runList(ctx, n.then, io)
		} else if n.els != nil {
			sh.runList(ctx, n.els, io)
		} else {
			sh.status = 0
		}
	case *groupNode:
		sh.runList(ctx, n.body, io)
	}
}

// expand processes quotes and $ expansions of one raw word.
func (sh *shell) expand(w string) string {
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch c {
		case '\\':
			if i+1 < len(w) {
				i++
				b.WriteByte(w[i])
			}
		case '\'':
			j := strings.IndexByte(w[i+1:], '\'')
			b.WriteString(w[i+1 : i+1+j])
			i += j + 1
		case '"':
			j := i + 1
			for ; j < len(w) && w[j] != '"'; j++ {
				switch {
				case w[j] == '\\' && j+1 < len(w) && strings.IndexByte("\"\\$`", w[j+1]) >= 0:
					j++
					b.WriteByte(w[j])
				case w[j] == '$':
					v, n := sh.dollar(w[j:])
					b.WriteString(v)
					j += n - 1
				default:
					b.WriteByte(w[j])
				}
			}
			i = j
		case '$':
			v, n := sh.dollar(w[i:])
			b.WriteString(v)
			i += n - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// expandFields expands and splits unquoted results on whitespace (for lists).
func (sh *shell) expandFields(w string) []string {
	if strings.ContainsAny(w, `"'`) {
		return []string{sh.expand(w)}
	}
	return strings.Fields(sh.expand(w))
}

// dollar expands the $-expression at the start of s, returning value and length.
func (sh *shell) dollar(s string) (string, int) {
	if len(s) < 2 {
		return "$", 1
	}
	switch s[1] {
	case '$':
		return strconv.Itoa(sh.p.pid), 2
	case '?':
		return strconv.Itoa(sh.status), 2
	case '{':
		j := strings.IndexByte(s, '}')
		if j < 0 {
			return s, len(s)
		}
		return sh.vars[s[2:j]], j + 1
	}
	j := 1
	for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
		j++
	}
	if j == 1 {
		return "$", 1
	}
	return sh.vars[s[1:j]], j
}

func (sh *shell) runSimple(ctx context.Context, c *simpleCmd, pio *procIO) {
	for _, a := range c.assigns {
		k, v, _ := strings.Cut(a, "=")
		sh.vars[k] = sh.expand(v)
	}
	if len(c.words) == 0 {
		sh.status = 0
		return
	}
	var argv []string
	for _, w := range c.words {
		if strings.ContainsAny(w, `"'`) {
			argv = append(argv, sh.expand(w))
		} else {
			argv = append(argv, strings.Fields(sh.expand(w))...)
		}
	}
	if len(argv) == 0 {
		sh.status = 0
		return
	}
	io := pio
	for _, r := range c.redirs {
		switch r {
		case ">&2", "1>&2":
			io = io.with(io.err, io.err, io.in)
		case "2>&1":
			io = io.with(io.out, io.out, io.in)
		case ">/dev/null", "1>/dev/null":
			io = io.with(discard{}, io.err, io.in)
		case "2>/dev/null":
			io = io.with(io.out, discard{}, io.in)
		case "</dev/null":
			io = io.with(io.out, io.err, newStdinReader(nil))
		}
	}
	switch argv[0] {
	case "exit":
		sh.status = 0
		if len(argv) > 1 {
			n, _ := strconv.Atoi(argv[1])
			sh.status = n & 0xff
		}
		sh.exited = true
		return
	case "exec":
		if len(argv) > 1 {
			sh.p.cmdline = strings.Join(argv[1:], " ")
			sh.status = sh.m.exec(ctx, sh.p, argv[1:], io)
		}
		sh.exited = true
		return
	case "wait":
		sh.jobs.Wait()
		sh.status = 0
		return
	case "read":
		line, err := io.in.next(ctx, true)
		name := "REPLY"
		if len(argv) > 1 {
			name = argv[len(argv)-1]
		}
		sh.vars[name] = strings.TrimRight(string(line), "\r\n")
		if err != nil && len(line) == 0 {
			sh.status = 1
			return
		}
		sh.status = 0
		return
	}
	if b, ok := builtins[argv[0]]; ok && shellBuiltin[argv[0]] {
		sh.status = b(ctx, sh.m, sh.p, argv, io)
		if io.pipe {
			sh.status = 141
			sh.exited = true
		}
		return
	}
	sh.status = sh.m.spawn(ctx, argv, io)
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
