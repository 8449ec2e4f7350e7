package outpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ExistsError is returned for an output that exists when replacing it was
// not asked for.
type ExistsError struct {
	Path string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("%s already exists", e.Path)
}

// InputError is returned for an output that is one of the inputs, or lies
// inside an input directory; --force does not change that.
type InputError struct {
	Path  string // the output
	Input string // the input it would overwrite
	Dir   bool   // Input is a directory Path lies inside
}

func (e *InputError) Error() string {
	if e.Dir {
		return fmt.Sprintf("%s would be written inside the input directory %s", e.Path, e.Input)
	}
	if e.Path == e.Input {
		return fmt.Sprintf("%s is an input of this command: it would be overwritten", e.Path)
	}
	return fmt.Sprintf("%s is the same file as the input %s: it would be overwritten", e.Path, e.Input)
}

// Check decides whether out may be written by a command that reads
// inputs: never when it names an input or lies inside an input directory,
// and when it exists, only with force. Inputs that do not exist (or are
// not files, such as oci:// references) are not compared. Errors other
// than *ExistsError and *InputError are from stat.
func Check(out string, force bool, inputs ...string) error {
	ofi, err := os.Stat(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ofi = nil
	case err != nil:
		return err
	}
	absOut := absEval(out)
	for _, in := range inputs {
		ifi, err := os.Stat(in)
		if err != nil {
			continue
		}
		if ofi != nil && os.SameFile(ofi, ifi) {
			return &InputError{Path: out, Input: in}
		}
		if ifi.IsDir() && within(absOut, absEval(in)) {
			return &InputError{Path: out, Input: in, Dir: true}
		}
	}
	if ofi != nil && !force {
		return &ExistsError{Path: out}
	}
	return nil
}

// absEval is path absolute, with the symbolic links of its directory
// resolved (the file itself need not exist).
func absEval(path string) string {
	p, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	dir, base := filepath.Split(p)
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Join(dir, base)
}

// within says whether path lies inside dir (both absolute, clean).
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
