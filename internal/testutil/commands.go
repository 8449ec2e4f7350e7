package testutil

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// commandRow is a row of a README command table: | `ferry mirror ingest` | ... |
var commandRow = regexp.MustCompile("^\\| `([a-z][a-z-]*(?: [a-z][a-z-]*)*)` \\|")

// CommandsDocumented fails t unless the section "## Commands" of the
// Markdown file readme has a table row for every command of root (its
// first cell the command, as `ferry mirror ingest`), and a row for no
// command root lacks. Groups (commands that only hold commands), hidden
// commands, help and completion are left out.
func CommandsDocumented(t testing.TB, root *cobra.Command, readme string) {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Commands\n")
	if !ok {
		t.Fatalf("%s has no \"## Commands\" section", readme)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	documented := map[string]bool{}
	for line := range strings.Lines(section) {
		if m := commandRow.FindStringSubmatch(line); m != nil && (m[1] == root.Name() || strings.HasPrefix(m[1], root.Name()+" ")) {
			documented[m[1]] = true
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			path := sub.CommandPath()
			if !sub.Runnable() { // a group: its commands are the rows
				walk(sub)
				continue
			}
			if !documented[path] {
				t.Errorf("%s: the Commands table has no row for `%s` (%s)", readme, path, sub.Short)
			}
			delete(documented, path)
			walk(sub)
		}
	}
	walk(root)
	for path := range documented {
		t.Errorf("%s: the Commands table lists `%s`, which %s does not have", readme, path, root.Name())
	}
}
