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
	"strconv"
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

// Post sends r, a version 1 (unsigned) report, to the mirror at baseURL
// (http[s]://HOST[:PORT]) with client (nil: http.DefaultClient). Any
// answer but 2xx is an error that carries the mirror's message.
func Post(ctx context.Context, client *http.Client, baseURL string, r *Report) error {
	if err := r.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = send(ctx, client, baseURL, Path, body)
	return err
}

// Answer is what a mirror said to a check-in it took.
type Answer struct {
	// Pending says the mirror does not know the device yet: it lists it
	// as pending an operator's approval and recorded nothing it said.
	Pending bool
	Message string
	// Body is the body of a 200 answer (an assignment, for
	// assign.Path), at most MaxAnswerSize bytes.
	Body []byte
}

// MaxAnswerSize bounds the body of a mirror's answer a device reads.
const MaxAnswerSize = 64 << 10

// Send posts a signed check-in (Sign) to the mirror at baseURL
// (http[s]://HOST[:PORT]) with client (nil: http.DefaultClient). A
// refusal the mirror gives a reason for is a *MirrorError carrying it.
func Send(ctx context.Context, client *http.Client, baseURL string, signed []byte) (*Answer, error) {
	return SendTo(ctx, client, baseURL, Path, signed)
}

// SendTo is Send to another endpoint of the mirror that takes a signed
// check-in (the assignment endpoint, package transport/assign).
func SendTo(ctx context.Context, client *http.Client, baseURL, path string, signed []byte) (*Answer, error) {
	return send(ctx, client, baseURL, path, signed)
}

// MirrorError is a check-in a mirror refused.
type MirrorError struct {
	URL    string
	Status string
	Reason Reason // "" when the mirror gave none
	Msg    string
	// RetryAfter is how long the mirror asked to wait before sending
	// again (a 429 or 503 with Retry-After in seconds); 0 if it did not.
	RetryAfter time.Duration
}

func (e *MirrorError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("check in with %s: %s", e.URL, e.Status)
	}
	return fmt.Sprintf("check in with %s: %s: %s", e.URL, e.Status, e.Msg)
}

// ErrorBody is the JSON body of a mirror's error answer to a check-in.
type ErrorBody struct {
	Error  string `json:"error"`
	Reason Reason `json:"reason,omitempty"`
}

// PendingBody is the JSON body of a mirror's 202 answer to a device it
// has not enrolled.
type PendingBody struct {
	Status  string `json:"status"` // "pending"
	Device  string `json:"device"`
	Message string `json:"message"`
}

func send(ctx context.Context, client *http.Client, baseURL, path string, body []byte) (*Answer, error) {
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("mirror URL %q: %w", baseURL, err)
	}
	u = u.JoinPath(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("check in with %s: %w", baseURL, err)
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerSize+1))
	if err != nil {
		return nil, fmt.Errorf("check in with %s: %w", baseURL, err)
	}
	if len(msg) > MaxAnswerSize {
		return nil, fmt.Errorf("check in with %s: an answer of more than %d bytes", baseURL, MaxAnswerSize)
	}
	if resp.StatusCode == http.StatusAccepted {
		var p PendingBody
		json.Unmarshal(msg, &p)
		return &Answer{Pending: true, Message: p.Message}, nil
	}
	if resp.StatusCode == http.StatusOK {
		return &Answer{Body: msg}, nil
	}
	if resp.StatusCode/100 == 2 {
		return &Answer{}, nil
	}
	me := &MirrorError{URL: baseURL, Status: resp.Status}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
		me.RetryAfter = time.Duration(n) * time.Second
	}
	var e ErrorBody
	if json.Unmarshal(msg, &e) == nil {
		me.Msg, me.Reason = e.Error, e.Reason
	}
	return nil, me
}
