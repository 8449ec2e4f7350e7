package outpath_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-update/ferry/internal/outpath"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, name := range []string{"in.ferry", "other.ferry", "tree/a.txt"} {
		if err := os.MkdirAll(filepath.Dir(p(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p(name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("in.ferry", p("sym.ferry")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(p("in.ferry"), p("hard.ferry")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("tree", p("treelink")); err != nil {
		t.Fatal(err)
	}
	const (
		ok = iota
		exists
		input
		inputDir
	)
	for _, tc := range []struct {
		name   string
		out    string
		force  bool
		inputs []string
		want   int
	}{
		{"new file", p("new.img"), false, []string{p("in.ferry")}, ok},
		{"existing file", p("other.ferry"), false, []string{p("in.ferry")}, exists},
		{"existing file, --force", p("other.ferry"), true, []string{p("in.ferry")}, ok},
		{"the input itself", p("in.ferry"), false, []string{p("in.ferry")}, input},
		{"the input itself, --force", p("in.ferry"), true, []string{p("in.ferry")}, input},
		{"the input by another spelling", filepath.Join(dir, "tree", "..", "in.ferry"), true, []string{p("in.ferry")}, input},
		{"a symbolic link to the input", p("sym.ferry"), true, []string{p("other.ferry"), p("in.ferry")}, input},
		{"a hard link to the input", p("hard.ferry"), true, []string{p("in.ferry")}, input},
		{"the input named through a link", p("in.ferry"), true, []string{p("sym.ferry")}, input},
		{"inside an input directory", p("tree/new.ferry"), true, []string{p("tree")}, inputDir},
		{"inside an input directory through a link", p("treelink/new.ferry"), false, []string{p("tree")}, inputDir},
		{"beside an input directory", p("tree.ferry"), false, []string{p("tree")}, ok},
		{"inputs that are no files", p("new.img"), false, []string{"oci://example.com/repo:1", p("missing")}, ok},
	} {
		err := outpath.Check(tc.out, tc.force, tc.inputs...)
		var ee *outpath.ExistsError
		var ie *outpath.InputError
		got := -1
		switch {
		case err == nil:
			got = ok
		case errors.As(err, &ee):
			got = exists
		case errors.As(err, &ie) && ie.Dir:
			got = inputDir
		case errors.As(err, &ie):
			got = input
		}
		if got != tc.want {
			t.Errorf("%s: Check(%s, %v, %v) = %v", tc.name, tc.out, tc.force, tc.inputs, err)
		}
	}
}
