package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/internal/testutil"
)

// Markers the guest prints on its serial console (mkimage.sh tree).
const (
	markReady     = "FERRY-READY"
	markBooted    = "FERRY-BOOTED"
	markBootCheck = "FERRY-BOOTCHECK"
)

// stepTimeout bounds the wait for one marker: a boot or one command. It is
// generous because TCG on a loaded machine is slow; it only decides when a
// hung guest is given up on, never what counts as a pass.
const stepTimeout = 6 * time.Minute

// bundleName is the name (OCI repository) of every bundle built here.
const bundleName = "ferry-qemu"

// fixture is what every test of one platform shares: tools, binaries,
// keys, and the images.
type fixture struct {
	p        *platform
	dir      string
	mkimage  string
	ferry    string
	agent    string
	rootKey  string
	relKey   string
	trust    string    // the trust root, signed by rootKey, release role relKey
	baseTree string    // mkimage.sh tree, with the agent and its config
	disk     string    // A = 1.0.0 committed, B empty
	parts    [4]string // its partition images: ESP (or boot), A, B, data
	took     time.Duration

	mu      sync.Mutex
	bundles map[string]*built // by version
	builds  chan struct{}     // bounds the bundle builds that run at once
}

// built is a bundle built once, for whichever test asks first.
type built struct {
	once sync.Once
	path string
	err  error
}

// platform is what differs between the machines the tests boot: the
// emulator, its firmware and bootloader, and the guest's architecture,
// kernel and agent configuration. Everything else (the fixture, the
// machine, its console) is shared.
type platform struct {
	name       string // names the fixture's directory
	goarch     string // of the guest's ferry-agent
	deviceType string // of the guest's agent configuration and the bundles
	tools      [][2]string
	// require checks for what the tools do not cover (firmware, kernel),
	// through testtool.Missing.
	require func(t *testing.T)
	// env is mkimage.sh's environment: kernel, modules, busybox, console.
	env func() []string
	// bootPart builds partition 1: the ESP, or U-Boot's boot partition.
	bootPart func(f *fixture, out string) error
	// files are added to the base tree: a file of this package, and where.
	files [][2]string
	// qemu returns the emulator and its arguments up to the disks: the
	// machine and its firmware.
	qemu func(m *machine) (string, []string)
	// vars is a firmware variable store copied for each machine ("": none).
	vars string

	once sync.Once
	fix  *fixture
	err  error
}

// tools every platform needs, with the Debian package of each.
var commonTools = [][2]string{
	{"busybox", "busybox-static"},
	{"cpio", "cpio"},
	{"mkfs.ext4", "e2fsprogs"},
	{"mcopy", "mtools"},
	{"mkfs.fat", "dosfstools"},
	{"sgdisk", "gdisk"},
	{"modprobe", "kmod"},
}

// ovmfCode and ovmfVars are Debian's OVMF build (package ovmf).
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// x86 is x86_64 with UEFI (OVMF) and GRUB running examples/grub/grub.cfg.
var x86 = &platform{
	name:       "x86_64",
	goarch:     "amd64",
	deviceType: "qemu-x86_64",
	tools: [][2]string{
		{"qemu-system-x86_64", "qemu-system-x86"},
		{"grub-mkimage", "grub-efi-amd64-bin"},
		{"grub-editenv", "grub2-common"},
	},
	require: func(t *testing.T) {
		for _, f := range []string{ovmfCode, ovmfVars} {
			if _, err := os.Stat(f); err != nil {
				testtool.Missing(t, f+" (Debian package ovmf)")
			}
		}
		if m, _ := filepath.Glob("/boot/vmlinuz-*"); len(m) == 0 {
			testtool.Missing(t, "a kernel in /boot (Debian package linux-image-amd64)")
		}
		if _, err := os.Stat("/bin/busybox"); err != nil {
			testtool.Missing(t, "/bin/busybox (Debian package busybox-static)")
		}
	},
	env: func() []string { return nil },
	bootPart: func(f *fixture, out string) error {
		return run(f.dir, nil, f.mkimage, "esp", out, here("../grub/grub.cfg"))
	},
	files: [][2]string{{"testdata/agent.toml", "etc/ferry/agent.toml"}},
	qemu: func(m *machine) (string, []string) {
		return "qemu-system-x86_64", []string{
			"-machine", "q35", "-m", "512", "-smp", "1",
			"-drive", "if=pflash,format=raw,readonly=on,file=" + ovmfCode,
			"-drive", "if=pflash,format=raw,file=" + m.vars,
		}
	},
	vars: ovmfVars,
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, p := range []*platform{x86, arm64} {
		if p.fix != nil {
			os.RemoveAll(p.fix.dir)
		}
	}
	os.Exit(code)
}

// getFixture builds the shared x86_64 fixture once.
func getFixture(t *testing.T) *fixture {
	t.Helper()
	return x86.fixture(t)
}

// fixture builds the platform's shared fixture once; a test that cannot
// have it skips (fails under CI) or fails.
func (p *platform) fixture(t *testing.T) *fixture {
	t.Helper()
	for _, tl := range append(p.tools, commonTools...) {
		testtool.Require(t, tl[0], tl[1])
	}
	p.require(t)
	p.once.Do(func() {
		p.fix, p.err = buildFixture(p)
		if p.err == nil {
			t.Logf("%s fixture (programs, tree, disk) built in %s", p.name, p.fix.took.Round(time.Second))
		}
	})
	if p.err != nil {
		t.Fatalf("build the %s images: %v", p.name, p.err)
	}
	return p.fix
}

// run runs a host command and returns its error with its output.
func run(dir string, env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func buildFixture(p *platform) (*fixture, error) {
	start := time.Now()
	dir, err := os.MkdirTemp("", "ferry-qemu-"+p.name+"-")
	if err != nil {
		return nil, err
	}
	f := &fixture{p: p, dir: dir, mkimage: here("mkimage.sh"), bundles: map[string]*built{}, builds: make(chan struct{}, 2)}
	f.ferry = filepath.Join(dir, "ferry")
	f.agent = filepath.Join(dir, "ferry-agent")
	f.baseTree = filepath.Join(dir, "tree")
	esp := filepath.Join(dir, "part1.img")
	dataDir := filepath.Join(dir, "data")
	data := filepath.Join(dir, "data.img")
	empty := filepath.Join(dir, "empty.img")
	// What does not depend on anything else is built at once: the two
	// programs, the busybox tree, the ESP, the data partition.
	err = parallel(
		func() error { return run("../..", nil, "go", "build", "-o", f.ferry, "./cmd/ferry") },
		// The guest has no C library: a static agent, without its symbol
		// table (a smaller payload to download, check and write).
		func() error {
			return run("../..", []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + p.goarch}, "go", "build", "-ldflags=-s -w", "-o", f.agent, "./cmd/ferry-agent")
		},
		func() error { return run(dir, p.env(), f.mkimage, "tree", f.baseTree) },
		func() error { return p.bootPart(f, esp) },
		func() error {
			if err := os.Mkdir(dataDir, 0o755); err != nil {
				return err
			}
			return run(dir, nil, f.mkimage, "data", dataDir, data)
		},
		func() error {
			if err := os.WriteFile(empty, nil, 0o644); err != nil {
				return err
			}
			return os.Truncate(empty, 64<<20)
		},
	)
	if err != nil {
		return nil, err
	}
	keys := filepath.Join(dir, "keys")
	if err := os.Mkdir(keys, 0o755); err != nil {
		return nil, err
	}
	for _, k := range []string{"root", "release"} {
		if err := run(keys, nil, f.ferry, "key", "generate", "--out", k); err != nil {
			return nil, err
		}
	}
	f.rootKey = filepath.Join(keys, "root.key")
	f.relKey = filepath.Join(keys, "release.key")
	f.trust = filepath.Join(keys, "root.json")
	if err := run(keys, nil, f.ferry, "trust", "init", "--root-key", f.rootKey,
		"--release-key", filepath.Join(keys, "release.pub"), "--out", f.trust); err != nil {
		return nil, err
	}
	files := [][2]string{
		{f.agent, "usr/bin/ferry-agent"},
		{f.trust, "etc/ferry/root.json"},
		{here("testdata/health"), "etc/ferry/health"},
	}
	for _, c := range p.files {
		files = append(files, [2]string{here(c[0]), c[1]})
	}
	for _, c := range files {
		if err := run(dir, nil, "cp", c[0], filepath.Join(f.baseTree, c[1])); err != nil {
			return nil, err
		}
	}

	a, err := f.slotImage("1.0.0", "")
	if err != nil {
		return nil, err
	}
	f.disk = filepath.Join(dir, "disk.img")
	if err := run(dir, p.env(), f.mkimage, "disk", f.disk, esp, a, empty, data); err != nil {
		return nil, err
	}
	f.parts = [4]string{esp, a, empty, data}
	f.took = time.Since(start)
	return f, nil
}

// parallel runs the functions at once and returns their errors.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// here is the absolute path of a file of this package.
func here(name string) string {
	abs, err := filepath.Abs(name)
	if err != nil {
		panic(err)
	}
	return abs
}

// Kinds of broken release for slotImage.
const (
	badHealth = "bad-health" // its health check fails
	badKernel = "bad-kernel" // its kernel never reaches user space
)

// slotImage builds the root filesystem of a release: the base tree with
// /etc/ferry/version, broken as kind says.
func (f *fixture) slotImage(version, kind string) (string, error) {
	tree := filepath.Join(f.dir, "tree-"+version)
	if err := run(f.dir, nil, "cp", "-a", f.baseTree, tree); err != nil {
		return "", err
	}
	defer os.RemoveAll(tree)
	if err := os.WriteFile(filepath.Join(tree, "etc/ferry/version"), []byte(version+"\n"), 0o644); err != nil {
		return "", err
	}
	switch kind {
	case badHealth:
		if err := os.WriteFile(filepath.Join(tree, "etc/ferry/health"), []byte("#!/bin/sh\necho 'health: the application does not start' >&2\nexit 1\n"), 0o755); err != nil {
			return "", err
		}
	case badKernel:
		// An initramfs without init (an empty archive, which a bootloader
		// loads like any other): the kernel cannot mount the root by
		// itself and panics before user space.
		if err := run(tree, nil, "sh", "-c", "cpio --quiet -o -H newc </dev/null | gzip -n >boot/initrd.img"); err != nil {
			return "", err
		}
	}
	img := filepath.Join(f.dir, "rootfs-"+version+".img")
	if err := run(f.dir, f.p.env(), f.mkimage, "rootfs", tree, img, "rootfs"); err != nil {
		return "", err
	}
	return img, nil
}

// release is a release to build a bundle of: its version and how it is
// broken ("" for not at all).
type release struct{ version, kind string }

// bundles returns signed bundles of the releases, each built once (for
// whichever test asks first), two at a time.
func (f *fixture) bundlesOf(t *testing.T, rs ...release) []string {
	t.Helper()
	start := time.Now()
	paths := make([]string, len(rs))
	fns := make([]func() error, len(rs))
	for i, r := range rs {
		fns[i] = func() (err error) {
			paths[i], err = f.bundle(r)
			return err
		}
	}
	if err := parallel(fns...); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bundles ready in %s", len(rs), time.Since(start).Round(time.Second))
	return paths
}

// bundle builds the bundle of r once.
func (f *fixture) bundle(r release) (string, error) {
	f.mu.Lock()
	b, ok := f.bundles[r.version]
	if !ok {
		b = &built{}
		f.bundles[r.version] = b
	}
	f.mu.Unlock()
	b.once.Do(func() {
		f.builds <- struct{}{}
		defer func() { <-f.builds }()
		b.path, b.err = f.buildBundle(r)
	})
	return b.path, b.err
}

func (f *fixture) buildBundle(r release) (string, error) {
	img, err := f.slotImage(r.version, r.kind)
	if err != nil {
		return "", err
	}
	defer os.Remove(img)
	out := filepath.Join(f.dir, bundleName+"-"+r.version+".ferry")
	err = run(f.dir, nil, f.ferry, "bundle", "create", img, "--name", bundleName,
		"--version", r.version, "--device-type", f.p.deviceType, "--key", f.relKey, "--out", out)
	return out, err
}

// copyFile copies a (sparse) disk image.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := run("", nil, "cp", "--sparse=always", from, to); err != nil {
		t.Fatal(err)
	}
}

// artifactDir is where serial logs go: $FERRY_QEMU_ARTIFACTS/TEST, kept
// after the test, or the test's temporary directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("FERRY_QEMU_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	d := filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// machine is one virtual machine: disk images that outlive the QEMU
// process, so that it can be killed (a power cut) and started again.
type machine struct {
	t     *testing.T
	p     *platform
	disks []string // the system disk, then e.g. a stick
	vars  string   // this machine's firmware variable store, if any
	net   bool
	logs  string
	boots int // QEMU processes started (power-ons)
	// started is when the running QEMU process started; cpu sums the CPU
	// time of the ones that ended. Both are only logged, never judged.
	started time.Time
	cpu     time.Duration

	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *console
	seq   int
}

func newMachine(t *testing.T, f *fixture, disks ...string) *machine {
	t.Helper()
	dir := t.TempDir()
	sys := filepath.Join(dir, "disk.img")
	copyFile(t, f.disk, sys)
	m := &machine{t: t, p: f.p, disks: append([]string{sys}, disks...), net: true, logs: artifactDir(t)}
	if f.p.vars != "" {
		m.vars = filepath.Join(dir, "vars.fd")
		copyFile(t, f.p.vars, m.vars)
	}
	t.Cleanup(m.kill)
	return m
}

// console collects the serial output, appends it to a log file, and lets
// a test wait for a pattern after a position.
type console struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	pos  int // where the next wait starts
	done bool
	cond *sync.Cond
	log  string
}

func (c *console) feed(r io.Reader, logFile *os.File) {
	br := bufio.NewReader(r)
	p := make([]byte, 4096)
	for {
		n, err := br.Read(p)
		c.mu.Lock()
		c.buf.Write(p[:n])
		logFile.Write(p[:n])
		if err != nil {
			c.done = true
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if err != nil {
			logFile.Close()
			return
		}
	}
}

// wait returns the submatches of the first match of re after the current
// position and moves past it; it fails when the machine stops or after
// timeout.
func (c *console) wait(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		b := c.buf.Bytes()[c.pos:]
		if loc := re.FindSubmatchIndex(b); loc != nil {
			var out []string
			for i := 0; i < len(loc); i += 2 {
				if loc[i] < 0 {
					out = append(out, "")
				} else {
					out = append(out, string(b[loc[i]:loc[i+1]]))
				}
			}
			c.pos += loc[1]
			return out, nil
		}
		if c.done {
			return nil, fmt.Errorf("the machine stopped before %q appeared", re)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no %q on the console within %s", re, timeout)
		}
		c.cond.Wait()
	}
}

// start powers the machine on.
func (m *machine) start() {
	m.t.Helper()
	m.boots++
	m.started = time.Now()
	emulator, args := m.p.qemu(m)
	args = append(args, "-display", "none", "-monitor", "none", "-serial", "stdio")
	for _, d := range m.disks {
		args = append(args, "-drive", "file="+d+",format=raw,if=virtio")
	}
	if m.net {
		// User networking: the host is 10.0.2.2 to the guest. No iPXE ROM,
		// so OVMF does not try to boot from the network.
		args = append(args, "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile=")
	} else {
		args = append(args, "-nic", "none")
	}
	m.cmd = exec.Command(emulator, args...)
	stdin, err := m.cmd.StdinPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	m.cmd.Stderr = os.Stderr
	logPath := filepath.Join(m.logs, fmt.Sprintf("serial-%02d.log", m.boots))
	logFile, err := os.Create(logPath)
	if err != nil {
		m.t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start qemu: %v", err)
	}
	m.stdin = stdin
	m.out = &console{log: logPath}
	m.out.cond = sync.NewCond(&m.out.mu)
	go m.out.feed(stdout, logFile)
}

// kill cuts the power: SIGKILL to QEMU, so the guest's page cache and
// QEMU's own buffers die with it. What QEMU had written to the image files
// stays, as on a disk.
func (m *machine) kill() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	m.cmd.Process.Kill()
	m.cmd.Wait()
	if ps := m.cmd.ProcessState; ps != nil {
		cpu := ps.UserTime() + ps.SystemTime()
		m.cpu += cpu
		m.t.Logf("power-on %d: %s, QEMU used %s of CPU", m.boots, time.Since(m.started).Round(time.Second), cpu.Round(time.Second))
	}
	m.cmd = nil
}

// shutdown stops the machine cleanly: the ESP (or U-Boot's boot
// partition) and the data partition are unmounted (written back) before
// QEMU stops, so the host can read them.
func (m *machine) shutdown() {
	m.t.Helper()
	m.mustSh("sync; umount /boot/efi 2>/dev/null; umount /boot/firmware 2>/dev/null; umount /var/lib/ferry; sync")
	m.kill()
}

// expect waits for the pattern on the console and returns its submatches.
func (m *machine) expect(pattern string) []string {
	m.t.Helper()
	got, err := m.out.wait(regexp.MustCompile(pattern), stepTimeout)
	if err != nil {
		// The log file goes with the test's temporary directory unless
		// FERRY_QEMU_ARTIFACTS keeps it: its end is in the failure.
		m.t.Fatalf("%v (serial log: %s); the console's last lines:\n%s", err, m.out.log, m.out.tail(consoleTail))
	}
	return got
}

// TestConsoleTail: a failed expect shows the console's last whole lines.
func TestConsoleTail(t *testing.T) {
	var c console
	c.buf.WriteString("first line\nsecond line\nthird\n")
	for _, tc := range []struct {
		n    int
		want string
	}{{100, "first line\nsecond line\nthird\n"}, {14, "third\n"}, {18, "second line\nthird\n"}} {
		if got := c.tail(tc.n); got != tc.want {
			t.Errorf("tail(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// consoleTail is how much of the console a failed expect shows.
const consoleTail = 3 << 10

// tail is the last n bytes of what the console printed, from a line's
// start.
func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf.Bytes()
	if start := len(b) - n; start > 0 {
		cut := b[start:]
		if b[start-1] != '\n' { // mid-line: from the next line on
			if i := bytes.IndexByte(cut, '\n'); i >= 0 {
				cut = cut[i+1:]
			}
		}
		b = cut
	}
	return string(b)
}

// ready waits for the end of a boot and returns the slot and version
// that came up and boot-check's exit code.
func (m *machine) ready() (slot, version, bootCheck string) {
	m.t.Helper()
	rc := m.expect(markBootCheck + ` rc=(\d+)\r?\n`)
	r := m.expect(markReady + ` slot=([ab]?) version=(\S*)\r?\n`)
	m.t.Logf("up on slot %s %s, %s after power-on %d", r[1], r[2], time.Since(m.started).Round(time.Second), m.boots)
	return r[1], r[2], rc[1]
}

// send types a command into the guest's shell without waiting.
func (m *machine) send(cmd string) {
	m.t.Helper()
	if _, err := io.WriteString(m.stdin, cmd+"\n"); err != nil {
		m.t.Fatalf("type %q: %v", cmd, err)
	}
}

// sh runs a command in the guest and returns its output and exit code.
func (m *machine) sh(cmd string) (string, int) {
	m.t.Helper()
	m.seq++
	// The markers are built by printf so that an echo of the typed line
	// never matches.
	begin, end := fmt.Sprintf("FERRY-OUT-%d", m.seq), fmt.Sprintf("FERRY-RC-%d", m.seq)
	m.send(fmt.Sprintf("printf 'FERRY-OUT-%%s\\n' %d; %s; printf 'FERRY-RC-%%s=%%s\\n' %d $?", m.seq, cmd, m.seq))
	m.expect(begin + `\r?\n`)
	got := m.expect(`(?s)(.*?)` + end + `=(\d+)`)
	var rc int
	fmt.Sscan(got[2], &rc)
	return strings.ReplaceAll(got[1], "\r", ""), rc
}

// mustSh runs a command that must succeed.
func (m *machine) mustSh(cmd string) string {
	m.t.Helper()
	out, rc := m.sh(cmd)
	if rc != 0 {
		m.t.Fatalf("guest: %s: exit %d\n%s(serial log: %s)", cmd, rc, out, m.out.log)
	}
	return out
}

// agentStatus is what the tests read of ferry-agent status --json.
type agentStatus struct {
	Installed *struct {
		Version string `json:"version"`
		Slot    string `json:"slot"`
	} `json:"installed"`
	BootedSlot string `json:"bootedSlot"`
	Boot       *struct {
		Slot             string `json:"slot"`
		UpgradeAvailable bool   `json:"upgradeAvailable"`
		BootCount        int    `json:"bootCount"`
		Current          string `json:"current"`
	} `json:"boot"`
	Install *struct {
		State   string `json:"state"`
		Version string `json:"version"`
		Result  string `json:"result"`
	} `json:"install"`
	Pending bool `json:"pending"`
}

func (m *machine) status() agentStatus {
	m.t.Helper()
	out := m.mustSh("ferry-agent status --json")
	var st agentStatus
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &st); err != nil {
		m.t.Fatalf("status: %v\n%s", err, out)
	}
	return st
}

// requireCommitted checks the guest runs a good committed system: the
// slot that booted is the one GRUB's block selects, no trial is pending,
// no install is unfinished, and the installed record names the running
// version. It returns the running version.
func (m *machine) requireCommitted(slot, version string) {
	m.t.Helper()
	st := m.status()
	if st.Boot == nil || st.Boot.UpgradeAvailable || st.Boot.Slot != slot || st.BootedSlot != slot {
		m.t.Fatalf("running slot %s, but the boot state is %+v (booted %q; serial log %s)", slot, st.Boot, st.BootedSlot, m.out.log)
	}
	if st.Pending {
		m.t.Fatalf("an install is still pending: %+v (serial log %s)", st.Install, m.out.log)
	}
	if st.Install != nil {
		switch st.Install.State {
		case "committed", "rolled-back", "failed":
		default:
			m.t.Fatalf("the last install is unfinished: %+v (serial log %s)", st.Install, m.out.log)
		}
	}
	if version != "1.0.0" && (st.Installed == nil || st.Installed.Version != version) {
		m.t.Fatalf("running %s, but installed.json says %+v", version, st.Installed)
	}
}

// grubEnv reads the GRUB environment block from the machine's ESP (after
// shutdown) with mtools and grub-editenv.
func (m *machine) grubEnv() map[string]string {
	m.t.Helper()
	tmp := filepath.Join(m.t.TempDir(), "grubenv")
	if err := run("", nil, "mcopy", "-n", "-i", m.disks[0]+"@@1M", "::/EFI/BOOT/grubenv", tmp); err != nil {
		m.t.Fatal(err)
	}
	out, err := exec.Command("grub-editenv", tmp, "list").Output()
	if err != nil {
		m.t.Fatal(err)
	}
	vars := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vars[k] = v
		}
	}
	return vars
}

// serve runs ferry mirror serve on a loopback port holding the bundles
// and returns the port.
func (f *fixture) serve(t *testing.T, bundles ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mirror")
	key := filepath.Join(t.TempDir(), "mirror")
	if err := run("", nil, f.ferry, "key", "generate", "--out", key); err != nil {
		t.Fatal(err)
	}
	if err := run("", nil, f.ferry, "mirror", "init", dir, "--key", key+".key"); err != nil {
		t.Fatal(err)
	}
	if err := run("", nil, f.ferry, append([]string{"mirror", "add", dir}, bundles...)...); err != nil {
		t.Fatal(err)
	}
	// QEMU's user network forwards the guest's 10.0.2.2 to the host's
	// loopback.
	l := testutil.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, f.ferry, "mirror", "serve", dir, "--listen", l)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("ferry mirror serve:\n%s", log.String())
		}
	})
	_, port, _ := strings.Cut(l, ":")
	return port
}
