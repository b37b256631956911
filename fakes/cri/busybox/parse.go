package busybox

import (
	"fmt"
	"strings"
)

// This file is the shell parser: source text to a small AST, with ash's
// syntax error messages. Like ash, the shell parses and runs one complete
// command (up to an unnested newline) at a time, so `echo a; if` fails before
// printing anything while `echo a<newline>if` prints "a" first.

type partKind int

const (
	pLit   partKind = iota // literal text
	pParam                 // $x, ${x...}
	pCmd                   // $(...) or `...`
	pArith                 // $((...))
)

type wordPart struct {
	kind   partKind
	quoted bool   // inside "..." or '...' or escaped: no field splitting
	text   string // pLit text; pArith expression
	name   string // pParam name
	op     string // pParam operator: "", "#" (length), ":-", "-", ":=", "=", ":+", "+", ":?", "?"
	arg    *word  // pParam operand
	sub    *list  // pCmd body
}

type word struct {
	parts []wordPart
	raw   string
}

// literal returns the word's text if it is one unquoted literal (keywords,
// assignments' names).
func (w *word) literal() (string, bool) {
	if len(w.parts) == 1 && w.parts[0].kind == pLit && !w.parts[0].quoted {
		return w.parts[0].text, true
	}
	return "", false
}

type redir struct {
	fd     int    // target descriptor
	op     string // "<", ">", ">>", ">|", "<>", "<&", ">&", "<<"
	target *word
	doc    *word // here-document body (op "<<")
}

type assign struct {
	name  string
	value *word
}

type command interface{}

type simpleCmd struct {
	assigns []assign
	words   []*word
	redirs  []*redir
	line    int
}

type compound struct {
	body   command // *braceGroup, *subshell, *ifCmd, *loopCmd, *forCmd, *caseCmd
	redirs []*redir
}

type braceGroup struct{ body *list }
type subshell struct{ body *list }

type ifCmd struct {
	conds  []*list
	thens  []*list
	orElse *list
}

type loopCmd struct {
	until bool
	cond  *list
	body  *list
}

type forCmd struct {
	name  string
	words []*word
	hasIn bool
	body  *list
}

type caseItem struct {
	patterns []*word
	body     *list
}

type caseCmd struct {
	subject *word
	items   []caseItem
}

type funcDef struct {
	name string
	body command
}

type pipeline struct {
	negate bool
	cmds   []command
}

type andOr struct {
	pipes []*pipeline
	ops   []string // "&&" or "||" between pipes
}

type listItem struct {
	ao *andOr
	bg bool
}

type list struct{ items []listItem }

// syntaxError is a parse failure; eof marks "ran out of input" so a reader
// of stdin scripts knows to read more lines.
type syntaxError struct {
	msg string
	eof bool
}

func (e *syntaxError) Error() string { return "syntax error: " + e.msg }

type tokKind int

const (
	tWord tokKind = iota
	tOp
	tNewline
	tEOF
)

type token struct {
	kind  tokKind
	op    string
	word  *word
	ioNum int // descriptor before a redirection operator, -1 if none
	line  int
}

var keywords = map[string]bool{"if": true, "then": true, "else": true, "elif": true, "fi": true,
	"do": true, "done": true, "while": true, "until": true, "for": true, "case": true, "esac": true,
	"in": true, "{": true, "}": true, "!": true}

func (t token) keyword() string {
	if t.kind != tWord {
		return ""
	}
	if s, ok := t.word.literal(); ok && keywords[s] {
		return s
	}
	return ""
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tNewline:
		return "newline"
	case tOp:
		return fmt.Sprintf("%q", t.op)
	}
	if k := t.keyword(); k != "" {
		return fmt.Sprintf("%q", k)
	}
	return "word"
}

type parser struct {
	src     string
	pos     int
	line    int
	peeked  *token
	pending []*redir // here-documents whose bodies follow the next newline
	more    bool     // more input may follow (stdin scripts): an unfinished here-document asks for it
}

func newParser(src string, line int) *parser { return &parser{src: src, line: line} }

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func isMeta(c byte) bool {
	switch c {
	case ' ', '\t', '\n', ';', '&', '|', '(', ')', '<', '>':
		return true
	}
	return false
}

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }

func isName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

func (p *parser) peek() (token, error) {
	if p.peeked == nil {
		t, err := p.lex()
		if err != nil {
			return token{}, err
		}
		p.peeked = &t
	}
	return *p.peeked, nil
}

func (p *parser) next() (token, error) {
	t, err := p.peek()
	p.peeked = nil
	return t, err
}

// atEnd reports whether only blanks, comments and newlines remain.
func (p *parser) atEnd() bool {
	if p.peeked != nil {
		return p.peeked.kind == tEOF
	}
	i := p.pos
	for i < len(p.src) {
		switch c := p.src[i]; {
		case isBlank(c) || c == '\n':
			i++
		case c == '#':
			for i < len(p.src) && p.src[i] != '\n' {
				i++
			}
		case c == '\\' && i+1 < len(p.src) && p.src[i+1] == '\n':
			i += 2
		default:
			return false
		}
	}
	return true
}

var ops = []string{"&&", "||", ";;", ">>", "<<-", "<<", "<&", ">&", "<>", ">|", ";", "&", "|", "(", ")", "<", ">"}

func (p *parser) lex() (token, error) {
	for {
		for p.pos < len(p.src) && isBlank(p.src[p.pos]) {
			p.pos++
		}
		if p.pos+1 < len(p.src) && p.src[p.pos] == '\\' && p.src[p.pos+1] == '\n' {
			p.pos += 2
			p.line++
			continue
		}
		break
	}
	if p.pos >= len(p.src) {
		return token{kind: tEOF, ioNum: -1, line: p.line}, nil
	}
	c := p.src[p.pos]
	if c == '#' {
		for p.pos < len(p.src) && p.src[p.pos] != '\n' {
			p.pos++
		}
		return p.lex()
	}
	if c == '\n' {
		p.pos++
		t := token{kind: tNewline, ioNum: -1, line: p.line}
		p.line++
		if err := p.readHeredocs(); err != nil {
			return token{}, err
		}
		return t, nil
	}
	// IO_NUMBER: digits directly followed by < or >.
	if c >= '0' && c <= '9' {
		j := p.pos
		for j < len(p.src) && p.src[j] >= '0' && p.src[j] <= '9' {
			j++
		}
		if j < len(p.src) && (p.src[j] == '<' || p.src[j] == '>') && j-p.pos <= 1 {
			n := int(p.src[p.pos] - '0')
			p.pos = j
			t, err := p.lex()
			if err != nil {
				return t, err
			}
			t.ioNum = n
			return t, nil
		}
	}
	for _, op := range ops {
		if strings.HasPrefix(p.src[p.pos:], op) {
			p.pos += len(op)
			return token{kind: tOp, op: op, ioNum: -1, line: p.line}, nil
		}
	}
	line := p.line
	w, err := p.scanWord(func(c byte) bool { return isMeta(c) }, false)
	if err != nil {
		return token{}, err
	}
	return token{kind: tWord, word: w, ioNum: -1, line: line}, nil
}

// scanWord reads a word up to an unquoted byte for which stop is true. In
// heredoc mode quotes are ordinary characters (a here-document body).
func (p *parser) scanWord(stop func(byte) bool, heredoc bool) (*word, error) {
	start := p.pos
	w := &word{}
	var lit strings.Builder
	litQuoted := false
	flush := func() {
		if lit.Len() > 0 {
			w.parts = append(w.parts, wordPart{kind: pLit, text: lit.String(), quoted: litQuoted})
			lit.Reset()
		}
	}
	addLit := func(s string, quoted bool) {
		if lit.Len() > 0 && litQuoted != quoted {
			flush()
		}
		litQuoted = quoted
		lit.WriteString(s)
	}
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if !heredoc && stop(c) {
			break
		}
		switch {
		case c == '\\':
			if p.pos+1 >= len(p.src) {
				addLit("\\", heredoc)
				p.pos++
				continue
			}
			n := p.src[p.pos+1]
			p.pos += 2
			if n == '\n' {
				p.line++
				continue
			}
			if heredoc && n != '$' && n != '`' && n != '\\' {
				addLit("\\"+string(n), true)
				continue
			}
			addLit(string(n), true)
		case c == '\'' && !heredoc:
			end := strings.IndexByte(p.src[p.pos+1:], '\'')
			if end < 0 {
				return nil, &syntaxError{msg: "unterminated quoted string", eof: true}
			}
			s := p.src[p.pos+1 : p.pos+1+end]
			p.line += strings.Count(s, "\n")
			if s == "" {
				// An empty quoted string still makes a field.
				flush()
				w.parts = append(w.parts, wordPart{kind: pLit, quoted: true})
			} else {
				addLit(s, true)
			}
			p.pos += end + 2
		case c == '"' && !heredoc:
			p.pos++
			flush()
			before := len(w.parts)
			if err := p.scanDQ(w); err != nil {
				return nil, err
			}
			if len(w.parts) == before {
				w.parts = append(w.parts, wordPart{kind: pLit, quoted: true})
			}
		case c == '$' || c == '`':
			flush()
			part, lit, err := p.scanDollar(heredoc)
			if err != nil {
				return nil, err
			}
			if part == nil {
				addLit(lit, heredoc)
				continue
			}
			part.quoted = heredoc
			w.parts = append(w.parts, *part)
		default:
			if c == '\n' {
				p.line++
			}
			addLit(string(c), heredoc)
			p.pos++
		}
	}
	flush()
	w.raw = p.src[start:p.pos]
	return w, nil
}

// scanDQ reads a double-quoted string's contents (after the opening quote).
func (p *parser) scanDQ(w *word) error {
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			w.parts = append(w.parts, wordPart{kind: pLit, text: lit.String(), quoted: true})
			lit.Reset()
		}
	}
	for {
		if p.pos >= len(p.src) {
			return &syntaxError{msg: "unterminated quoted string", eof: true}
		}
		c := p.src[p.pos]
		switch c {
		case '"':
			p.pos++
			flush()
			return nil
		case '\\':
			if p.pos+1 < len(p.src) {
				n := p.src[p.pos+1]
				switch n {
				case '$', '`', '"', '\\':
					lit.WriteByte(n)
					p.pos += 2
					continue
				case '\n':
					p.pos += 2
					p.line++
					continue
				}
			}
			lit.WriteByte('\\')
			p.pos++
		case '$', '`':
			flush()
			part, l, err := p.scanDollar(true)
			if err != nil {
				return err
			}
			if part == nil {
				lit.WriteString(l)
				continue
			}
			part.quoted = true
			w.parts = append(w.parts, *part)
		default:
			if c == '\n' {
				p.line++
			}
			lit.WriteByte(c)
			p.pos++
		}
	}
}

// scanDollar reads an expansion at p.pos ($ or `). It returns nil and the
// literal text when the $ introduces nothing.
func (p *parser) scanDollar(inDQ bool) (*wordPart, string, error) {
	s := p.src
	if s[p.pos] == '`' {
		body, err := p.scanBackquote(inDQ)
		if err != nil {
			return nil, "", err
		}
		sub, err := parseAll(body, p.line)
		if err != nil {
			return nil, "", err
		}
		return &wordPart{kind: pCmd, sub: sub}, "", nil
	}
	i := p.pos + 1
	if i >= len(s) {
		p.pos = i
		return nil, "$", nil
	}
	switch c := s[i]; {
	case c == '(' && i+1 < len(s) && s[i+1] == '(':
		end := matchArith(s, i+2)
		if end < 0 {
			return nil, "", &syntaxError{msg: "missing '))'", eof: true}
		}
		expr := s[i+2 : end]
		p.line += strings.Count(expr, "\n")
		p.pos = end + 2
		return &wordPart{kind: pArith, text: expr}, "", nil
	case c == '(':
		end, err := matchParen(s, i+1)
		if err != nil {
			return nil, "", err
		}
		body := s[i+1 : end]
		sub, err := parseAll(body, p.line)
		if err != nil {
			return nil, "", err
		}
		p.line += strings.Count(body, "\n")
		p.pos = end + 1
		return &wordPart{kind: pCmd, sub: sub}, "", nil
	case c == '{':
		return p.scanBrace(i + 1)
	case isNameStart(c):
		j := i
		for j < len(s) && isNameChar(s[j]) {
			j++
		}
		p.pos = j
		return &wordPart{kind: pParam, name: s[i:j]}, "", nil
	case c >= '0' && c <= '9' || strings.IndexByte("@*#?$!-", c) >= 0:
		p.pos = i + 1
		return &wordPart{kind: pParam, name: string(c)}, "", nil
	}
	p.pos = i
	return nil, "$", nil
}

// scanBrace parses ${...} starting after the brace.
func (p *parser) scanBrace(i int) (*wordPart, string, error) {
	s := p.src
	missing := &syntaxError{msg: "missing '}'", eof: true}
	part := &wordPart{kind: pParam}
	if i < len(s) && s[i] == '#' && i+1 < len(s) && s[i+1] != '}' {
		part.op = "#"
		i++
	}
	j := i
	if j < len(s) && isNameStart(s[j]) {
		for j < len(s) && isNameChar(s[j]) {
			j++
		}
	} else if j < len(s) && (s[j] >= '0' && s[j] <= '9') {
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
	} else if j < len(s) && strings.IndexByte("@*#?$!-", s[j]) >= 0 {
		j++
	}
	if j >= len(s) {
		return nil, "", missing
	}
	part.name = s[i:j]
	if part.name == "" {
		return nil, "", &syntaxError{msg: "bad substitution"}
	}
	if s[j] == '}' {
		p.pos = j + 1
		return part, "", nil
	}
	if part.op == "#" {
		return nil, "", &syntaxError{msg: "bad substitution"}
	}
	for _, op := range []string{":-", ":=", ":+", ":?", "-", "=", "+", "?"} {
		if strings.HasPrefix(s[j:], op) {
			part.op = op
			j += len(op)
			break
		}
	}
	if part.op == "" {
		return nil, "", &syntaxError{msg: "bad substitution"}
	}
	end := matchBrace(s, j)
	if end < 0 {
		return nil, "", missing
	}
	sub := &parser{src: s[:end], pos: j, line: p.line}
	arg, err := sub.scanWord(func(byte) bool { return false }, false)
	if err != nil {
		return nil, "", err
	}
	part.arg = arg
	p.line = sub.line
	p.pos = end + 1
	return part, "", nil
}

// matchBrace finds the } closing a ${ whose operand starts at i.
func matchBrace(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch s[i] {
		case '\\':
			i++
		case '\'':
			k := strings.IndexByte(s[i+1:], '\'')
			if k < 0 {
				return -1
			}
			i += k + 1
		case '"':
			k := skipDQ(s, i+1)
			if k < 0 {
				return -1
			}
			i = k
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return i
			}
			depth--
		}
		i++
	}
	return -1
}

// skipDQ returns the index of the " closing a string opened before i.
func skipDQ(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
		i++
	}
	return -1
}

// matchParen finds the ) closing a $( whose body starts at i, skipping
// quotes and nested parentheses. (A `case` pattern's bare ")" inside $(...)
// is not supported.)
func matchParen(s string, i int) (int, error) {
	depth := 0
	for i < len(s) {
		switch s[i] {
		case '\\':
			i++
		case '\'':
			k := strings.IndexByte(s[i+1:], '\'')
			if k < 0 {
				return -1, &syntaxError{msg: "unterminated quoted string", eof: true}
			}
			i += k + 1
		case '"':
			k := skipDQ(s, i+1)
			if k < 0 {
				return -1, &syntaxError{msg: "unterminated quoted string", eof: true}
			}
			i = k
		case '#':
			if i == 0 || isMeta(s[i-1]) {
				for i < len(s) && s[i] != '\n' {
					i++
				}
				continue
			}
		case '(':
			depth++
		case ')':
			if depth == 0 {
				return i, nil
			}
			depth--
		}
		i++
	}
	return -1, &syntaxError{msg: `unexpected end of file (expecting ")")`, eof: true}
}

// matchArith finds the "))" closing $(( whose expression starts at i.
func matchArith(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch s[i] {
		case '(':
			depth++
		case ')':
			if depth == 0 {
				if i+1 < len(s) && s[i+1] == ')' {
					return i
				}
				return -1
			}
			depth--
		}
		i++
	}
	return -1
}

// scanBackquote reads `...` and returns its body with \` \\ \$ unescaped.
func (p *parser) scanBackquote(inDQ bool) (string, error) {
	var b strings.Builder
	i := p.pos + 1
	for i < len(p.src) {
		c := p.src[i]
		if c == '`' {
			p.pos = i + 1
			return b.String(), nil
		}
		if c == '\\' && i+1 < len(p.src) {
			n := p.src[i+1]
			if n == '`' || n == '\\' || n == '$' || (inDQ && n == '"') {
				b.WriteByte(n)
				i += 2
				continue
			}
		}
		if c == '\n' {
			p.line++
		}
		b.WriteByte(c)
		i++
	}
	return "", &syntaxError{msg: "unterminated quoted string", eof: true}
}

// readHeredocs reads the bodies of here-documents queued on the line that
// just ended.
func (p *parser) readHeredocs() error {
	for len(p.pending) > 0 {
		r := p.pending[0]
		p.pending = p.pending[1:]
		delim, quoted := heredocDelim(r.target)
		strip := r.op == "<<-"
		var body strings.Builder
		found := false
		for p.pos < len(p.src) {
			end := strings.IndexByte(p.src[p.pos:], '\n')
			var line string
			if end < 0 {
				line = p.src[p.pos:]
				p.pos = len(p.src)
			} else {
				line = p.src[p.pos : p.pos+end]
				p.pos += end + 1
			}
			p.line++
			if strip {
				line = strings.TrimLeft(line, "\t")
			}
			if line == delim {
				found = true
				break
			}
			body.WriteString(line)
			body.WriteByte('\n')
		}
		if !found && p.more {
			return &syntaxError{msg: "unexpected end of file", eof: true}
		}
		if quoted {
			r.doc = &word{parts: []wordPart{{kind: pLit, text: body.String(), quoted: true}}}
			continue
		}
		sub := &parser{src: body.String(), line: p.line}
		w, err := sub.scanWord(nil, true)
		if err != nil {
			return err
		}
		r.doc = w
	}
	return nil
}

func heredocDelim(w *word) (string, bool) {
	var b strings.Builder
	quoted := false
	for _, part := range w.parts {
		if part.quoted {
			quoted = true
		}
		b.WriteString(part.text)
	}
	if strings.ContainsAny(w.raw, `'"\`) {
		quoted = true
	}
	return b.String(), quoted
}

// parseAll parses a whole script (command substitution bodies).
func parseAll(src string, line int) (*list, error) {
	p := newParser(src, line)
	all := &list{}
	for {
		l, err := p.parseCommandLine()
		if err != nil {
			return nil, err
		}
		if l == nil {
			return all, nil
		}
		all.items = append(all.items, l.items...)
	}
}

// parseCommandLine parses the next complete command: an and-or list up to an
// unnested newline. It returns nil at end of input.
func (p *parser) parseCommandLine() (*list, error) {
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind == tNewline {
			p.next()
			continue
		}
		if t.kind == tEOF {
			return nil, nil
		}
		break
	}
	l := &list{}
	for {
		ao, err := p.parseAndOr()
		if err != nil {
			return nil, err
		}
		item := listItem{ao: ao}
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind == tOp && (t.op == ";" || t.op == "&") {
			p.next()
			item.bg = t.op == "&"
			l.items = append(l.items, item)
			t, err = p.peek()
			if err != nil {
				return nil, err
			}
			if t.kind == tNewline || t.kind == tEOF {
				if t.kind == tNewline {
					p.next()
				}
				return l, nil
			}
			continue
		}
		l.items = append(l.items, item)
		switch t.kind {
		case tNewline:
			p.next()
			return l, nil
		case tEOF:
			return l, nil
		}
		return nil, unexpected(t, "")
	}
}

func unexpected(t token, expecting string) error {
	msg := "unexpected " + t.describe()
	if expecting != "" {
		msg += fmt.Sprintf(" (expecting %q)", expecting)
	}
	return &syntaxError{msg: msg, eof: t.kind == tEOF}
}

// compoundList parses commands up to one of the stop keywords (or ")" / ";;"
// for subshells and case items), which it does not consume.
func (p *parser) compoundList(expecting string, stops ...string) (*list, error) {
	l := &list{}
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind == tNewline {
			p.next()
			continue
		}
		if t.kind == tEOF || (t.kind == tOp && (t.op == ")" || t.op == ";;")) {
			break
		}
		if k := t.keyword(); k != "" && contains(stops, k) {
			break
		}
		if k := t.keyword(); terminators[k] {
			return nil, unexpected(t, expecting)
		}
		ao, err := p.parseAndOr()
		if err != nil {
			return nil, err
		}
		item := listItem{ao: ao}
		t, err = p.peek()
		if err != nil {
			return nil, err
		}
		switch {
		case t.kind == tOp && (t.op == ";" || t.op == "&"):
			p.next()
			item.bg = t.op == "&"
		case t.kind == tNewline:
			p.next()
		default:
			l.items = append(l.items, item)
			t, err = p.peek()
			if err != nil {
				return nil, err
			}
			if k := t.keyword(); (k != "" && contains(stops, k)) || t.kind == tEOF || (t.kind == tOp && (t.op == ")" || t.op == ";;")) {
				return l, nil
			}
			return nil, unexpected(t, expecting)
		}
		l.items = append(l.items, item)
	}
	if len(l.items) == 0 {
		t, _ := p.peek()
		return nil, unexpected(t, expecting)
	}
	return l, nil
}

// terminators are reserved words that only close a construct.
var terminators = map[string]bool{"then": true, "else": true, "elif": true, "fi": true, "do": true,
	"done": true, "esac": true, "}": true}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) parseAndOr() (*andOr, error) {
	ao := &andOr{}
	for {
		pl, err := p.parsePipeline()
		if err != nil {
			return nil, err
		}
		ao.pipes = append(ao.pipes, pl)
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind == tOp && (t.op == "&&" || t.op == "||") {
			p.next()
			ao.ops = append(ao.ops, t.op)
			if err := p.skipNewlines(); err != nil {
				return nil, err
			}
			continue
		}
		return ao, nil
	}
}

func (p *parser) skipNewlines() error {
	for {
		t, err := p.peek()
		if err != nil {
			return err
		}
		if t.kind != tNewline {
			return nil
		}
		p.next()
	}
}

func (p *parser) parsePipeline() (*pipeline, error) {
	pl := &pipeline{}
	if t, err := p.peek(); err != nil {
		return nil, err
	} else if t.keyword() == "!" {
		p.next()
		pl.negate = true
	}
	for {
		c, err := p.parseCommand()
		if err != nil {
			return nil, err
		}
		pl.cmds = append(pl.cmds, c)
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind == tOp && t.op == "|" {
			p.next()
			if err := p.skipNewlines(); err != nil {
				return nil, err
			}
			continue
		}
		return pl, nil
	}
}

func (p *parser) expectKeyword(k string) error {
	t, err := p.next()
	if err != nil {
		return err
	}
	if t.keyword() != k {
		return unexpected(t, k)
	}
	return nil
}

func (p *parser) parseCommand() (command, error) {
	t, err := p.peek()
	if err != nil {
		return nil, err
	}
	var body command
	switch k := t.keyword(); {
	case k == "{":
		p.next()
		l, err := p.compoundList("}", "}")
		if err != nil {
			return nil, err
		}
		if err := p.expectKeyword("}"); err != nil {
			return nil, err
		}
		body = &braceGroup{body: l}
	case t.kind == tOp && t.op == "(":
		p.next()
		l, err := p.compoundList(")")
		if err != nil {
			return nil, err
		}
		if t, err := p.next(); err != nil {
			return nil, err
		} else if t.kind != tOp || t.op != ")" {
			return nil, unexpected(t, ")")
		}
		body = &subshell{body: l}
	case k == "if":
		body, err = p.parseIf()
	case k == "while" || k == "until":
		p.next()
		cond, err := p.compoundList("do", "do")
		if err != nil {
			return nil, err
		}
		if err := p.expectKeyword("do"); err != nil {
			return nil, err
		}
		b, err := p.compoundList("done", "done")
		if err != nil {
			return nil, err
		}
		if err := p.expectKeyword("done"); err != nil {
			return nil, err
		}
		body = &loopCmd{until: k == "until", cond: cond, body: b}
	case k == "for":
		body, err = p.parseFor()
	case k == "case":
		body, err = p.parseCase()
	case k != "" && k != "!":
		return nil, unexpected(t, "")
	case t.kind != tWord && !(t.kind == tOp && isRedirOp(t.op)):
		return nil, unexpected(t, "")
	default:
		return p.parseSimple()
	}
	if err != nil {
		return nil, err
	}
	c := &compound{body: body}
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind != tOp || !isRedirOp(t.op) {
			return c, nil
		}
		r, err := p.parseRedir()
		if err != nil {
			return nil, err
		}
		c.redirs = append(c.redirs, r)
	}
}

func (p *parser) parseIf() (command, error) {
	p.next()
	c := &ifCmd{}
	for {
		cond, err := p.compoundList("then", "then")
		if err != nil {
			return nil, err
		}
		if err := p.expectKeyword("then"); err != nil {
			return nil, err
		}
		body, err := p.compoundList("fi", "elif", "else", "fi")
		if err != nil {
			return nil, err
		}
		c.conds = append(c.conds, cond)
		c.thens = append(c.thens, body)
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		switch t.keyword() {
		case "elif":
			continue
		case "else":
			e, err := p.compoundList("fi", "fi")
			if err != nil {
				return nil, err
			}
			c.orElse = e
			if err := p.expectKeyword("fi"); err != nil {
				return nil, err
			}
			return c, nil
		case "fi":
			return c, nil
		}
		return nil, unexpected(t, "fi")
	}
}

func (p *parser) parseFor() (command, error) {
	p.next()
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	name, ok := "", false
	if t.kind == tWord {
		name, ok = t.word.literal()
	}
	if !ok || !isName(name) {
		return nil, &syntaxError{msg: "bad for loop variable", eof: t.kind == tEOF}
	}
	c := &forCmd{name: name}
	if err := p.skipNewlines(); err != nil {
		return nil, err
	}
	t, err = p.peek()
	if err != nil {
		return nil, err
	}
	if t.keyword() == "in" {
		p.next()
		c.hasIn = true
		for {
			t, err = p.peek()
			if err != nil {
				return nil, err
			}
			if t.kind != tWord {
				break
			}
			p.next()
			c.words = append(c.words, t.word)
		}
		t, err = p.next()
		if err != nil {
			return nil, err
		}
		if !(t.kind == tNewline || (t.kind == tOp && t.op == ";")) {
			return nil, unexpected(t, "do")
		}
	} else if t.kind == tOp && t.op == ";" {
		p.next()
	}
	if err := p.skipNewlines(); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("do"); err != nil {
		return nil, err
	}
	body, err := p.compoundList("done", "done")
	if err != nil {
		return nil, err
	}
	if err := p.expectKeyword("done"); err != nil {
		return nil, err
	}
	c.body = body
	return c, nil
}

func (p *parser) parseCase() (command, error) {
	p.next()
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind != tWord {
		return nil, unexpected(t, "")
	}
	c := &caseCmd{subject: t.word}
	if err := p.skipNewlines(); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("in"); err != nil {
		return nil, err
	}
	for {
		if err := p.skipNewlines(); err != nil {
			return nil, err
		}
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		if t.keyword() == "esac" {
			return c, nil
		}
		if t.kind == tOp && t.op == "(" {
			t, err = p.next()
			if err != nil {
				return nil, err
			}
		}
		var item caseItem
		for {
			if t.kind != tWord {
				return nil, unexpected(t, ")")
			}
			item.patterns = append(item.patterns, t.word)
			t, err = p.next()
			if err != nil {
				return nil, err
			}
			if t.kind == tOp && t.op == "|" {
				t, err = p.next()
				if err != nil {
					return nil, err
				}
				continue
			}
			if t.kind == tOp && t.op == ")" {
				break
			}
			return nil, unexpected(t, ")")
		}
		if err := p.skipNewlines(); err != nil {
			return nil, err
		}
		t, err = p.peek()
		if err != nil {
			return nil, err
		}
		if !(t.kind == tOp && t.op == ";;") && t.keyword() != "esac" {
			body, err := p.compoundList("esac", "esac")
			if err != nil {
				return nil, err
			}
			item.body = body
		}
		c.items = append(c.items, item)
		t, err = p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind == tOp && t.op == ";;" {
			p.next()
			continue
		}
		if t.keyword() == "esac" {
			p.next()
			return c, nil
		}
		return nil, unexpected(t, "esac")
	}
}

func isRedirOp(op string) bool {
	switch op {
	case "<", ">", ">>", ">|", "<>", "<&", ">&", "<<", "<<-":
		return true
	}
	return false
}

func (p *parser) parseRedir() (*redir, error) {
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	r := &redir{op: t.op, fd: t.ioNum}
	if r.fd < 0 {
		r.fd = 1
		if strings.HasPrefix(t.op, "<") && t.op != "<>" {
			r.fd = 0
		}
		if t.op == "<>" {
			r.fd = 0
		}
	}
	w, err := p.next()
	if err != nil {
		return nil, err
	}
	if w.kind != tWord {
		return nil, unexpected(w, "")
	}
	r.target = w.word
	if r.op == "<<" || r.op == "<<-" {
		p.pending = append(p.pending, r)
	}
	return r, nil
}

func (p *parser) parseSimple() (command, error) {
	c := &simpleCmd{line: -1}
	first := true
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if c.line < 0 {
			c.line = t.line
		}
		switch {
		case t.kind == tOp && isRedirOp(t.op):
			r, err := p.parseRedir()
			if err != nil {
				return nil, err
			}
			c.redirs = append(c.redirs, r)
		case t.kind == tWord:
			if len(c.words) == 0 {
				if name, val, ok := splitAssign(t.word); ok {
					p.next()
					c.assigns = append(c.assigns, assign{name: name, value: val})
					continue
				}
			}
			p.next()
			c.words = append(c.words, t.word)
			if first && len(c.assigns) == 0 && len(c.redirs) == 0 {
				if name, ok := t.word.literal(); ok && isName(name) {
					if nt, err := p.peek(); err == nil && nt.kind == tOp && nt.op == "(" {
						return p.parseFunc(name)
					}
				}
			}
		default:
			if len(c.words) == 0 && len(c.assigns) == 0 && len(c.redirs) == 0 {
				return nil, unexpected(t, "")
			}
			return c, nil
		}
		first = false
	}
}

func (p *parser) parseFunc(name string) (command, error) {
	p.next() // (
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind != tOp || t.op != ")" {
		return nil, unexpected(t, ")")
	}
	if err := p.skipNewlines(); err != nil {
		return nil, err
	}
	body, err := p.parseCommand()
	if err != nil {
		return nil, err
	}
	return &funcDef{name: name, body: body}, nil
}

// splitAssign recognizes NAME=value.
func splitAssign(w *word) (string, *word, bool) {
	if len(w.parts) == 0 || w.parts[0].kind != pLit || w.parts[0].quoted {
		return "", nil, false
	}
	name, rest, ok := strings.Cut(w.parts[0].text, "=")
	if !ok || !isName(name) {
		return "", nil, false
	}
	val := &word{raw: w.raw[len(name)+1:]}
	if rest != "" {
		val.parts = append(val.parts, wordPart{kind: pLit, text: rest})
	}
	val.parts = append(val.parts, w.parts[1:]...)
	return name, val, true
}
