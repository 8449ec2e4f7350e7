package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/internal/filekind"
	"github.com/ferry-update/ferry/internal/outpath"
	"github.com/ferry-update/ferry/mirror/operator"
	"github.com/ferry-update/ferry/signing"
	"github.com/ferry-update/ferry/verify"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := &streams{in: stdin, out: stdout, err: stderr}
	defer s.closeKeys()
	return program.Run(context.Background(), newRootCommandWith(s), args, stderr)
}

// program is how ferry runs and ends: usage errors, version, exit codes
// and error lines (package cliexit).
var program = cliexit.Program{Name: "ferry", Refused: refused, Denied: denied, Hint: hint}

// denied says whether err is a mirror refusing an API token or its role
// (exit code 4).
func denied(err error) bool {
	var api *operator.APIError
	return errors.As(err, &api) && (api.Reason == operator.ReasonUnauthenticated || api.Reason == operator.ReasonForbidden)
}

// refused says whether err refuses a bundle (exit code 3).
func refused(err error) bool {
	var be *bundle.Error
	var te *verify.ThresholdError
	var de *verify.DeviceTypeError
	var fe *filekind.Error
	return errors.As(err, &be) || (errors.As(err, &fe) && fe.Want == filekind.Bundle) || errors.As(err, &te) || errors.As(err, &de) || errors.Is(err, errRejected)
}

// errRejected is returned by commands that already printed why a bundle was
// refused.
var errRejected = errors.New("bundle rejected")

func hint(err error) string {
	var te *verify.ThresholdError
	var re *verify.RootError
	var ee *outpath.ExistsError
	var ie *outpath.InputError
	var fe *filekind.Error
	var nf *devices.NotFoundError
	var amb *devices.AmbiguousError
	var se *devices.StatusError
	var ue *signing.UnavailableError
	var knf *signing.NotFoundError
	var nre *bundle.NotRecipientError
	var rce *bundle.RecipientError
	var na *devices.NoAccountError
	var api *operator.APIError
	var kmse *signing.KMSError
	var fle *devices.FilterError
	var gnf *devices.GroupNotFoundError
	var dnf *devices.DeploymentNotFoundError
	var ste *devices.StateError
	var ae *devices.ApprovalError
	var bnf *fleet.BundleNotFoundError
	var nae *fleet.NothingAssignedError
	switch {
	case errors.As(err, &api) && api.Reason == operator.ReasonUnauthenticated:
		return "the token is not valid on that mirror (revoked, expired or mistyped): make one with 'ferry fleet tokens create DIR --user NAME' on the mirror"
	case errors.As(err, &api) && api.Reason == operator.ReasonForbidden:
		return "this needs an operator's token (a read-only one only reads): 'ferry fleet tokens create DIR --user NAME' on the mirror, for a user with the operator role"
	case errors.As(err, &api) && api.Reason == operator.ReasonRateLimited:
		return "too many failed attempts from this machine: wait a minute, then try again with a valid token"
	case errors.As(err, &ue) && ue.Kind == "PKCS#11":
		return "this ferry was built without cgo or with -tags nopkcs11; build it with CGO_ENABLED=1 (the default where a C compiler is installed)"
	case errors.As(err, &ue):
		return "sign with a key in a PKCS#11 token (pkcs11:…), a Vault transit key (hashivault://NAME) or a key file"
	case errors.As(err, &kmse):
		return "hashivault:// keys are Vault transit keys: set VAULT_ADDR and VAULT_TOKEN (and TRANSIT_SECRET_ENGINE_PATH unless the engine is mounted at transit/), as for cosign"
	case errors.As(err, &knf) && knf.What == "token":
		return "the URI's token= (or serial=, slot-id=) must name one of the tokens listed; softhsm2-util --show-slots or pkcs11-tool --list-slots lists them too"
	case errors.As(err, &knf):
		return "the URI's object= (or id=) must name a private key in the token; make one with 'ferry key generate --token URI'"
	case errors.As(err, &nre):
		return "give --identity an age identity of one of the bundle's recipients (a device's identity/device.age, or a key kept for this)"
	case errors.As(err, &rce):
		return "a recipient is age1… as 'ferry-agent identity' prints it; a recipients file holds one per line, or lines of 'ferry-agent identity --json'"
	case errors.Is(err, errNoIdentity), errors.Is(err, bundle.ErrLocked):
		return "add --identity FILE: an age identity of one of the bundle's recipients"
	case errors.As(err, &na) && na.What == "user":
		return "'ferry fleet users list DIR' lists the operator accounts"
	case errors.As(err, &na) && na.What == "token":
		return "'ferry fleet tokens list DIR' lists the tokens' ids"
	case errors.Is(err, devices.ErrExists):
		return "pick another name; 'ferry fleet users passwd DIR NAME' changes a password"
	case errors.As(err, &fle):
		return "a filter is conditions such as: type = board-a and site = plant-2 and component.sim-os < 2.0.0 (see 'ferry fleet groups --help')"
	case errors.As(err, &gnf):
		return "'ferry fleet groups DIR' lists the groups; make one with 'ferry fleet groups DIR NAME --devices ID,...' or '--filter EXPR'"
	case errors.As(err, &dnf):
		return "'ferry fleet deployments DIR' lists the deployments with their numbers"
	case errors.As(err, &nae):
		return "ingest the reports of the devices of this phase ('ferry mirror ingest DIR STICK'); once the phase ends (its soak time after the last report) its next phase's devices are assigned: build the stick then"
	case errors.As(err, &ste) && ste.State == devices.Paused:
		return "resume it ('ferry fleet resume DIR ID') or abort it"
	case errors.As(err, &ste) && ste.State == devices.AwaitingApproval:
		return "another operator approves it first: ferry fleet approve DIR ID --operator NAME"
	case errors.As(err, &ste):
		return "'ferry fleet status DIR ID' shows where it stands; deploy again to start over"
	case errors.As(err, &ae):
		return "a second operator approves it (not the one who made it): ferry fleet approve DIR ID --operator NAME, or with their own token on a mirror's URL"
	case errors.As(err, &bnf) && len(bnf.Versions) > 0:
		return "the mirror holds " + strings.Join(bnf.Versions, ", ") + " of it; add the bundle first: ferry mirror add DIR BUNDLE"
	case errors.As(err, &bnf):
		return "add the bundle to the mirror first (ferry mirror add DIR BUNDLE); 'ferry mirror list DIR' shows what it holds"
	case errors.As(err, &nf), errors.As(err, &amb):
		return "'ferry mirror devices list DIR' lists the devices with their ids; give a whole id or a unique prefix of 8 hex digits or more"
	case errors.As(err, &se) && se.From == devices.Revoked:
		return "make the device a new key (remove its identity/device.key and restart ferry-agent), then enroll or approve the new id"
	case errors.As(err, &se) && se.From == devices.Enrolled && se.To == devices.Rejected:
		return "to cut off an enrolled device, revoke it: ferry mirror devices revoke DIR ID"
	case errors.As(err, &fe) && fe.Hint() != "":
		return fe.Hint()
	case errors.Is(err, errUnsigned):
		return "add --key KEY to sign it, or --unsigned to make it without signatures and sign it later (ferry bundle sign)"
	case errors.As(err, &ee):
		return "add --force to replace it, or write somewhere else"
	case errors.As(err, &ie):
		return "write the output to another file: no command writes over its own input, not even with --force"
	case errors.Is(err, verify.ErrEncryptedKey):
		return "set FERRY_KEY_PASSPHRASE or run from a terminal to be asked for it"
	case errors.As(err, &te):
		return "sign with more trusted keys (ferry bundle sign FILE --key KEY), or check against the right keys (--key PUB or --trust ROOT)"
	case errors.As(err, &re) && re.Kind == verify.RootExpired:
		return renewHint(err)
	case errors.Is(err, bundle.ErrTruncated):
		return "the file is incomplete: copy or download it again"
	}
	return ""
}

// renewHint is the command that renews an expired root: in place when the
// error names the file (KEY: a private key of its root role, as many as
// its threshold).
func renewHint(err error) string {
	path := "ROOT"
	var fe *rootFileError
	if errors.As(err, &fe) {
		path = display.ShellQuote(fe.Path)
	}
	return "renew it, signed by its root role's keys (KEY: a private key of that role; --sign as many as its threshold): ferry trust renew " + path + " --sign KEY"
}
