package bundle

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Limits of provides and depends (FORMAT.md §6.2).
const (
	MaxProvides      = 64
	MaxDepends       = 64
	MaxDependsLength = 256
)

// Components returns what the bundle provides once installed, component
// name → version: its own name at its version, and every entry of
// Provides (FORMAT.md §6.2).
func (c *Config) Components() map[string]string {
	out := map[string]string{c.Name: c.Version}
	maps.Copy(out, c.Provides)
	return out
}

// ComponentNames returns the names of Components, sorted, the bundle's own
// name first.
func (c *Config) ComponentNames() []string {
	names := slices.Sorted(maps.Keys(c.Provides))
	return append([]string{c.Name}, names...)
}

// Op is a comparison of a dependency clause.
type Op string

// The operators of a clause (FORMAT.md §6.2).
const (
	OpEqual        Op = "=="
	OpGreater      Op = ">"
	OpGreaterEqual Op = ">="
	OpLess         Op = "<"
	OpLessEqual    Op = "<="
)

// Clause is one comparison of a dependency: Op Version.
type Clause struct {
	Op Op
	// Version is a full semantic version (a shortened one is padded with
	// ".0" when parsed).
	Version string
}

// Matches reports whether version v satisfies the clause (SemVer
// precedence: build metadata is ignored).
func (cl Clause) Matches(v string) bool {
	c := CompareVersions(v, cl.Version)
	switch cl.Op {
	case OpEqual:
		return c == 0
	case OpGreater:
		return c > 0
	case OpGreaterEqual:
		return c >= 0
	case OpLess:
		return c < 0
	case OpLessEqual:
		return c <= 0
	}
	return false
}

// Dependency is one parsed entry of a config's depends: a component and
// the clauses its installed version must all satisfy.
type Dependency struct {
	Component string
	Clauses   []Clause
}

// String is the canonical form: "NAME OP VERSION[, OP VERSION]...".
func (d Dependency) String() string {
	var b strings.Builder
	b.WriteString(d.Component)
	for i, cl := range d.Clauses {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(" " + string(cl.Op) + " " + cl.Version)
	}
	return b.String()
}

// Satisfied reports whether the installed version v of the component
// satisfies every clause; an empty v (not installed) satisfies none.
func (d Dependency) Satisfied(v string) bool {
	if v == "" {
		return false
	}
	for _, cl := range d.Clauses {
		if !cl.Matches(v) {
			return false
		}
	}
	return true
}

// ParseDependency parses one entry of depends (FORMAT.md §6.2):
//
//	NAME OP VERSION *( "," OP VERSION )
//
// with OP one of == > >= < <=, spaces allowed around OP and ",", and
// VERSION a semantic version without build metadata, or MAJOR or
// MAJOR.MINOR (padded with .0; not with ==).
func ParseDependency(s string) (Dependency, error) {
	if len(s) > MaxDependsLength {
		return Dependency{}, fmt.Errorf("dependency of %d characters: at most %d", len(s), MaxDependsLength)
	}
	fail := func(why string) (Dependency, error) {
		return Dependency{}, fmt.Errorf("dependency %q: %s (want e.g. \"gw-os >= 1.4\" or \"gw-os >= 1.4, < 2\")", s, why)
	}
	if strings.TrimSpace(s) != s {
		return fail("leading or trailing space")
	}
	rest := s
	end := strings.IndexAny(rest, " <>=!,~^")
	if end < 0 {
		return fail("no comparison")
	}
	d := Dependency{Component: rest[:end]}
	if err := ValidateName(d.Component); err != nil {
		return fail("component " + err.Error())
	}
	rest = rest[end:]
	for {
		rest = strings.TrimLeft(rest, " ")
		var op Op
		for _, o := range []Op{OpGreaterEqual, OpLessEqual, OpEqual, OpGreater, OpLess} {
			if strings.HasPrefix(rest, string(o)) {
				op = o
				break
			}
		}
		if op == "" {
			return fail("want one of == > >= < <= before each version")
		}
		rest = strings.TrimLeft(rest[len(op):], " ")
		end := strings.IndexAny(rest, " ,")
		if end < 0 {
			end = len(rest)
		}
		v, err := constraintVersion(rest[:end], op)
		if err != nil {
			return fail(err.Error())
		}
		d.Clauses = append(d.Clauses, Clause{Op: op, Version: v})
		rest = strings.TrimLeft(rest[end:], " ")
		if rest == "" {
			return d, nil
		}
		if rest[0] != ',' {
			return fail("want \",\" between comparisons")
		}
		rest = rest[1:]
	}
}

// constraintVersion checks a clause's version and pads a shortened one.
func constraintVersion(v string, op Op) (string, error) {
	if v == "" {
		return "", errors.New("a version is missing")
	}
	if strings.Contains(v, "+") {
		return "", fmt.Errorf("version %q: build metadata does not take part in comparisons; leave it out", v)
	}
	core, _, hasPre := strings.Cut(v, "-")
	switch strings.Count(core, ".") {
	case 0, 1:
		if hasPre {
			return "", fmt.Errorf("version %q: a pre-release needs MAJOR.MINOR.PATCH", v)
		}
		if op == OpEqual {
			return "", fmt.Errorf("version %q: == needs MAJOR.MINOR.PATCH (for a range write >= and <)", v)
		}
		for strings.Count(core, ".") < 2 {
			core += ".0"
		}
		v = core
	}
	if err := ValidateVersion(v); err != nil {
		return "", err
	}
	return v, nil
}

// Dependencies parses the config's depends.
func (c *Config) Dependencies() ([]Dependency, error) {
	var out []Dependency
	for i, s := range c.Depends {
		d, err := ParseDependency(s)
		if err != nil {
			return nil, fmt.Errorf("depends %d: %w", i, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// ValidateComponents checks provides and depends (FORMAT.md §6.2); it
// needs Name, Version and FormatVersion set.
func (c *Config) ValidateComponents() error {
	if len(c.Provides) > MaxProvides {
		return fmt.Errorf("provides: %d components: at most %d", len(c.Provides), MaxProvides)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Provides)) {
		if err := ValidateName(name); err != nil {
			return fmt.Errorf("provides: component %w", err)
		}
		if name == c.Name {
			return fmt.Errorf("provides: %q is the bundle's own name, which is always provided at the bundle's version; leave it out", name)
		}
		if err := ValidateVersion(c.Provides[name]); err != nil {
			return fmt.Errorf("provides: %s: %w", name, err)
		}
	}
	if len(c.Depends) > MaxDepends {
		return fmt.Errorf("depends: %d entries: at most %d", len(c.Depends), MaxDepends)
	}
	if len(c.Depends) > 0 && c.FormatVersion < 2 {
		return errors.New("depends needs formatVersion 2: a version-1 reader would ignore it")
	}
	deps, err := c.Dependencies()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, d := range deps {
		if seen[d.Component] {
			return fmt.Errorf("depends: %s listed twice: put all its comparisons in one entry, separated by \",\"", d.Component)
		}
		seen[d.Component] = true
	}
	return nil
}
