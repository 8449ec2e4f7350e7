package testutil

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/spf13/cobra"
)

func TestInvocations(t *testing.T) {
	for _, tc := range []struct {
		line string
		want [][]string
	}{
		{"ferry fleet status mirror/ 1    # phases", [][]string{{"fleet", "status", "mirror/", "1"}}},
		{"ferry fleet tokens create m --user ana > ana.token", [][]string{{"fleet", "tokens", "create", "m", "--user", "ana"}}},
		{"FERRY_TOKEN=$(cat ana.token) ferry fleet pause URL 1 --reason 'line stop'", [][]string{{"fleet", "pause", "URL", "1", "--reason", "line stop"}}},
		{"./bin/ferry key show k.pub | grep id && ferry version", [][]string{{"key", "show", "k.pub"}, {"version"}}},
		{"echo ferry is good; sudo ferry mirror serve m 2>err.log", [][]string{{"mirror", "serve", "m"}}},
		{"ferry-agent status", nil},
		{`ferry fleet groups m g --filter "a = 1 # not a comment"`, [][]string{{"fleet", "groups", "m", "g", "--filter", "a = 1 # not a comment"}}},
	} {
		if got := invocations(tc.line, "ferry"); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %q\nwant %q", tc.line, got, tc.want)
		}
	}
}

func TestCheckInvocation(t *testing.T) {
	root := &cobra.Command{Use: "ferry"}
	root.PersistentFlags().Bool("json", false, "")
	fleet := &cobra.Command{Use: "fleet"}
	status := &cobra.Command{Use: "status", Run: func(*cobra.Command, []string) {}}
	status.Flags().StringP("token-file", "t", "", "")
	status.Flags().BoolP("all", "a", false, "")
	root.AddCommand(fleet)
	fleet.AddCommand(status)
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"fleet", "status", "m", "--token-file", "f", "--json"}, true},
		{[]string{"fleet", "status", "--token-file=f", "-at", "f", "--help"}, true},
		{[]string{"fleet", "status", "m", "--", "--not-a-flag"}, true},
		{[]string{"fleet", "stats", "m"}, false},
		{[]string{"fleet"}, true},
		{[]string{"fleet", "status", "--tokenfile", "f"}, false},
		{[]string{"fleet", "status", "-x"}, false},
		{[]string{"mirror", "serve"}, false},
		{[]string{"--json", "fleet", "status"}, true},
		{[]string{"-t", "f", "fleet", "status"}, false},
	} {
		if err := checkInvocation(root, tc.args); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok %v", tc.args, err, tc.ok)
		}
	}
}

func TestShellLines(t *testing.T) {
	md := "text `ferry x`\n```sh\nferry a \\\n  --b c\n# note\n```\n```json\n{\"ferry\": 1}\n```\n  ```console\n  $ ferry d\n  ```\n"
	want := []docLine{{3, "ferry a  --b c"}, {5, "# note"}, {11, "ferry d"}}
	if got := shellLines(md); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	f := filepath.Join(t.TempDir(), "x.md")
	os.WriteFile(f, []byte(md), 0o644)
	root := &cobra.Command{Use: "ferry"}
	root.AddCommand(&cobra.Command{Use: "a", Run: func(*cobra.Command, []string) {}}, &cobra.Command{Use: "d", Run: func(*cobra.Command, []string) {}})
	root.Commands()[0].Flags().String("b", "", "")
	if n := CommandLinesValid(t, root, f); n != 2 {
		t.Errorf("checked %d command lines, want 2", n)
	}
}
