package devices

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/mod/semver"
)

// Limits of a filter: it comes from operators, and through the console's
// API from anyone holding a token, so it is bounded before it is parsed.
const (
	MaxFilterLen   = 4096
	maxFilterDepth = 32
	maxFilterConds = 256
)

// FilterError says where and why a filter does not parse. Pos is the
// 0-based byte offset in the filter.
type FilterError struct {
	Pos int    `json:"pos"`
	Msg string `json:"msg"`
}

func (e *FilterError) Error() string { return fmt.Sprintf("filter: at %d: %s", e.Pos, e.Msg) }

// Filter selects devices by their inventory and labels: a dynamic
// group's rule, or a deployment's target. ParseFilter makes one; the
// syntax is in docs/fleet.md ("Groups and filters"):
//
//	expr   = term { "or" term }
//	term   = factor { "and" factor }
//	factor = "not" factor | "(" expr ")" | attr op value
//	attr   = id | name | type | status | bundle | version | site | line
//	         | label.KEY | component.NAME
//	op     = "=" | "!=" | "~" (glob: * ?) | "<" | "<=" | ">" | ">=" (versions)
//	value  = a bare word of letters, digits and ._:+*?/@- , or "quoted"
//
// Keywords are case-insensitive. An attribute a device lacks (a
// component it does not have, a label not set) is the empty string:
// "=" and "~" do not match it, "!=" does, and ordered comparisons are
// false (they compare semantic versions, and only valid ones).
type Filter struct {
	root node
}

// ParseFilter parses a filter (see Filter). The empty filter is an
// error: a filter that selects everything must say so ("id ~ *").
func ParseFilter(s string) (*Filter, error) {
	if len(s) > MaxFilterLen {
		return nil, &FilterError{MaxFilterLen, fmt.Sprintf("a filter of %d bytes: at most %d", len(s), MaxFilterLen)}
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, end: len(s)}
	if len(toks) == 0 {
		return nil, &FilterError{0, "empty filter (to select every device, say 'id ~ *')"}
	}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		t := p.toks[p.i]
		return nil, &FilterError{t.pos, fmt.Sprintf("unexpected %s: want 'and', 'or' or the end", t)}
	}
	return &Filter{root: n}, nil
}

// String is the filter in its canonical form: it parses to the same filter.
func (f *Filter) String() string { return f.root.String() }

// Match reports whether the device's record matches the filter.
func (f *Filter) Match(r *Record) bool { return f.root.match(r) }

type tokKind int

const (
	tWord tokKind = iota
	tString
	tOp
	tLParen
	tRParen
)

type token struct {
	kind tokKind
	text string
	pos  int
}

func (t token) String() string {
	switch t.kind {
	case tString:
		return fmt.Sprintf("string %q", t.text)
	case tLParen, tRParen, tOp:
		return fmt.Sprintf("'%s'", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:+*?/@-", c) >= 0
}

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")", i})
			i++
		case c == '=' || c == '~':
			toks = append(toks, token{tOp, string(c), i})
			i++
		case c == '!' || c == '<' || c == '>':
			if i+1 < len(s) && s[i+1] == '=' {
				toks = append(toks, token{tOp, s[i : i+2], i})
				i += 2
				continue
			}
			if c == '!' {
				return nil, &FilterError{i, "'!' alone: write '!=' or 'not'"}
			}
			toks = append(toks, token{tOp, string(c), i})
			i++
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					if j+1 >= len(s) || (s[j+1] != '"' && s[j+1] != '\\') {
						return nil, &FilterError{j, `in a quoted value, '\' escapes only '"' and '\'`}
					}
					j++
				}
				if s[j] < 0x20 || s[j] == 0x7f {
					return nil, &FilterError{j, "a control character in a quoted value"}
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, &FilterError{i, "a quoted value without its closing '\"'"}
			}
			toks = append(toks, token{tString, b.String(), i})
			i = j + 1
		case wordByte(c):
			j := i
			for j < len(s) && wordByte(s[j]) {
				j++
			}
			toks = append(toks, token{tWord, s[i:j], i})
			i = j
		default:
			return nil, &FilterError{i, fmt.Sprintf("unexpected character %q", c)}
		}
	}
	return toks, nil
}

type parser struct {
	toks  []token
	i     int
	end   int
	conds int
}

func (p *parser) peekKeyword(kw string) bool {
	return p.i < len(p.toks) && p.toks[p.i].kind == tWord && strings.EqualFold(p.toks[p.i].text, kw)
}

func (p *parser) pos() int {
	if p.i < len(p.toks) {
		return p.toks[p.i].pos
	}
	return p.end
}

func (p *parser) expr(depth int) (node, error) {
	return p.binary(depth, "or", func() (node, error) {
		return p.binary(depth, "and", func() (node, error) { return p.factor(depth) })
	})
}

// binary parses operand { kw operand }.
func (p *parser) binary(depth int, kw string, operand func() (node, error)) (node, error) {
	n, err := operand()
	if err != nil {
		return nil, err
	}
	list := []node{n}
	for p.peekKeyword(kw) {
		p.i++
		n, err := operand()
		if err != nil {
			return nil, err
		}
		list = append(list, n)
	}
	if len(list) == 1 {
		return list[0], nil
	}
	return &boolNode{and: kw == "and", list: list}, nil
}

func (p *parser) factor(depth int) (node, error) {
	if depth > maxFilterDepth {
		return nil, &FilterError{p.pos(), fmt.Sprintf("nested more than %d deep", maxFilterDepth)}
	}
	if p.i >= len(p.toks) {
		return nil, &FilterError{p.end, "the filter ends early: want a condition such as 'type = board-a'"}
	}
	t := p.toks[p.i]
	switch {
	case p.peekKeyword("not"):
		p.i++
		n, err := p.factor(depth + 1)
		if err != nil {
			return nil, err
		}
		return &notNode{n}, nil
	case t.kind == tLParen:
		p.i++
		n, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.i >= len(p.toks) || p.toks[p.i].kind != tRParen {
			return nil, &FilterError{p.pos(), fmt.Sprintf("want ')' to close the '(' at %d", t.pos)}
		}
		p.i++
		return n, nil
	}
	return p.cond()
}

// attributes of a device a filter may name, besides label.KEY and
// component.NAME.
var attributes = []string{"id", "name", "type", "status", "bundle", "version", "site", "line"}

func (p *parser) cond() (node, error) {
	if p.conds++; p.conds > maxFilterConds {
		return nil, &FilterError{p.pos(), fmt.Sprintf("more than %d conditions", maxFilterConds)}
	}
	t := p.toks[p.i]
	if t.kind != tWord {
		return nil, &FilterError{t.pos, fmt.Sprintf("unexpected %s: want an attribute (%s, label.KEY, component.NAME)", t, strings.Join(attributes, ", "))}
	}
	attr := strings.ToLower(t.text)
	known := false
	for _, a := range attributes {
		known = known || a == attr
	}
	if k, ok := strings.CutPrefix(t.text, "label."); ok && k != "" {
		attr, known = "label."+k, true
	} else if c, ok := strings.CutPrefix(t.text, "component."); ok && c != "" {
		attr, known = "component."+c, true
	}
	if !known {
		return nil, &FilterError{t.pos, fmt.Sprintf("unknown attribute %q: want %s, label.KEY or component.NAME", t.text, strings.Join(attributes, ", "))}
	}
	p.i++
	if p.i >= len(p.toks) || p.toks[p.i].kind != tOp {
		return nil, &FilterError{p.pos(), fmt.Sprintf("want an operator (= != ~ < <= > >=) after %q", t.text)}
	}
	op := p.toks[p.i]
	p.i++
	if p.i >= len(p.toks) || (p.toks[p.i].kind != tWord && p.toks[p.i].kind != tString) {
		return nil, &FilterError{p.pos(), fmt.Sprintf("want a value after '%s'", op.text)}
	}
	v := p.toks[p.i]
	p.i++
	c := &condNode{attr: attr, op: op.text, value: v.text}
	switch op.text {
	case "~":
		if _, err := path.Match(v.text, ""); err != nil {
			return nil, &FilterError{v.pos, fmt.Sprintf("pattern %q: %v", v.text, err)}
		}
	case "<", "<=", ">", ">=":
		if !semver.IsValid("v" + v.text) {
			return nil, &FilterError{v.pos, fmt.Sprintf("'%s' compares versions: %q is not a semantic version (1.2.3)", op.text, v.text)}
		}
	}
	return c, nil
}

type node interface {
	match(r *Record) bool
	String() string
}

type boolNode struct {
	and  bool
	list []node
}

func (n *boolNode) match(r *Record) bool {
	for _, c := range n.list {
		if c.match(r) != n.and {
			return !n.and
		}
	}
	return n.and
}

func (n *boolNode) String() string {
	kw := " or "
	if n.and {
		kw = " and "
	}
	parts := make([]string, len(n.list))
	for i, c := range n.list {
		parts[i] = c.String()
		if _, ok := c.(*boolNode); ok {
			parts[i] = "(" + parts[i] + ")" // keeps the tree's shape
		}
	}
	return strings.Join(parts, kw)
}

type notNode struct{ n node }

func (n *notNode) match(r *Record) bool { return !n.n.match(r) }

func (n *notNode) String() string {
	if _, ok := n.n.(*boolNode); ok {
		return "not (" + n.n.String() + ")"
	}
	return "not " + n.n.String()
}

type condNode struct {
	attr, op, value string
}

func (c *condNode) String() string { return c.attr + " " + c.op + " " + quoteValue(c.value) }

// quoteValue writes a value bare when it lexes as one word, else quoted.
func quoteValue(v string) string {
	bare := v != ""
	for i := 0; i < len(v); i++ {
		bare = bare && wordByte(v[i])
	}
	if bare && !isKeyword(v) {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

func isKeyword(s string) bool {
	return strings.EqualFold(s, "and") || strings.EqualFold(s, "or") || strings.EqualFold(s, "not")
}

func (c *condNode) match(r *Record) bool {
	v, ok := attrValue(r, c.attr)
	switch c.op {
	case "=":
		return ok && v == c.value
	case "!=":
		return !ok || v != c.value
	case "~":
		m, _ := path.Match(c.value, v)
		return ok && m
	}
	if !ok || !semver.IsValid("v"+v) {
		return false
	}
	cmp := semver.Compare("v"+v, "v"+c.value)
	switch c.op {
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	}
	return cmp >= 0
}

// attrValue is a device's attribute; ok is false when it has none.
func attrValue(r *Record, attr string) (string, bool) {
	present := func(s string) (string, bool) { return s, s != "" }
	inv := r.Inventory
	switch attr {
	case "id":
		return r.ID, true
	case "name":
		return present(r.Name)
	case "type":
		return present(r.DeviceType)
	case "status":
		return string(r.Status), true
	case "bundle":
		if inv == nil {
			return "", false
		}
		return present(inv.Bundle)
	case "version":
		if inv == nil {
			return "", false
		}
		return present(inv.Version)
	case "site", "line":
		return present(r.Labels[attr])
	}
	if k, ok := strings.CutPrefix(attr, "label."); ok {
		v, ok := r.Labels[k]
		return v, ok
	}
	if name, ok := strings.CutPrefix(attr, "component."); ok && inv != nil {
		for _, c := range inv.Components {
			if c.Name == name {
				return c.Version, true
			}
		}
	}
	return "", false
}
