package bootenv

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Store is a bootloader environment: a flat set of string variables that is
// loaded and saved as a whole.
type Store interface {
	// Load returns all variables. It fails with an error wrapping
	// ErrNoValidEnv when the store holds no valid environment.
	Load() (map[string]string, error)
	// Save replaces all variables and returns once they are durable. A
	// power cut during Save leaves either the old or the new variables
	// (except in a single-copy U-Boot environment, which has no spare).
	Save(vars map[string]string) error
}

var (
	// ErrNoValidEnv means the stored environment is missing or corrupt (for
	// a redundant U-Boot environment: both copies). The bootloader will not
	// read it either; it falls back to its built-in defaults.
	ErrNoValidEnv = errors.New("no valid environment")
	// ErrInvalidVar means a variable name or value cannot be stored in the
	// backend's format (for example a name containing '=').
	ErrInvalidVar = errors.New("invalid variable")
	// ErrTooLarge means the variables do not fit in the environment's fixed
	// size.
	ErrTooLarge = errors.New("environment too large")
)

// varRules is what a backend's format cannot represent.
type varRules struct {
	// nameNewline and valueNewline forbid '\n' in names or values, for
	// line-based formats.
	nameNewline, valueNewline bool
	// nameHash forbids names starting with '#', which line-based formats
	// read as comments.
	nameHash bool
}

// check validates every variable, so that Save fails before writing
// anything rather than storing something the bootloader reads differently.
func (r varRules) check(vars map[string]string) error {
	for _, name := range sortedNames(vars) {
		value := vars[name]
		var why string
		switch {
		case name == "":
			why = "empty name"
		case strings.IndexByte(name, '=') >= 0:
			why = "name contains '='"
		case strings.IndexByte(name, 0) >= 0:
			why = "name contains NUL"
		case strings.IndexByte(value, 0) >= 0:
			why = "value contains NUL"
		case r.nameNewline && strings.IndexByte(name, '\n') >= 0:
			why = "name contains a newline"
		case r.valueNewline && strings.IndexByte(value, '\n') >= 0:
			why = "value contains a newline"
		case r.nameHash && name[0] == '#':
			why = "name starts with '#' and would read as a comment"
		default:
			continue
		}
		return fmt.Errorf("%w %q: %s", ErrInvalidVar, name, why)
	}
	return nil
}

// sortedNames returns the names in byte order, which is also strcmp order:
// libubootenv keeps its variables that way, and a stable order makes
// repeated saves of the same variables byte-identical.
func sortedNames(vars map[string]string) []string {
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
