package bootenv

import (
	"fmt"
	"strings"

	"github.com/ferry-update/ferry/internal/atomicfile"
)

// FileEnv stores variables as "name=value" lines in a plain file, for
// tests and for bootloaders whose scripts read such a file. Lines that are
// empty or start with '#' are ignored; values are taken verbatim, so they
// cannot contain newlines. Save replaces the file atomically.
type FileEnv struct {
	Path string
}

// Load returns the variables in the file. A missing file, or a line that
// is not a comment and has no '=', fails with ErrNoValidEnv.
func (e *FileEnv) Load() (map[string]string, error) {
	b, err := readEnvFile(e.Path)
	if err != nil {
		return nil, fmt.Errorf("read env file: %w", err)
	}
	vars, err := decodeFileEnv(string(b))
	if err != nil {
		return nil, fmt.Errorf("read env file %s: %w", e.Path, err)
	}
	return vars, nil
}

// Save replaces the file with vars, one line each in byte order of names.
func (e *FileEnv) Save(vars map[string]string) error {
	b, err := encodeFileEnv(vars)
	if err == nil {
		err = atomicfile.WriteFile(e.Path, b, 0o644)
	}
	if err != nil {
		return fmt.Errorf("write env file %s: %w", e.Path, err)
	}
	return nil
}

func encodeFileEnv(vars map[string]string) ([]byte, error) {
	if err := (varRules{nameNewline: true, valueNewline: true, nameHash: true}).check(vars); err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, name := range sortedNames(vars) {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(vars[name])
		b.WriteByte('\n')
	}
	return []byte(b.String()), nil
}

// decodeFileEnv parses the lines; a later duplicate wins.
func decodeFileEnv(s string) (map[string]string, error) {
	vars := make(map[string]string)
	for i, line := range strings.Split(s, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok || name == "" || strings.IndexByte(line, 0) >= 0 {
			return nil, fmt.Errorf("%w: line %d is not name=value", ErrNoValidEnv, i+1)
		}
		vars[name] = value
	}
	return vars, nil
}
