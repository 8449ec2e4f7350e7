package checkin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferry-update/ferry/transport/wire"
)

// Path is where a mirror takes check-ins.
const Path = wire.CheckinPath

// Limits of a report.
const (
	MaxSize      = 16 << 10 // bytes of the whole JSON body
	MaxErrorSize = 4 << 10  // bytes of the error text
)

// Report is what a device tells the mirror about itself.
type Report struct {
	DeviceID   string `json:"deviceId"`   // unique per device, e.g. a serial number
	DeviceType string `json:"deviceType"` // as bundles name it
	// Bundle and Version are what is installed: the bundle's name (empty
	// for a factory image that came from no bundle) and its version.
	Bundle  string `json:"bundle,omitempty"`
	Version string `json:"version"`
	// Result is how the last install ended, in the agent's words: a
	// lower-case word such as idle, committed, rolled-back or failed.
	Result string `json:"result"`
	// Time is when the device made the report, by its own clock.
	Time time.Time `json:"time"`
	// Error is why the last install failed, if it did.
	Error string `json:"error,omitempty"`
}

var (
	deviceIDRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)
	deviceTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	bundleRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	versionRE    = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$`)
	resultRE     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
)

// FieldError says what is wrong with one field of a report.
type FieldError struct {
	Field string // JSON name
	Msg   string
}

func (e *FieldError) Error() string { return "check-in " + e.Field + ": " + e.Msg }

// Validate checks every field of r.
func (r *Report) Validate() error {
	check := func(field, v string, re *regexp.Regexp, required bool, want string) error {
		if v == "" {
			if required {
				return &FieldError{field, "missing"}
			}
			return nil
		}
		if !re.MatchString(v) {
			return &FieldError{field, fmt.Sprintf("%q: want %s", truncate(v, 64), want)}
		}
		return nil
	}
	if err := check("deviceId", r.DeviceID, deviceIDRE, true, "letters, digits, '.', '_', ':', '@' or '-', at most 128"); err != nil {
		return err
	}
	if err := check("deviceType", r.DeviceType, deviceTypeRE, true, "letters, digits, '.', '_', '+' or '-', at most 64"); err != nil {
		return err
	}
	if err := check("bundle", r.Bundle, bundleRE, false, "a bundle name: lower-case letters, digits, '.', '_' or '-', at most 128"); err != nil {
		return err
	}
	if err := check("version", r.Version, versionRE, true, "a version such as 1.4.2, at most 128 characters"); err != nil {
		return err
	}
	if err := check("result", r.Result, resultRE, true, "a lower-case word such as committed or failed"); err != nil {
		return err
	}
	if r.Time.IsZero() {
		return &FieldError{"time", "missing"}
	}
	if y := r.Time.Year(); y < 2000 || y > 9999 {
		return &FieldError{"time", fmt.Sprintf("year %d out of range", y)}
	}
	if len(r.Error) > MaxErrorSize {
		return &FieldError{"error", fmt.Sprintf("%d bytes, more than %d", len(r.Error), MaxErrorSize)}
	}
	if !utf8.ValidString(r.Error) {
		return &FieldError{"error", "not UTF-8"}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ErrTooLarge is returned by Parse for a body over MaxSize.
var ErrTooLarge = fmt.Errorf("check-in body larger than %d bytes", MaxSize)

// Parse reads one report (at most MaxSize bytes of JSON) and validates it.
func Parse(r io.Reader) (*Report, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, ErrTooLarge
		}
		return nil, fmt.Errorf("read check-in: %w", err)
	}
	if len(b) > MaxSize {
		return nil, ErrTooLarge
	}
	return ParseBytes(b)
}

// ParseBytes parses and validates one report.
func ParseBytes(b []byte) (*Report, error) {
	if len(b) > MaxSize {
		return nil, ErrTooLarge
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("check-in is not JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("check-in: data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("check-in: data after the JSON object")
	}
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("check-in: want a JSON object")
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return nil, fmt.Errorf("check-in: %w", err)
	}
	if err := rep.Validate(); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Post sends r to the mirror at baseURL (http[s]://HOST[:PORT]) with
// client (nil: http.DefaultClient). Any answer but 2xx is an error that
// carries the mirror's message.
func Post(ctx context.Context, client *http.Client, baseURL string, r *Report) error {
	if err := r.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil {
		return fmt.Errorf("mirror URL %q: %w", baseURL, err)
	}
	u = u.JoinPath(Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("check in with %s: %w", baseURL, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(msg, &e) == nil && e.Error != "" {
		return fmt.Errorf("check in with %s: %s: %s", baseURL, resp.Status, e.Error)
	}
	return fmt.Errorf("check in with %s: %s", baseURL, resp.Status)
}
