package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/ferry-update/ferry/agent"
	"github.com/ferry-update/ferry/agent/bootenv"
	"github.com/ferry-update/ferry/agent/module"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/internal/filekind"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/verify"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, nil)) }

// run runs one command. configure, when set, adjusts the configuration
// after it is loaded (tests use it to inject faults).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, configure func(*agent.Config)) int {
	s := &streams{in: stdin, out: stdout, err: stderr, log: display.NewLog(stderr), configure: configure}
	err := program.Execute(context.Background(), newRootCommand(s), args)
	s.log.Flush()
	return program.Exit(stderr, err)
}

// program is how ferry-agent runs and ends: the same usage errors,
// version, exit codes and error lines as ferry's (package cliexit).
var program = cliexit.Program{Name: "ferry-agent", Refused: refused, Hint: hint}

// refused says whether err refuses a bundle (exit code 3).
func refused(err error) bool {
	var re *agent.RefusedError
	return errors.As(err, &re)
}

func hint(err error) string {
	var ce *agent.ConfigError
	var cre *agent.ConfigReadError
	var re *verify.RootError
	var ve *agent.VersionError
	var de *agent.DependencyError
	var fe *filekind.Error
	var me *checkin.MirrorError
	var nre *bundle.NotRecipientError
	var ae *assign.Error
	switch {
	case errors.As(err, &nre):
		return "nothing was written. The bundle is not encrypted to this device: re-encrypt it with the device among the recipients (ferry bundle reencrypt FILE --identity KEY --encrypt-to-file LIST, with this device's recipient from 'ferry-agent identity')"
	case errors.As(err, &ae) && ae.Reason == assign.BadSignature:
		return "the assignment is not signed by a key the mirror's signed metadata publishes: a forged answer, or a mirror that has not published its assignment key ('ferry fleet deploy' does)"
	case errors.As(err, &ae) && ae.Reason == assign.Expired:
		return "an assignment past its expiry: check the device's clock, and that the answer comes from the mirror itself"
	case errors.As(err, &ae) && ae.Reason == assign.Foreign:
		return "the assignment is for another device or mirror: the answer did not come from the mirror for this device"
	case errors.As(err, &ae) && ae.Reason == assign.Replayed:
		return "an older assignment than one this device accepted: a replayed answer"
	case errors.As(err, &me) && me.Reason == checkin.Foreign:
		return "[mirror] tuf_root is another mirror's TUF root: give the device this mirror's tuf/root.json"
	case errors.As(err, &me) && (me.Reason == checkin.Revoked || me.Reason == checkin.Rejected):
		return "an operator refused this device on the mirror ('ferry mirror devices show DIR ID' there); 'ferry-agent identity' prints its id"
	case errors.As(err, &me) && me.Reason == checkin.Replayed:
		return "the mirror accepted a higher counter from this device before: was its state directory restored from a copy, or its clock set back? Later check-ins count on from the clock"
	case errors.As(err, &me) && me.Reason == checkin.Unsigned:
		return "the mirror takes signed check-ins only; this agent sent an unsigned one"
	case errors.As(err, &me) && me.Reason == checkin.BadSignature:
		return "the mirror could not verify the device's signature: was the check-in changed on its way (a proxy)?"
	case errors.As(err, &fe) && fe.Hint() != "":
		return fe.Hint()
	case errors.As(err, &re) && re.Kind == verify.RootExpired:
		return "the device's trust root has expired: renew it where the root keys are (ferry trust renew ROOT --sign KEY) and give the device the new version (ferry-agent trust update N.root.json, a mirror or a stick)"
	case errors.As(err, &ve) && errors.Is(ve, agent.ErrSameVersion):
		return fmt.Sprintf("to install %s %s again, set allow_same_version = true under [policy.components.%s]", ve.Component, ve.Version, tomlKey(ve.Component))
	case errors.As(err, &ve):
		return fmt.Sprintf("to permit downgrading %s only, set allow_downgrade = true under [policy.components.%s]; anti-rollback stays on for every other component", ve.Component, tomlKey(ve.Component))
	case errors.As(err, &de):
		return fmt.Sprintf("nothing was written; install a bundle that provides %s first ('ferry-agent status' lists the installed components)", de.Dependency)
	case errors.As(err, &ce):
		return "see examples/agent/ferry-agent.toml for every setting"
	case errors.As(err, &cre) && errors.Is(cre, fs.ErrNotExist):
		return "give the configuration with --config FILE, or install one at /etc/ferry/agent.toml (examples/agent/ferry-agent.toml documents every setting)"
	case errors.Is(err, bundle.ErrTruncated):
		return "the bundle is incomplete: copy or download it again"
	case errors.Is(err, agent.ErrNoPrevious):
		return "nothing was changed; 'ferry-agent status' shows what each slot was last committed with. To go back to an older release, install its bundle (allow_downgrade = true under [policy.components.NAME] if it is older)"
	case errors.Is(err, agent.ErrPending):
		return "run 'ferry-agent status' to see it"
	case errors.Is(err, bootenv.ErrNoValidEnv):
		return "the boot environment is missing or corrupt; the bootloader uses its built-in defaults. Restore it (fw_setenv, grub-editenv; for the efi backend the slots' boot entries and BootOrder, efibootmgr -v shows them) before installing"
	case errors.Is(err, agent.ErrSlotDevice):
		return "nothing was written; fix the slot configuration or the device"
	case errors.Is(err, http.ErrSchemeMismatch):
		return "the registry speaks plain http: add --plain-http (or set plain_http under [source])"
	case errors.Is(err, module.ErrNoModule):
		return "install the update module in the modules directory ([modules] dir) and try again"
	}
	return ""
}

// tomlKey writes a component name as a TOML key: bare when it can be,
// quoted when it holds a dot.
func tomlKey(name string) string {
	if strings.Contains(name, ".") {
		return strconv.Quote(name)
	}
	return name
}
