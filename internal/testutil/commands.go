package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

// GuideFiles are the Markdown files that show users commands, under the
// repository's top directory repo: the README, docs/ and the examples'.
func GuideFiles(t testing.TB, repo string) []string {
	t.Helper()
	files := []string{filepath.Join(repo, "README.md")}
	for _, pattern := range []string{"docs/*.md", "examples/*/*.md"} {
		m, err := filepath.Glob(filepath.Join(repo, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

// CommandLinesValid fails t unless every command line of root's program
// in the shell blocks (```sh, ```bash, ```console) of the Markdown files
// names a command root has and flags that command takes, so a guide
// cannot go on showing a command or flag that was renamed or removed. It
// returns how many command lines it checked. Arguments (paths, hosts)
// are not checked: guides use placeholders for them.
func CommandLinesValid(t testing.TB, root *cobra.Command, files ...string) int {
	t.Helper()
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range shellLines(string(b)) {
			for _, args := range invocations(l.text, root.Name()) {
				checked++
				if err := checkInvocation(root, args); err != nil {
					t.Errorf("%s:%d: %s: %v", f, l.n, strings.TrimSpace(l.text), err)
				}
			}
		}
	}
	return checked
}

// docLine is a logical line of a shell block (continuations joined) and
// the line number it starts on.
type docLine struct {
	n    int
	text string
}

var fence = regexp.MustCompile("^\\s*```+\\s*(\\S*)")

// shellLines returns the logical lines of the Markdown text's shell
// blocks.
func shellLines(md string) []docLine {
	var out []docLine
	in, shell := false, false
	var cur *docLine
	for i, line := range strings.Split(md, "\n") {
		if m := fence.FindStringSubmatch(line); m != nil {
			if !in {
				in, shell = true, m[1] == "sh" || m[1] == "bash" || m[1] == "console" || m[1] == "shell"
			} else {
				in, cur = false, nil
			}
			continue
		}
		if !in || !shell {
			continue
		}
		text := strings.TrimPrefix(strings.TrimSpace(line), "$ ")
		if cur != nil {
			cur.text += " " + strings.TrimSuffix(text, "\\")
		} else {
			out = append(out, docLine{n: i + 1, text: strings.TrimSuffix(text, "\\")})
			cur = &out[len(out)-1]
		}
		if !strings.HasSuffix(text, "\\") {
			cur = nil
		}
	}
	return out
}

// invocations splits a shell line into simple commands (at | ; && ||
// and command substitutions) and returns the arguments of those that
// run prog, up to the first redirection. A comment ends the line.
func invocations(line, prog string) [][]string {
	var out [][]string
	var cmd []string
	flush := func() {
		for i, w := range cmd {
			if w == prog || strings.HasSuffix(w, "/"+prog) {
				args := []string{}
				for _, a := range cmd[i+1:] {
					if strings.HasPrefix(a, "<") || strings.HasPrefix(a, ">") || strings.HasPrefix(a, "2>") || strings.HasPrefix(a, "&>") {
						break
					}
					args = append(args, a)
				}
				out = append(out, args)
				break
			}
			if !strings.Contains(w, "=") && w != "sudo" && w != "exec" && w != "env" {
				break // another program's command (e.g. echo ferry)
			}
		}
		cmd = nil
	}
	for _, w := range shellWords(line) {
		switch w {
		case "|", ";", "&&", "||", "$(", ")", "`":
			flush()
			continue
		}
		cmd = append(cmd, w)
	}
	flush()
	return out
}

// shellWords is a small shell tokenizer: quotes group, a # at a word's
// start begins a comment, and | ; && || $( ) are words of their own.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	end := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				j = len(line) - i - 1
			}
			w.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == ' ' || c == '\t':
			end()
		case c == '#' && !inWord:
			end()
			return words
		case c == '$' && i+1 < len(line) && line[i+1] == '(':
			end()
			words = append(words, "$(")
			i++
		case c == ')' || c == ';' || c == '`':
			end()
			words = append(words, string(c))
		case c == '|' || c == '&':
			end()
			if i+1 < len(line) && line[i+1] == c {
				words = append(words, string(c)+string(c))
				i++
			} else if c == '|' {
				words = append(words, "|")
			} else {
				w.WriteByte(c) // &> and a lone & stay in a word
				inWord = true
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	end()
	return words
}

// checkInvocation says what is wrong with running root's program with
// args: a command it does not have, or a flag that command does not take.
// As cobra does, it finds the command first (flags may come before a
// command's name), then checks every flag against that command.
func checkInvocation(root *cobra.Command, args []string) error {
	cmd := root
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			long := strings.HasPrefix(a, "--")
			if f := lookupFlag(cmd, a); f != nil && f.Value.Type() != "bool" && !strings.Contains(a, "=") && (long || len(a) == 2) {
				i++ // its value, the next word
			}
			continue
		}
		sub := findSub(cmd, a)
		if sub == nil {
			if !cmd.Runnable() {
				return fmt.Errorf("%q has no command %q", cmd.CommandPath(), a)
			}
			break
		}
		cmd = sub
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "help" || name == "h" || cmd == root && name == "version" {
			continue
		}
		if strings.HasPrefix(a, "--") {
			if lookupFlag(cmd, a) == nil {
				return fmt.Errorf("%q has no flag --%s", cmd.CommandPath(), name)
			}
			continue
		}
		for _, r := range name { // -abc: each a shorthand
			f := lookupFlag(cmd, "-"+string(r))
			if f == nil {
				return fmt.Errorf("%q has no flag -%c", cmd.CommandPath(), r)
			}
			if f.Value.Type() != "bool" {
				break // -oFILE: the rest is the value
			}
		}
	}
	return nil
}

// lookupFlag finds the flag arg (--name[=v], or -x: its first shorthand)
// among c's own and inherited flags.
func lookupFlag(c *cobra.Command, arg string) *pflag.Flag {
	sets := []*pflag.FlagSet{c.Flags(), c.PersistentFlags(), c.InheritedFlags()}
	for _, fs := range sets {
		if name, ok := strings.CutPrefix(arg, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			if f := fs.Lookup(name); f != nil {
				return f
			}
		} else if len(arg) >= 2 {
			if f := fs.ShorthandLookup(arg[1:2]); f != nil {
				return f
			}
		}
	}
	return nil
}

// findSub is c's command named (or aliased) name, nil if none.
func findSub(c *cobra.Command, name string) *cobra.Command {
	for _, sub := range c.Commands() {
		if sub.Name() == name || sub.HasAlias(name) {
			return sub
		}
	}
	return nil
}
