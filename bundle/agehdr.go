package bundle

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"golang.org/x/crypto/hkdf"
)

// The age header (FORMAT.md §6.3): the file key of a bundle's encrypted
// payloads, wrapped for each recipient, in the age v1 header syntax
// (age-encryption.org/v1, C2SP). ferry writes and parses it itself rather
// than through package age because one bundle's header is shared by all
// its encrypted payloads and may hold more recipients than age's own
// parser accepts (1024); the wrapping and unwrapping of the file key
// (age.Recipient.Wrap, age.Identity.Unwrap) are age's.

const (
	ageIntro        = "age-encryption.org/v1\n"
	ageFooter       = "---"
	ageColumns      = 64
	ageBytesPerLine = ageColumns / 4 * 3
	fileKeySize     = 16
	macSize         = 32
	// maxStanzaArgs bounds the arguments of one stanza, as age does.
	maxStanzaArgs = 128
)

var ageB64 = base64.RawStdEncoding.Strict()

// AgeHeader is a parsed age header: the recipient stanzas and the MAC
// that binds them to the file key.
type AgeHeader struct {
	Stanzas []*age.Stanza
	MAC     []byte
	// macEnd is the length of the bytes the MAC covers (through "---").
	macEnd int
	raw    []byte
}

// Recipients is the number of recipient stanzas: one per recipient for
// X25519 recipients.
func (h *AgeHeader) Recipients() int { return len(h.Stanzas) }

// HeaderError says an age header is malformed; Line is 1-based.
type HeaderError struct {
	Line int
	Err  error
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("age header line %d: %v", e.Line, e.Err)
}

func (e *HeaderError) Unwrap() error { return e.Err }

// ParseAgeHeader parses b, which must be exactly one age v1 header: the
// intro line, at least one stanza, and the MAC line, with nothing after
// it. It is strict in the ways age is (canonical base64, body lines of 64
// columns but the last, printable arguments), so a header reads one way
// only. It does not check the MAC, which needs the file key (Unwrap).
func ParseAgeHeader(b []byte) (*AgeHeader, error) {
	h := &AgeHeader{raw: b}
	rest := b
	line := 0
	next := func() (string, error) {
		line++
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", &HeaderError{Line: line, Err: fmt.Errorf("no end of line: %w", ErrTruncated)}
		}
		l := string(rest[:i])
		rest = rest[i+1:]
		return l, nil
	}
	fail := func(format string, args ...any) error {
		return &HeaderError{Line: line, Err: fmt.Errorf(format, args...)}
	}
	intro, err := next()
	if err != nil {
		return nil, err
	}
	if intro+"\n" != ageIntro {
		return nil, fail("not an age v1 header (want %q)", strings.TrimSpace(ageIntro))
	}
	for {
		start := len(b) - len(rest)
		l, err := next()
		if err != nil {
			return nil, err
		}
		if prefix, arg, _ := strings.Cut(l, " "); prefix == ageFooter {
			mac, err := ageB64.DecodeString(arg)
			if err != nil || len(mac) != macSize || strings.Contains(arg, " ") {
				return nil, fail("malformed MAC line")
			}
			if len(h.Stanzas) == 0 {
				return nil, fail("no recipient stanzas")
			}
			if len(rest) != 0 {
				return nil, fail("%d bytes after the MAC line", len(rest))
			}
			h.MAC, h.macEnd = mac, start+len(ageFooter)
			return h, nil
		}
		args := strings.Split(l, " ")
		if args[0] != "->" || len(args) < 2 || len(args) > maxStanzaArgs+2 {
			return nil, fail("malformed stanza opening line")
		}
		for _, a := range args[1:] {
			if !validArg(a) {
				return nil, fail("stanza argument %q: want printable ASCII", a)
			}
		}
		s := &age.Stanza{Type: args[1], Args: args[2:], Body: []byte{}}
		for {
			l, err := next()
			if err != nil {
				return nil, err
			}
			if len(l) > ageColumns {
				return nil, fail("stanza body line longer than %d columns", ageColumns)
			}
			body, err := ageB64.DecodeString(l)
			if err != nil || strings.ContainsAny(l, "\r") {
				return nil, fail("stanza body line is not canonical base64")
			}
			s.Body = append(s.Body, body...)
			if len(l) < ageColumns {
				break
			}
		}
		h.Stanzas = append(h.Stanzas, s)
	}
}

func validArg(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// marshalAgeHeader writes stanzas as an age header whose MAC is made with
// fileKey.
func marshalAgeHeader(fileKey []byte, stanzas []*age.Stanza) ([]byte, error) {
	if len(stanzas) == 0 {
		return nil, errors.New("no recipients")
	}
	var b bytes.Buffer
	b.WriteString(ageIntro)
	for _, s := range stanzas {
		if !validArg(s.Type) {
			return nil, fmt.Errorf("stanza type %q: want printable ASCII", s.Type)
		}
		b.WriteString("-> " + s.Type)
		for _, a := range s.Args {
			if !validArg(a) {
				return nil, fmt.Errorf("stanza argument %q: want printable ASCII", a)
			}
			b.WriteString(" " + a)
		}
		b.WriteByte('\n')
		enc := ageB64.EncodeToString(s.Body)
		for len(enc) >= ageColumns {
			b.WriteString(enc[:ageColumns] + "\n")
			enc = enc[ageColumns:]
		}
		b.WriteString(enc + "\n") // the last line is short, maybe empty
	}
	b.WriteString(ageFooter)
	mac, err := headerMAC(fileKey, b.Bytes())
	if err != nil {
		return nil, err
	}
	b.WriteString(" " + ageB64.EncodeToString(mac) + "\n")
	return b.Bytes(), nil
}

// headerMAC is age's header MAC: HMAC-SHA-256 keyed with
// HKDF-SHA-256(file key, no salt, "header") over the header through "---".
func headerMAC(fileKey, covered []byte) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, fileKey, nil, []byte("header")), key); err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(covered)
	return m.Sum(nil), nil
}

// NewAgeHeader makes a new file key and an age header wrapping it for
// every recipient.
func NewAgeHeader(recipients []age.Recipient) (header, fileKey []byte, err error) {
	fileKey = make([]byte, fileKeySize)
	if _, err := rand.Read(fileKey); err != nil {
		return nil, nil, err
	}
	header, err = WrapFileKey(fileKey, recipients)
	return header, fileKey, err
}

// WrapFileKey makes an age header wrapping fileKey for every recipient.
func WrapFileKey(fileKey []byte, recipients []age.Recipient) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, errors.New("encrypt: no recipients")
	}
	var stanzas []*age.Stanza
	for i, r := range recipients {
		s, err := r.Wrap(fileKey)
		if err != nil {
			return nil, fmt.Errorf("encrypt: wrap the file key for recipient %d: %w", i+1, err)
		}
		stanzas = append(stanzas, s...)
	}
	return marshalAgeHeader(fileKey, stanzas)
}

// NotRecipientError says that none of the identities can unwrap the
// header's file key: the bundle was not encrypted to this device.
type NotRecipientError struct {
	// Recipients is the number of recipient stanzas in the header.
	Recipients int
	// Identities are the recipients (public) of the identities tried,
	// where known.
	Identities []string
}

func (e *NotRecipientError) Error() string {
	who := "the identity given"
	if len(e.Identities) > 0 {
		who = strings.Join(e.Identities, ", ")
	}
	return fmt.Sprintf("not a recipient: the payloads are encrypted to %d recipient(s), and %s is not one of them", e.Recipients, who)
}

// Unwrap returns the file key of h for the first identity that can unwrap
// it, after checking the header's MAC with it. None: *NotRecipientError.
func (h *AgeHeader) Unwrap(ids ...age.Identity) ([]byte, error) {
	nre := &NotRecipientError{Recipients: len(h.Stanzas)}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			nre.Identities = append(nre.Identities, x.Recipient().String())
		}
		fk, err := id.Unwrap(h.Stanzas)
		if errors.Is(err, age.ErrIncorrectIdentity) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("age header: %w", err)
		}
		if len(fk) != fileKeySize {
			return nil, fmt.Errorf("age header: file key of %d bytes, want %d", len(fk), fileKeySize)
		}
		mac, err := headerMAC(fk, h.raw[:h.macEnd])
		if err != nil {
			return nil, err
		}
		if !hmac.Equal(mac, h.MAC) {
			return nil, errors.New("age header: bad MAC (the header was altered)")
		}
		return fk, nil
	}
	return nil, nre
}
