package devices

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/ferry-update/ferry/transport/checkin"
)

// MaxEnrollFile bounds an enrollment list (some 100,000 devices).
const MaxEnrollFile = 64 << 20

// EnrollFileError says what is wrong with an entry of an enrollment list.
type EnrollFileError struct {
	Line int // 1-based; for PEM, the line the block starts on
	Msg  string
}

func (e *EnrollFileError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

var (
	nameRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)
	deviceTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
)

// ParseEnrollments reads a factory line's enrollment list (docs/fleet.md):
// either JSON lines, each what 'ferry-agent identity --json' prints
// ({"id", "publicKey" (PEM), "name", "deviceType"}, and optionally
// "labels": {"site": "plant-2", "line": "3"}; only publicKey is
// required, an id must match it), or PEM PUBLIC KEY blocks. Blank lines
// and lines starting with '#' are skipped in JSON lines. Every key must be
// Ed25519; one entry that is not valid fails the whole list, so a list is
// enrolled whole or not at all.
func ParseEnrollments(data []byte) ([]Enrollment, error) {
	if len(data) > MaxEnrollFile {
		return nil, fmt.Errorf("enrollment list of %d bytes: at most %d", len(data), MaxEnrollFile)
	}
	if t := bytes.TrimSpace(data); bytes.HasPrefix(t, []byte("-----BEGIN")) {
		return parsePEMs(data)
	}
	var out []Enrollment
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var e struct {
			ID         string            `json:"id"`
			PublicKey  string            `json:"publicKey"`
			Name       string            `json:"name"`
			DeviceType string            `json:"deviceType"`
			Labels     map[string]string `json:"labels"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, &EnrollFileError{i + 1, fmt.Sprintf("not a JSON object as 'ferry-agent identity --json' prints: %v", err)}
		}
		blk, rest := pem.Decode([]byte(e.PublicKey))
		if blk == nil || len(bytes.TrimSpace(rest)) != 0 {
			return nil, &EnrollFileError{i + 1, "publicKey: want one PEM PUBLIC KEY block"}
		}
		en, err := enrollment(blk, e.Name, e.DeviceType)
		if err != nil {
			return nil, &EnrollFileError{i + 1, err.Error()}
		}
		if len(e.Labels) > MaxLabels {
			return nil, &EnrollFileError{i + 1, fmt.Sprintf("%d labels: at most %d", len(e.Labels), MaxLabels)}
		}
		for k, v := range e.Labels {
			if err := checkLabel(k, v); err != nil {
				return nil, &EnrollFileError{i + 1, err.Error()}
			}
		}
		en.Labels = e.Labels
		if id := checkin.DeviceID(en.PublicKey); e.ID != "" && e.ID != id {
			return nil, &EnrollFileError{i + 1, fmt.Sprintf("id %q is not the id of its public key (%s)", e.ID, id)}
		}
		out = append(out, en)
	}
	if len(out) == 0 {
		return nil, errors.New("no device in the enrollment list")
	}
	return out, nil
}

func parsePEMs(data []byte) ([]Enrollment, error) {
	var out []Enrollment
	rest := data
	for {
		line := bytes.Count(data[:len(data)-len(rest)], []byte("\n")) + 1
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, &EnrollFileError{line, "not a PEM block"}
			}
			break
		}
		en, err := enrollment(blk, "", "")
		if err != nil {
			return nil, &EnrollFileError{line, err.Error()}
		}
		out = append(out, en)
	}
	if len(out) == 0 {
		return nil, errors.New("no device in the enrollment list")
	}
	return out, nil
}

func enrollment(blk *pem.Block, name, deviceType string) (Enrollment, error) {
	if blk.Type != "PUBLIC KEY" {
		return Enrollment{}, fmt.Errorf("a PEM %s: want a PUBLIC KEY (never a private key)", blk.Type)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return Enrollment{}, err
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return Enrollment{}, fmt.Errorf("a %T key: device keys are Ed25519", k)
	}
	if name != "" && !nameRE.MatchString(name) {
		return Enrollment{}, fmt.Errorf("name %q: want letters, digits, '.', '_', ':', '@' or '-', at most 128", name)
	}
	if deviceType != "" && !deviceTypeRE.MatchString(deviceType) {
		return Enrollment{}, fmt.Errorf("deviceType %q: want letters, digits, '.', '_', '+' or '-', at most 64", deviceType)
	}
	return Enrollment{PublicKey: pub, Name: name, DeviceType: deviceType}, nil
}

// ReadDir returns the records and the legacy (unsigned) devices of the
// mirror directory dir, without creating its database when it has none.
func ReadDir(ctx context.Context, dir string) ([]Record, []Device, error) {
	if _, err := os.Stat(filepath.Join(dir, File)); errors.Is(err, fs.ErrNotExist) {
		return []Record{}, []Device{}, nil
	}
	d, err := OpenDir(dir)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	recs, err := d.Records(ctx)
	if err != nil {
		return nil, nil, err
	}
	legacy, err := d.List()
	return recs, legacy, err
}
