package checkin

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// PayloadType names version 2 of the check-in: a signed Inventory in a
// DSSE envelope (docs/fleet.md). A new version gets a new payload type.
const PayloadType = "application/vnd.ferry.checkin.v2+json"

// Limits of a signed check-in.
const (
	// MaxEnvelopeSize bounds the whole POST body of a signed check-in.
	MaxEnvelopeSize = 64 << 10
	// MaxComponents bounds the components one check-in lists.
	MaxComponents = 256
	// MaxCounter is the largest counter (it is stored as a signed 64-bit
	// integer).
	MaxCounter = 1<<63 - 1
)

// Envelope is a DSSE envelope (github.com/secure-systems-lab/dsse):
// Payload is signed as PAE(PayloadType, Payload). A check-in carries
// exactly one signature, whose keyid is the device's id.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     []byte      `json:"payload"` // base64 in JSON
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature of an Envelope.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"` // base64 in JSON
}

// PAE is DSSE's pre-authentication encoding of a payload: what is signed.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// Inventory is what a device says about itself in a signed check-in
// (the payload of PayloadType). The first five fields authenticate it;
// the rest is the device's inventory.
type Inventory struct {
	// Mirror is the id of the mirror the report is meant for (MirrorID
	// of the mirror TUF root the device trusts): another mirror refuses it.
	Mirror string `json:"mirror"`
	// Device is the device's id: DeviceID(PublicKey).
	Device string `json:"device"`
	// PublicKey is the device's raw Ed25519 public key (32 bytes).
	PublicKey []byte `json:"publicKey"`
	// Counter rises with every check-in the device signs: the mirror
	// refuses one not above the last it accepted from the device.
	Counter uint64 `json:"counter"`
	// Time is when the device made the report, by its own clock.
	Time time.Time `json:"time"`

	// Name is the device's label (the agent's device_id setting, by
	// default its host name): informative, not unique.
	Name         string `json:"name,omitempty"`
	DeviceType   string `json:"deviceType"`
	AgentVersion string `json:"agentVersion"`
	// Bundle and Version are the bundle the device runs and its version
	// ("0.0.0" when it runs a factory image from no bundle).
	Bundle     string      `json:"bundle,omitempty"`
	Version    string      `json:"version"`
	Components []Component `json:"components"`
	Slot       SlotState   `json:"slot"`
	// Result is how the last install ended, in the agent's words (idle,
	// committed, rolled-back, refused, failed, ...); Error why, if it failed.
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// Install says which install Result and Error are about (absent:
	// none was journaled).
	Install *Install `json:"install,omitempty"`
	// FreeBytes is the space left to unprivileged users on the file
	// system of the agent's state directory.
	FreeBytes uint64 `json:"freeBytes"`
	// UptimeSeconds is how long the device has run since it booted.
	UptimeSeconds uint64 `json:"uptimeSeconds"`
}

// Install names the install a check-in's result is about: the bundle
// and version it installed and, when the device installed it because the
// mirror assigned it (docs/fleet.md, "Assignments"), that assignment's
// deployment and counter, so that the mirror counts the result against
// the deployment once, and never a result older than the assignment.
type Install struct {
	Bundle     string `json:"bundle"`
	Version    string `json:"version"`
	Deployment int64  `json:"deployment,omitempty"`
	Assignment uint64 `json:"assignment,omitempty"`
}

// Component is one installed component and its version.
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Slot is the A/B slot it lives in ("a" or "b"), "" for one
	// installed without an A/B payload.
	Slot string `json:"slot,omitempty"`
}

// SlotState is the device's A/B state.
type SlotState struct {
	// Booted is the slot that runs ("a" or "b"); "" without A/B slots.
	Booted string `json:"booted,omitempty"`
	// Trial says an update is on trial, waiting for its health check.
	Trial bool `json:"trial"`
	// Fallback says the bootloader fell back to the other slot by itself.
	Fallback bool `json:"fallback"`
}

// Reason is why a mirror refused a check-in, in one word: the "reason"
// of its error answer, and what its log says.
type Reason string

// Reasons a mirror refuses a check-in for (docs/fleet.md).
const (
	Malformed    Reason = "malformed"     // 400: not a valid check-in
	ClockAhead   Reason = "clock-ahead"   // 400: dated too far ahead of the mirror's clock
	Unsigned     Reason = "unsigned"      // 401: a version 1 check-in, and the mirror takes no legacy devices
	BadSignature Reason = "bad-signature" // 401: the signature does not verify: forged or damaged
	Rejected     Reason = "rejected"      // 403: an operator rejected the device
	Revoked      Reason = "revoked"       // 403: an operator revoked the device's key
	Replayed     Reason = "replayed"      // 409: the counter is not above the last accepted
	Foreign      Reason = "foreign"       // 421: meant for another mirror
)

// RefusedError is a check-in refused, with its Reason.
type RefusedError struct {
	Reason Reason
	Msg    string
}

func (e *RefusedError) Error() string { return "check-in refused (" + string(e.Reason) + "): " + e.Msg }

func refused(r Reason, format string, a ...any) *RefusedError {
	return &RefusedError{Reason: r, Msg: fmt.Sprintf(format, a...)}
}

// DeviceID is a device's id: the hex SHA-256 of its public key's DER
// SubjectPublicKeyInfo, the id 'ferry key show' prints for the same key.
func DeviceID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil { // only for a key that is not 32 bytes
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// MirrorID is the id of the mirror whose TUF root (root.json, any
// version) is rootJSON: the hex SHA-256 of the root role's key ids,
// sorted and joined by newlines. It stays the same across root versions
// until the root keys themselves change; a mirror answers to the ids of
// every root version it has published.
func MirrorID(rootJSON []byte) (string, error) {
	var r struct {
		Signed struct {
			Type  string `json:"_type"`
			Roles map[string]struct {
				KeyIDs []string `json:"keyids"`
			} `json:"roles"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(rootJSON, &r); err != nil {
		return "", fmt.Errorf("mirror TUF root: %w", err)
	}
	role, ok := r.Signed.Roles["root"]
	if r.Signed.Type != "root" || !ok || len(role.KeyIDs) == 0 {
		return "", errors.New("mirror TUF root: no root role keys: not a TUF root.json")
	}
	ids := append([]string(nil), role.KeyIDs...)
	sort.Strings(ids)
	sum := sha256.Sum256([]byte(strings.Join(ids, "\n")))
	return hex.EncodeToString(sum[:]), nil
}

var (
	hexIDRE        = regexp.MustCompile(`^[0-9a-f]{64}$`)
	componentRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	agentVersionRE = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
)

// Validate checks every field of inv but the signature.
func (inv *Inventory) Validate() error {
	if !hexIDRE.MatchString(inv.Mirror) {
		return &FieldError{"mirror", "want a mirror id: 64 lower-case hex digits"}
	}
	if len(inv.PublicKey) != ed25519.PublicKeySize {
		return &FieldError{"publicKey", fmt.Sprintf("%d bytes, want an Ed25519 key of %d", len(inv.PublicKey), ed25519.PublicKeySize)}
	}
	if id := DeviceID(inv.PublicKey); inv.Device != id {
		return &FieldError{"device", fmt.Sprintf("%q is not the id of the public key (%s)", truncate(inv.Device, 64), id)}
	}
	if inv.Counter == 0 || inv.Counter > MaxCounter {
		return &FieldError{"counter", fmt.Sprintf("%d: want 1 to %d", inv.Counter, uint64(MaxCounter))}
	}
	if inv.Time.IsZero() {
		return &FieldError{"time", "missing"}
	}
	if y := inv.Time.Year(); y < 2000 || y > 9999 {
		return &FieldError{"time", fmt.Sprintf("year %d out of range", y)}
	}
	r := Report{DeviceID: inv.Name, DeviceType: inv.DeviceType, Bundle: inv.Bundle, Version: inv.Version, Result: inv.Result, Time: inv.Time, Error: inv.Error}
	if r.DeviceID == "" {
		r.DeviceID = "x" // the name is optional; the rest is checked as in version 1
	}
	if err := r.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) && fe.Field == "deviceId" {
			fe.Field = "name"
		}
		return err
	}
	if !agentVersionRE.MatchString(inv.AgentVersion) {
		return &FieldError{"agentVersion", "want 1 to 128 printable ASCII characters, no spaces"}
	}
	if len(inv.Components) > MaxComponents {
		return &FieldError{"components", fmt.Sprintf("%d, at most %d", len(inv.Components), MaxComponents)}
	}
	for i, c := range inv.Components {
		f := fmt.Sprintf("components[%d]", i)
		if !componentRE.MatchString(c.Name) {
			return &FieldError{f + ".name", "want a component name: lower-case letters, digits, '.', '_' or '-', at most 128"}
		}
		if !versionRE.MatchString(c.Version) {
			return &FieldError{f + ".version", "want a version such as 1.4.2, at most 128 characters"}
		}
		if c.Slot != "" && c.Slot != "a" && c.Slot != "b" {
			return &FieldError{f + ".slot", "want a, b or nothing"}
		}
	}
	if s := inv.Slot.Booted; s != "" && s != "a" && s != "b" {
		return &FieldError{"slot.booted", "want a, b or nothing"}
	}
	if inv.Install != nil {
		return inv.Install.Validate()
	}
	return nil
}

// Validate checks an Install.
func (in *Install) Validate() error {
	if in.Bundle == "" {
		return &FieldError{"install.bundle", "missing"}
	}
	r := Report{DeviceID: "x", DeviceType: "x", Bundle: in.Bundle, Version: in.Version, Result: "x", Time: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := r.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Field = "install." + fe.Field
		}
		return err
	}
	if in.Deployment < 0 || in.Assignment > MaxCounter {
		return &FieldError{"install", "deployment and assignment are 0 to 2^63-1"}
	}
	return nil
}

// Sign makes the signed check-in of inv: the JSON of a DSSE envelope,
// signed with key, whose public half must be inv's.
func Sign(inv *Inventory, key ed25519.PrivateKey) ([]byte, error) {
	if pub, ok := key.Public().(ed25519.PublicKey); !ok || !pub.Equal(ed25519.PublicKey(inv.PublicKey)) {
		return nil, errors.New("sign check-in: the key is not the one the check-in names")
	}
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(inv)
	if err != nil {
		return nil, err
	}
	env := Envelope{PayloadType: PayloadType, Payload: payload,
		Signatures: []Signature{{KeyID: inv.Device, Sig: ed25519.Sign(key, PAE(PayloadType, payload))}}}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("sign check-in: %d bytes, more than %d", len(b), MaxEnvelopeSize)
	}
	return b, nil
}

// IsSigned reports whether body looks like a signed check-in (a JSON
// object with a payloadType) rather than a version 1 Report. It judges
// nothing: OpenSigned does.
func IsSigned(body []byte) bool {
	var probe struct {
		PayloadType *string `json:"payloadType"`
	}
	return json.Unmarshal(body, &probe) == nil && probe.PayloadType != nil
}

// OpenSigned parses a signed check-in and verifies its signature with
// the public key it names. A check-in that is not well formed is a
// *FieldError or a *RefusedError with reason Malformed; one whose
// signature does not verify, a *RefusedError with reason BadSignature.
// Whether the key belongs to an enrolled device, the counter and the
// mirror id are for the caller to judge.
func OpenSigned(body []byte) (*Inventory, error) {
	if len(body) > MaxEnvelopeSize {
		return nil, ErrTooLarge
	}
	var env Envelope
	if err := decodeObject(body, &env); err != nil {
		return nil, refused(Malformed, "envelope: %v", err)
	}
	if env.PayloadType != PayloadType {
		return nil, refused(Malformed, "payload type %q: want %s", truncate(env.PayloadType, 64), PayloadType)
	}
	if len(env.Signatures) != 1 {
		return nil, refused(Malformed, "%d signatures: want exactly one, the device's", len(env.Signatures))
	}
	var inv Inventory
	if err := decodeObject(env.Payload, &inv); err != nil {
		return nil, refused(Malformed, "payload: %v", err)
	}
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	sig := env.Signatures[0]
	if sig.KeyID != inv.Device {
		return nil, refused(BadSignature, "signature key id %q is not the device's %s", truncate(sig.KeyID, 64), inv.Device)
	}
	if !ed25519.Verify(inv.PublicKey, PAE(env.PayloadType, env.Payload), sig.Sig) {
		return nil, refused(BadSignature, "the signature of device %s does not verify", inv.Device)
	}
	return &inv, nil
}

// decodeObject decodes exactly one JSON object from b into v.
func decodeObject(b []byte, v any) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// TrimError shortens an error message to at most MaxErrorSize bytes of
// valid UTF-8, for Inventory.Error and Report.Error.
func TrimError(msg string) string {
	if len(msg) <= MaxErrorSize {
		return msg
	}
	n := MaxErrorSize
	for n > 0 && !utf8.RuneStart(msg[n]) {
		n--
	}
	return msg[:n]
}
