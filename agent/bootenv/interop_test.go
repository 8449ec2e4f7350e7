package bootenv

// Interoperability with the tools users meet: libubootenv's fw_printenv and
// fw_setenv (Debian package libubootenv-tool) and grub-editenv and
// grub-script-check (grub2-common, grub-common). Each test skips, saying
// why, only when its tool is not installed.

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/testtool"
)

func needFwTools(t *testing.T) {
	t.Helper()
	testtool.Require(t, "fw_printenv", "libubootenv-tool")
	testtool.Require(t, "fw_setenv", "libubootenv-tool")
}

// tool runs a command and returns its stdout, or an error carrying stderr.
func tool(name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func mustTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := tool(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fwPrintenv returns what fw_printenv prints, as variables. Values must not
// contain newlines.
func fwPrintenv(t *testing.T, cfg string) map[string]string {
	t.Helper()
	vars := make(map[string]string)
	for _, line := range strings.Split(mustTool(t, "fw_printenv", "-c", cfg), "\n") {
		if name, value, ok := strings.Cut(line, "="); ok {
			vars[name] = value
		}
	}
	return vars
}

// tricky are values that test the format's edges.
var tricky = map[string]string{
	"bootargs": "console=ttyS0,115200 root=/dev/mmcblk0p2 rw",
	"bootcmd":  "run ferry_boot; reset",
	"eq":       "a=b=c",
	"empty":    "",
	"spaces":   "  lead and trail  ",
	"utf8":     "grüße",
	"z9":       `back\slash`,
}

func TestUBootInterop(t *testing.T) {
	needFwTools(t)
	for _, redundant := range []bool{false, true} {
		t.Run(fmt.Sprintf("redundant=%v", redundant), func(t *testing.T) {
			env, cfg := testUBoot(t, redundant, 0x2000)

			// agent writes, fw_printenv reads
			mustSave(t, env, tricky)
			if got := fwPrintenv(t, cfg); !maps.Equal(got, tricky) {
				t.Fatalf("fw_printenv read %q, want %q", got, tricky)
			}

			// fw_setenv writes (several variables, a deletion, a
			// newline), the agent reads
			mustTool(t, "fw_setenv", "-c", cfg, "ferry_slot", "b", "multi", "line1\nline2", "empty")
			want := maps.Clone(tricky)
			want["ferry_slot"], want["multi"] = "b", "line1\nline2"
			delete(want, "empty")
			if got := mustLoad(t, env); !maps.Equal(got, want) {
				t.Fatalf("agent read %q, want %q", got, want)
			}
			if got := mustTool(t, "fw_printenv", "-c", cfg, "-n", "multi"); got != "line1\nline2\n" {
				t.Errorf("fw_printenv -n multi = %q", got)
			}
			compareImage(t, env, want)

			// Take turns many times; every save moves to the other copy
			// with the next flag.
			prevCopy, prevFlag := currentCopy(t, env)
			for i := range 8 {
				n := fmt.Sprint(i)
				if i%2 == 0 {
					want["n"] = n
					mustSave(t, env, want)
					if got := fwPrintenv(t, cfg)["n"]; got != n {
						t.Fatalf("turn %d: fw_printenv read n=%q", i, got)
					}
				} else {
					mustTool(t, "fw_setenv", "-c", cfg, "n", n)
					if got := mustLoad(t, env)["n"]; got != n {
						t.Fatalf("turn %d: agent read n=%q", i, got)
					}
				}
				if !redundant {
					continue
				}
				c, f := currentCopy(t, env)
				if c == prevCopy || f != prevFlag+1 {
					t.Fatalf("turn %d: copy %d flag %d after copy %d flag %d", i, c, f, prevCopy, prevFlag)
				}
				prevCopy, prevFlag = c, f
			}
			compareImage(t, env, mustLoad(t, env))
		})
	}
}

// currentCopy returns the copy in use and its flag.
func currentCopy(t *testing.T, env *UBootEnv) (int, byte) {
	t.Helper()
	copies := env.readCopies()
	c, err := env.current(copies)
	if err != nil {
		t.Fatal(err)
	}
	return c, copies[c].flag
}

// compareImage checks that the copy in use is byte for byte what the agent
// would write for vars. libubootenv does not clear its buffer before
// writing, so its padding is whatever malloc returned: almost always zeros,
// but not always, and it is covered by the CRC. The padding is compared
// only for the log.
func compareImage(t *testing.T, env *UBootEnv, vars map[string]string) {
	t.Helper()
	c, flag := currentCopy(t, env)
	got := image(t, env, c)
	want, err := encodeUBootEnv(vars, len(got), env.redundant(), flag)
	if err != nil {
		t.Fatal(err)
	}
	hdr := headerLen(env.redundant())
	end := hdr + bytes.Index(want[hdr:], []byte{0, 0}) + 2
	if !bytes.Equal(got[crcLen:end], want[crcLen:end]) {
		t.Errorf("image differs from the agent's encoding:\n got %q\nwant %q", got[crcLen:end], want[crcLen:end])
	}
	// The CRC covers the padding, so it can only match if the padding does.
	switch {
	case !bytes.Equal(got[end:], want[end:]):
		t.Logf("libubootenv's padding is not all zero (uninitialized buffer)")
	case !bytes.Equal(got[:crcLen], want[:crcLen]):
		t.Errorf("CRC %x, the agent's %x", got[:crcLen], want[:crcLen])
	}
}

func TestUBootInteropFlagWrap(t *testing.T) {
	needFwTools(t)
	env, cfg := testUBoot(t, true, 0x1000)
	// Start just before the flag wraps: copy 0 at 0xfc, copy 1 at 0xfd.
	for i, flag := range []byte{0xfc, 0xfd} {
		img, err := encodeUBootEnv(map[string]string{"n": fmt.Sprint(flag)}, 0x1000, true, flag)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.OpenFile(env.locs[i].Device, os.O_RDWR, 0)
		f.WriteAt(img, env.locs[i].Offset)
		f.Close()
	}
	if got := fwPrintenv(t, cfg)["n"]; got != "253" {
		t.Fatalf("fw_printenv picked n=%q, want 253 (flag 0xfd)", got)
	}
	for i, flag := range []byte{0xfe, 0xff, 0x00, 0x01, 0x02, 0x03} {
		n := fmt.Sprint(flag)
		if i%2 == 0 {
			mustSave(t, env, map[string]string{"n": n})
		} else {
			mustTool(t, "fw_setenv", "-c", cfg, "n", n)
		}
		if got := fwPrintenv(t, cfg)["n"]; got != n {
			t.Errorf("flag %#x: fw_printenv read n=%q", flag, got)
		}
		if got := mustLoad(t, env)["n"]; got != n {
			t.Errorf("flag %#x: agent read n=%q", flag, got)
		}
		if _, f := currentCopy(t, env); f != flag {
			t.Errorf("flag = %#x, want %#x", f, flag)
		}
	}
}

func TestUBootInteropCorrupt(t *testing.T) {
	needFwTools(t)
	env, cfg := testUBoot(t, true, 0x1000)
	mustSave(t, env, map[string]string{"n": "1"})
	mustTool(t, "fw_setenv", "-c", cfg, "n", "2")

	// A power cut in the middle of the agent's save, after the new CRC,
	// flag and "n=" but before the value: both read the old copy.
	env.writeAt = func(f *os.File, b []byte, off int64) error {
		f.WriteAt(b[:7], off)
		return errors.New("power cut")
	}
	if err := env.Save(map[string]string{"n": "3"}); err == nil {
		t.Fatal("save with a power cut succeeded")
	}
	env = testUBootReopen(t, env)
	if got := fwPrintenv(t, cfg)["n"]; got != "2" {
		t.Errorf("after a torn save fw_printenv read n=%q, want 2", got)
	}
	if got := mustLoad(t, env)["n"]; got != "2" {
		t.Errorf("after a torn save agent read n=%q, want 2", got)
	}

	// The next save replaces the torn copy. Then that copy goes bad:
	// both fall back to the one fw_setenv wrote.
	mustSave(t, env, map[string]string{"n": "3"})
	cur, _ := currentCopy(t, env)
	corrupt(t, env.locs[cur])
	if got := fwPrintenv(t, cfg)["n"]; got != "2" {
		t.Errorf("fw_printenv read n=%q, want 2", got)
	}
	if got := mustLoad(t, env)["n"]; got != "2" {
		t.Errorf("agent read n=%q, want 2", got)
	}

	// Both bad: a typed error here, and fw_printenv refuses too.
	corrupt(t, env.locs[1-cur])
	if _, err := env.Load(); !errors.Is(err, ErrNoValidEnv) {
		t.Errorf("agent: %v, want ErrNoValidEnv", err)
	}
	if out, err := tool("fw_printenv", "-c", cfg); err == nil {
		t.Errorf("fw_printenv read a corrupt environment: %q", out)
	}

	// fw_setenv with a default environment repairs it; so does Save.
	def := filepath.Join(t.TempDir(), "default-env")
	os.WriteFile(def, []byte("bootcmd=run x\n"), 0o644)
	mustTool(t, "fw_setenv", "-c", cfg, "-f", def, "n", "4")
	if got := mustLoad(t, env); !maps.Equal(got, map[string]string{"bootcmd": "run x", "n": "4"}) {
		t.Errorf("after fw_setenv -f: %q", got)
	}
	corrupt(t, env.locs[0])
	corrupt(t, env.locs[1])
	mustSave(t, env, map[string]string{"n": "5"})
	if got := fwPrintenv(t, cfg)["n"]; got != "5" {
		t.Errorf("after repair fw_printenv read n=%q", got)
	}
}

// TestUBootInteropConfigNumbers uses a config whose numbers only agree
// with libubootenv if sizes are read as hex and offsets as C literals.
func TestUBootInteropConfigNumbers(t *testing.T) {
	needFwTools(t)
	dir := t.TempDir()
	dev := filepath.Join(dir, "env.img")
	os.WriteFile(dev, make([]byte, 0x3000), 0o644)
	cfg := filepath.Join(dir, "fw_env.config")
	// 400 is 0x400; 02000 is octal 1024; 4096 decimal.
	os.WriteFile(cfg, []byte(fmt.Sprintf("%s 02000 400\n%s 4096 0x400 # spare\n", dev, dev)), 0o644)
	env, err := OpenUBootConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env.LockPath = ""
	if env.locs[0].Offset != 1024 || env.locs[0].Size != 0x400 || env.locs[1].Offset != 4096 {
		t.Fatalf("parsed %+v", env.locs)
	}
	for i := range 3 {
		mustSave(t, env, map[string]string{"n": fmt.Sprint(i)})
		if got := fwPrintenv(t, cfg)["n"]; got != fmt.Sprint(i) {
			t.Fatalf("fw_printenv read n=%q, want %d", got, i)
		}
	}
}

// TestBootInteropUBoot runs the boot protocol with fw_setenv standing in
// for U-Boot's bootcount.
func TestBootInteropUBoot(t *testing.T) {
	needFwTools(t)
	env, cfg := testUBoot(t, true, 0x1000)
	mustSave(t, env, map[string]string{"bootcmd": "run ferry_boot", DefaultSlotVar: SlotA})
	b := Boot{Store: env}
	if err := b.MarkTentative(SlotB); err != nil {
		t.Fatal(err)
	}
	got := fwPrintenv(t, cfg)
	if got["ferry_slot"] != "b" || got["upgrade_available"] != "1" || got["bootcount"] != "0" || got["bootlimit"] != "1" {
		t.Fatalf("fw_printenv after MarkTentative: %q", got)
	}
	mustTool(t, "fw_setenv", "-c", cfg, "bootcount", "2")
	if s := mustState(t, b); !s.FallbackDetected || s.BootedSlot() != SlotA {
		t.Fatalf("state = %+v", s)
	}
	if err := b.Rollback(SlotA); err != nil {
		t.Fatal(err)
	}
	if got := fwPrintenv(t, cfg); got["ferry_slot"] != "a" || got["upgrade_available"] != "0" || got["bootcmd"] != "run ferry_boot" {
		t.Fatalf("fw_printenv after Rollback: %q", got)
	}
}

func TestGrubInterop(t *testing.T) {
	testtool.Require(t, "grub-editenv", "grub2-common")
	dir := t.TempDir()
	path := filepath.Join(dir, "grubenv")
	g := &GrubEnv{Path: path}

	// create: the same bytes as an empty Save, and no variables.
	mustTool(t, "grub-editenv", path, "create")
	created, _ := os.ReadFile(path)
	if want, _ := encodeGrubEnv(nil, DefaultGrubEnvSize); !bytes.Equal(created, want) {
		t.Fatalf("grub-editenv create wrote\n%q\nthe agent writes\n%q", created, want)
	}
	if got := mustLoad(t, g); len(got) != 0 {
		t.Fatalf("empty block read as %q", got)
	}

	// grub-editenv sets (in byte order), the agent reads; the block is
	// byte-identical to the agent's.
	vars := maps.Clone(tricky)
	vars["multi"] = "line1\nline2\n"
	vars["trailing"] = `ends in \`
	vars["z_hash"] = "#not a comment"
	var args []string
	for _, name := range sortedNames(vars) {
		args = append(args, name+"="+vars[name])
	}
	mustTool(t, "grub-editenv", append([]string{path, "set"}, args...)...)
	if got := mustLoad(t, g); !maps.Equal(got, vars) {
		t.Fatalf("agent read %q, want %q", got, vars)
	}
	written, _ := os.ReadFile(path)
	if want, _ := encodeGrubEnv(vars, DefaultGrubEnvSize); !bytes.Equal(written, want) {
		t.Fatalf("grub-editenv wrote\n%q\nthe agent writes\n%q", written, want)
	}

	// The agent saves, grub-editenv lists.
	vars["ferry_slot"] = "b"
	delete(vars, "eq")
	mustSave(t, g, vars)
	var want strings.Builder
	for _, name := range sortedNames(vars) {
		fmt.Fprintf(&want, "%s=%s\n", name, vars[name])
	}
	if got := mustTool(t, "grub-editenv", path, "list"); got != want.String() {
		t.Fatalf("grub-editenv list:\n%q\nwant\n%q", got, want.String())
	}

	// grub-editenv edits the agent's block in place.
	mustTool(t, "grub-editenv", path, "set", "ferry_slot=a", "new=1")
	mustTool(t, "grub-editenv", path, "unset", "multi", "spaces")
	vars["ferry_slot"], vars["new"] = "a", "1"
	delete(vars, "multi")
	delete(vars, "spaces")
	if got := mustLoad(t, g); !maps.Equal(got, vars) {
		t.Fatalf("agent read %q, want %q", got, vars)
	}

	// Both draw the line for a full block at the same byte.
	room := DefaultGrubEnvSize - len(grubEnvHeader) - len("a=\n")
	fresh := filepath.Join(dir, "fresh")
	mustTool(t, "grub-editenv", fresh, "create")
	if _, err := tool("grub-editenv", fresh, "set", "a="+strings.Repeat("x", room+1)); err == nil {
		t.Error("grub-editenv accepted a value one byte too long")
	}
	mustTool(t, "grub-editenv", fresh, "set", "a="+strings.Repeat("x", room))
	if err := g.Save(map[string]string{"a": strings.Repeat("x", room+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("agent: %v, want ErrTooLarge", err)
	}
	mustSave(t, g, map[string]string{"a": strings.Repeat("x", room)})
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(fresh)
	if !bytes.Equal(a, b) {
		t.Error("full blocks differ")
	}
}

// TestGrubCfg checks the GRUB side of the boot protocol parses.
func TestGrubCfg(t *testing.T) {
	testtool.Require(t, "grub-script-check", "grub-common")
	mustTool(t, "grub-script-check", filepath.Join("testdata", "grub.cfg"))
	cfg, err := os.ReadFile(filepath.Join("testdata", "grub.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{DefaultSlotVar, UpgradeAvailableVar, BootCountVar, BootLimitVar} {
		if !bytes.Contains(cfg, []byte("${"+v+"}")) {
			t.Errorf("grub.cfg does not use %s", v)
		}
	}
}

// TestGrubInteropCreate: a block Save creates, or writes over a file that
// is no block (what a power cut while creating one leaves), is written in
// place, never renamed into place (not atomic on FAT), and grub-editenv
// reads it.
func TestGrubInteropCreate(t *testing.T) {
	testtool.Require(t, "grub-editenv", "grub2-common")
	vars := map[string]string{"ferry_slot": "b", "upgrade_available": "1", "bootcount": "0", "bootlimit": "1"}
	tests := []struct {
		name   string
		before func(path string) error // nil: no file
	}{
		{"missing", nil},
		{"empty (cut while created)", func(p string) error { return os.WriteFile(p, nil, 0o644) }},
		{"zeros (cut while created)", func(p string) error { return os.WriteFile(p, make([]byte, 512), 0o644) }},
		{"signature only", func(p string) error { return os.WriteFile(p, []byte(grubEnvSignature), 0o644) }},
		{"larger, no signature", func(p string) error {
			return os.WriteFile(p, []byte(strings.Repeat("evil=1\n", 1000)), 0o644)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "grubenv")
			var before os.FileInfo
			if tt.before != nil {
				if err := tt.before(path); err != nil {
					t.Fatal(err)
				}
				before, _ = os.Stat(path)
			}
			g := &GrubEnv{Path: path}
			mustSave(t, g, vars)
			after, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if before != nil && !os.SameFile(before, after) {
				t.Error("Save replaced the file (a rename) instead of writing it in place")
			}
			if after.Size() != DefaultGrubEnvSize {
				t.Errorf("size %d, want %d", after.Size(), DefaultGrubEnvSize)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("files left beside the block: %v", ents)
			}
			var want strings.Builder
			for _, name := range sortedNames(vars) {
				fmt.Fprintf(&want, "%s=%s\n", name, vars[name])
			}
			if got := mustTool(t, "grub-editenv", path, "list"); got != want.String() {
				t.Errorf("grub-editenv list:\n%q\nwant\n%q", got, want.String())
			}
			if got := mustLoad(t, g); !maps.Equal(got, vars) {
				t.Errorf("Load = %q", got)
			}
		})
	}
	t.Run("not a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "grubenv")
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := (&GrubEnv{Path: path}).Save(vars); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Save over a directory: %v", err)
		}
	})
}
