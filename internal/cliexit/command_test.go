package cliexit

import (
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// tool is a small command tree: tool thing {make,show}, tool plain.
func tool(out *strings.Builder) *cobra.Command {
	root := &cobra.Command{Use: "tool"}
	thing := &cobra.Command{Use: "thing", Short: "things"}
	var asJSON bool
	show := &cobra.Command{Use: "show", Args: ExactArgs(1, "a NAME"), RunE: func(c *cobra.Command, a []string) error {
		c.Println("showing", a[0], asJSON)
		return nil
	}}
	show.Flags().BoolVar(&asJSON, "json", false, "")
	show.Flags().Int("threshold", 1, "")
	root.AddCommand(
		Group(thing, show, &cobra.Command{Use: "make", RunE: func(*cobra.Command, []string) error { return nil }}),
		&cobra.Command{Use: "plain", RunE: func(*cobra.Command, []string) error { return nil }},
	)
	root.PersistentFlags().String("config", "", "")
	root.SetOut(out)
	root.SetErr(out)
	return root
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		code         int
		stdout, errs string
	}{
		{[]string{"thing", "show", "x", "--json"}, OK, "showing x true\n", ""},
		{[]string{"thing"}, OK, "things\n\nUsage:\n  tool thing [command]\n\n", ""},
		{nil, OK, "Usage:\n  tool [command]\n", ""},
		{[]string{"thign"}, Usage, "", "tool: error: unknown command \"thign\" for \"tool\"\ntool: hint: did you mean 'tool thing'?\n"},
		{[]string{"frob"}, Usage, "", "tool: error: unknown command \"frob\" for \"tool\"\ntool: hint: run 'tool help' or add --help to the command\n"},
		{[]string{"--config", "c", "thing", "shwo", "x"}, Usage, "", "tool: error: unknown command \"shwo\" for \"tool thing\"\ntool: hint: did you mean 'tool thing show'?\n"},
		{[]string{"thing", "show", "x", "--jsn"}, Usage, "", "tool: error: unknown flag: --jsn\ntool: hint: did you mean --json?\n"},
		{[]string{"thing", "show", "x", "-json"}, Usage, "", "tool: error: unknown shorthand flag: 'j' in -json\ntool: hint: did you mean --json?\n"},
		{[]string{"thing", "show", "x", "--confg", "c"}, Usage, "", "tool: error: unknown flag: --confg\ntool: hint: did you mean --config?\n"},
		{[]string{"thing", "show", "x", "--threshold", "two"}, Usage, "", "tool: error: invalid argument \"two\" for \"--threshold\" flag: "},
		{[]string{"thing", "show"}, Usage, "", "tool: error: want a NAME, got 0 argument(s)\n"},
		{[]string{"--version"}, OK, "tool (devel) (bundle format ", ""},
		{[]string{"thing", "--version"}, Usage, "", "tool: error: unknown flag: --version\n"},
	} {
		var out, errs strings.Builder
		code := Program{Name: "tool"}.Run(context.Background(), tool(&out), tc.args, &errs)
		if code != tc.code || !strings.HasPrefix(out.String(), tc.stdout) || !strings.HasPrefix(errs.String(), tc.errs) {
			t.Errorf("tool %q: exit %d, stdout %q, stderr %q; want %d, %q..., %q...", tc.args, code, out.String(), errs.String(), tc.code, tc.stdout, tc.errs)
		}
	}
}

// TestVersion: "tool version" and "tool --version" say the same.
func TestVersion(t *testing.T) {
	p := Program{Name: "tool"}
	var byCmd, byFlag, errs strings.Builder
	root := tool(&byCmd)
	root.AddCommand(p.VersionCommand())
	if code := p.Run(context.Background(), root, []string{"version"}, &errs); code != OK {
		t.Fatalf("tool version: exit %d, %s", code, errs.String())
	}
	if code := p.Run(context.Background(), tool(&byFlag), []string{"--version"}, &errs); code != OK {
		t.Fatalf("tool --version: exit %d, %s", code, errs.String())
	}
	if byCmd.String() != byFlag.String() || byCmd.String() != BuildVersion("tool").String()+"\n" {
		t.Errorf("tool version printed %q, tool --version %q", byCmd.String(), byFlag.String())
	}
}
