package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// This file is the crash tests' bootloader: U-Boot built as
// examples/uboot/README.md says (CONFIG_BOOTCOUNT_LIMIT,
// CONFIG_BOOTCOUNT_ENV) running the example environment
// (examples/uboot/ferry-env.txt). It is written from U-Boot's rules and
// the environment's own scripts, not from package bootenv, so that an
// off-by-one in ferry-agent's reading of the boot counter is caught: the
// slot the simulated device boots is the one the scripts load a kernel
// from.
//
// The environment is a plain name=value file (ferry-agent's "file" boot
// backend), read and written here without bootenv's code.

// ubootPartitions is the simulated board: mmc 0 partition 2 holds slot a,
// partition 3 slot b (as ferry-env.txt's comment lays it out).
var ubootPartitions = map[string]string{"0:2": "a", "0:3": "b"}

// ubootDefaultEnv returns the example's default environment.
func ubootDefaultEnv(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/uboot/ferry-env.txt")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readRawEnv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: line %q has no '='", path, line)
		}
		env[name] = value
	}
	return env, nil
}

// writeRawEnv is U-Boot's saveenv.
func writeRawEnv(path string, env map[string]string) error {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(&b, "%s=%s\n", name, env[name])
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// ubootBoot is one power-on of the board. env is the saved environment;
// it changes as U-Boot's boot counter changes it (and the caller saves
// it). It returns the slot whose kernel U-Boot started and the kernel
// command line.
func ubootBoot(env map[string]string) (slot, cmdline string, err error) {
	// CONFIG_BOOTCOUNT_ENV (drivers/bootcount/bootcount_env.c): the count
	// lives in "bootcount" and only counts while upgrade_available=1; it is
	// incremented and saved before anything boots.
	bootcount := 0
	if env["upgrade_available"] == "1" {
		n, err := strconv.ParseUint(env["bootcount"], 10, 32)
		if err != nil && env["bootcount"] != "" {
			return "", "", fmt.Errorf("bootcount=%q: %w", env["bootcount"], err)
		}
		bootcount = int(n) + 1
		env["bootcount"] = strconv.Itoa(bootcount)
	}
	// CONFIG_BOOTCOUNT_LIMIT (common/autoboot.c): a non-zero bootlimit
	// that bootcount exceeds runs altbootcmd instead of bootcmd.
	bootlimit, _ := strconv.ParseUint(env["bootlimit"], 10, 32)
	script := "bootcmd"
	if bootlimit != 0 && uint64(bootcount) > bootlimit {
		script = "altbootcmd"
	}
	h := &hush{env: maps.Clone(env)} // setenv without saveenv: not saved
	err = h.run(h.env[script])
	if !errors.Is(err, errBooted) {
		return "", "", fmt.Errorf("%s did not boot a kernel (%v)", script, err)
	}
	slot, ok := ubootPartitions[h.loaded]
	if !ok {
		return "", "", fmt.Errorf("%s booted a kernel loaded from mmc %q, no slot", script, h.loaded)
	}
	return slot, h.env["bootargs"], nil
}

var errBooted = errors.New("kernel started")

// hush runs the subset of U-Boot's shell the example environment uses:
// commands separated by ';' and '&&', if/then/else/fi, test A = B (and
// !=), setenv, echo, run, load and booti/bootz. Anything else is an error,
// so a script that grows a new construct fails here until it is modelled.
type hush struct {
	env    map[string]string
	loaded string // the mmc DEV:PART the last load read from
	depth  int
}

// word is one shell word: its pieces, each literal (single-quoted) or
// subject to ${var} expansion.
type word []struct {
	text    string
	literal bool
}

type token struct {
	op   string // ";", "&&" or "" for a word
	word word
}

func tokenize(s string) ([]token, error) {
	var toks []token
	var cur word
	inWord := false
	flush := func() {
		if inWord {
			toks = append(toks, token{word: cur})
		}
		cur, inWord = nil, false
	}
	add := func(text string, literal bool) {
		inWord = true
		if n := len(cur); n > 0 && !cur[n-1].literal && !literal {
			cur[n-1].text += text
			return
		}
		cur = append(cur, struct {
			text    string
			literal bool
		}{text, literal})
		inWord = true
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n':
			flush()
		case c == ';':
			flush()
			toks = append(toks, token{op: ";"})
		case c == '&' && i+1 < len(s) && s[i+1] == '&':
			flush()
			toks = append(toks, token{op: "&&"})
			i++
		case c == '"' || c == '\'':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated %c in %q", c, s)
			}
			add(s[i+1:i+1+end], c == '\'')
			i += end + 1
		default:
			add(string(c), false)
		}
	}
	flush()
	return toks, nil
}

func (h *hush) expand(w word) string {
	var b strings.Builder
	for _, p := range w {
		if p.literal {
			b.WriteString(p.text)
			continue
		}
		s := p.text
		for {
			i := strings.Index(s, "${")
			if i < 0 {
				b.WriteString(s)
				break
			}
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				b.WriteString(s)
				break
			}
			b.WriteString(s[:i])
			b.WriteString(h.env[s[i+2:i+end]])
			s = s[i+end+1:]
		}
	}
	return b.String()
}

func (h *hush) run(script string) error {
	if h.depth++; h.depth > 10 {
		return errors.New("run nested too deep")
	}
	defer func() { h.depth-- }()
	toks, err := tokenize(script)
	if err != nil {
		return err
	}
	rest, err := h.list(toks, true)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("unexpected %q", h.expand(rest[0].word))
	}
	return err
}

// isWord reports whether t is the unquoted keyword kw.
func isWord(t token, kw string) bool {
	return t.op == "" && len(t.word) == 1 && !t.word[0].literal && t.word[0].text == kw
}

// list runs (or, with exec false, only parses) commands until then, else
// or fi, which it leaves in the returned tokens. Its status is the last
// command's, as an error (nil: success).
func (h *hush) list(toks []token, exec bool) ([]token, error) {
	var status error
	for len(toks) > 0 {
		switch t := toks[0]; {
		case t.op != "":
			toks = toks[1:]
			continue
		case isWord(t, "then"), isWord(t, "else"), isWord(t, "fi"):
			return toks, status
		case isWord(t, "if"):
			var err error
			toks, status, err = h.ifClause(toks[1:], exec)
			if err != nil {
				return nil, err
			}
			continue
		}
		// A simple command, and more after each &&.
		ok := true
		for {
			var args []string
			for len(toks) > 0 && toks[0].op == "" && !isWord(toks[0], "fi") && !isWord(toks[0], "then") && !isWord(toks[0], "else") {
				args = append(args, h.expand(toks[0].word))
				toks = toks[1:]
			}
			if exec && ok {
				status = h.command(args)
				if errors.Is(status, errBooted) || errors.Is(status, errUnknown) {
					return nil, status
				}
				ok = status == nil
			}
			if len(toks) == 0 || toks[0].op != "&&" {
				break
			}
			toks = toks[1:]
		}
	}
	return toks, status
}

func (h *hush) ifClause(toks []token, exec bool) (rest []token, status, err error) {
	toks, cond := h.list(toks, exec)
	if len(toks) == 0 || !isWord(toks[0], "then") {
		return nil, nil, errors.New("if without then")
	}
	if errors.Is(cond, errBooted) || errors.Is(cond, errUnknown) {
		return nil, nil, cond
	}
	toks, thenStatus := h.list(toks[1:], exec && cond == nil)
	var elseStatus error
	if len(toks) > 0 && isWord(toks[0], "else") {
		toks, elseStatus = h.list(toks[1:], exec && cond != nil)
	}
	if len(toks) == 0 || !isWord(toks[0], "fi") {
		return nil, nil, errors.New("if without fi")
	}
	for _, s := range []error{thenStatus, elseStatus} {
		if errors.Is(s, errBooted) || errors.Is(s, errUnknown) {
			return nil, nil, s
		}
	}
	if cond == nil {
		return toks[1:], thenStatus, nil
	}
	return toks[1:], elseStatus, nil
}

var errUnknown = errors.New("unknown command")

func (h *hush) command(args []string) error {
	if len(args) == 0 {
		return nil
	}
	switch args[0] {
	case "test":
		if len(args) == 4 && args[2] == "=" && args[1] == args[3] || len(args) == 4 && args[2] == "!=" && args[1] != args[3] {
			return nil
		}
		if len(args) != 4 || args[2] != "=" && args[2] != "!=" {
			return fmt.Errorf("%w: test %q", errUnknown, args[1:])
		}
		return errors.New("false")
	case "setenv":
		if len(args) == 2 {
			delete(h.env, args[1])
		} else if len(args) > 2 {
			h.env[args[1]] = strings.Join(args[2:], " ")
		}
		return nil
	case "echo":
		return nil
	case "run":
		for _, v := range args[1:] {
			if err := h.run(h.env[v]); err != nil {
				return err
			}
		}
		return nil
	case "load":
		// load mmc DEV:PART ADDR FILE
		if len(args) < 3 || args[1] != "mmc" {
			return fmt.Errorf("%w: load %q", errUnknown, args[1:])
		}
		if _, ok := ubootPartitions[args[2]]; !ok {
			return fmt.Errorf("load: no partition mmc %s", args[2])
		}
		h.loaded = args[2]
		return nil
	case "booti", "bootz":
		if h.loaded == "" {
			return errors.New("boot: nothing loaded")
		}
		return errBooted
	}
	return fmt.Errorf("%w: %q", errUnknown, args[0])
}

// TestUBootModel checks the simulated bootloader against what
// examples/uboot/README.md says U-Boot does with the example environment.
func TestUBootModel(t *testing.T) {
	env := map[string]string{}
	for line := range strings.Lines(ubootDefaultEnv(t)) {
		if name, value, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(line, "#") {
			env[name] = value
		}
	}
	boot := func(want, wantCount string) {
		t.Helper()
		slot, cmdline, err := ubootBoot(env)
		if err != nil {
			t.Fatal(err)
		}
		if slot != want || !strings.Contains(cmdline, "ferry.slot="+want) || env["bootcount"] != wantCount {
			t.Fatalf("booted %s (%q), bootcount=%s; want %s, bootcount=%s", slot, cmdline, env["bootcount"], want, wantCount)
		}
	}
	boot("a", "0")
	boot("a", "0")
	// ferry-agent install: slot b on trial.
	env["ferry_slot"], env["upgrade_available"], env["bootcount"] = "b", "1", "0"
	boot("b", "1") // one attempt, not over bootlimit=1
	boot("a", "2") // over: altbootcmd boots the other slot
	boot("a", "3")
	// Committed: no more counting.
	env["ferry_slot"], env["upgrade_available"] = "b", "0"
	boot("b", "3")
	// Other scripts' vocabulary is refused, not guessed.
	env["bootcmd"] = "bootm 0x1000"
	if _, _, err := ubootBoot(env); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("an unknown command: %v", err)
	}
}
