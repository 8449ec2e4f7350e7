package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/agent/bootenv"
	"github.com/ferry-update/ferry/internal/testtool"
)

// examples/grub/grub.cfg is the copy users take of the one bootenv's GRUB
// tests run.
func TestExampleGrubInSync(t *testing.T) {
	want, err := os.ReadFile("bootenv/testdata/grub.cfg")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../examples/grub/grub.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("examples/grub/grub.cfg differs from agent/bootenv/testdata/grub.cfg: copy it over")
	}
}

// exampleUBootEnv reads examples/uboot/ferry-env.txt as name=value lines.
func exampleUBootEnv(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../examples/uboot/ferry-env.txt")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("ferry-env.txt: %q is not name=value", line)
		}
		vars[name] = value
	}
	return vars
}

// The U-Boot example follows the boot protocol: it starts on slot a with
// no trial, bootcmd boots ferry_slot, altbootcmd the other slot without
// changing ferry_slot, and the kernel learns the slot from ferry.slot=.
func TestExampleUBoot(t *testing.T) {
	vars := exampleUBootEnv(t)
	st, err := bootenv.Boot{Store: mapStore(vars)}.State()
	if err != nil {
		t.Fatal(err)
	}
	if st != (bootenv.BootState{Slot: "a", BootLimit: 1}) {
		t.Errorf("initial state %+v", st)
	}
	for name, want := range map[string][]string{
		"bootcmd":    {`test "${ferry_slot}" = b; then setenv ferry_boot b; else setenv ferry_boot a`, "run ferry_load"},
		"altbootcmd": {`test "${ferry_slot}" = b; then setenv ferry_boot a; else setenv ferry_boot b`, "run ferry_load"},
		"ferry_load": {"ferry.slot=${ferry_boot}"},
	} {
		for _, w := range want {
			if !strings.Contains(vars[name], w) {
				t.Errorf("%s = %q lacks %q", name, vars[name], w)
			}
		}
	}
	for name, v := range vars {
		if strings.Contains(v, "setenv ferry_slot") || strings.Contains(v, "saveenv") {
			t.Errorf("%s changes the environment: the bootloader must leave ferry_slot alone", name)
		}
	}
	f, err := os.Open("../examples/uboot/fw_env.config")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	locs, err := bootenv.ParseFwEnvConfig(f)
	if err != nil || len(locs) != 2 {
		t.Fatalf("fw_env.config: %d copies, %v; want a redundant environment", len(locs), err)
	}
}

// fw_setenv -f ferry-env.txt makes an environment the agent reads as the
// example's.
func TestExampleUBootWithFwSetenv(t *testing.T) {
	testtool.Require(t, "fw_setenv", "libubootenv-tool")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fw_env.config")
	var lines string
	for _, name := range []string{"env-1", "env-2"} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 0x4000), 0o644); err != nil {
			t.Fatal(err)
		}
		lines += fmt.Sprintf("%s 0x0 0x4000\n", filepath.Join(dir, name))
	}
	if err := os.WriteFile(cfg, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("fw_setenv", "-c", cfg, "-f", "../examples/uboot/ferry-env.txt", "bootcount", "0").CombinedOutput(); err != nil {
		t.Fatalf("fw_setenv: %v\n%s", err, out)
	}
	env, err := bootenv.OpenUBootConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := env.Load()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range exampleUBootEnv(t) {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
}

type mapStore map[string]string

func (m mapStore) Load() (map[string]string, error) { return m, nil }
func (m mapStore) Save(map[string]string) error     { return nil }
