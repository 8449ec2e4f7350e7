package operator

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
)

// Client is a running mirror's fleet, reached through its API with a
// token: what 'ferry fleet … URL' uses in place of the mirror directory.
// It implements fleet.Client as fleet.Local does; the mirror acts with
// its own clock and as the token's user, so the times and operator names
// the methods take are not sent. The fleet's typed errors come back as
// the same types (devices.StateError, fleet.BundleNotFoundError, ...);
// other refusals (a bad token, a role that does not allow it) are
// *APIError.
type Client struct {
	base  string // scheme://host[:port], no trailing slash
	token string
	hc    *http.Client
}

var _ fleet.Client = (*Client)(nil)

// ClientOptions configure NewClient.
type ClientOptions struct {
	// HTTP is the client requests go through; nil is one whose requests
	// time out after a minute.
	HTTP *http.Client
	// PlainHTTP allows sending the token over plain http to a host that
	// is not this machine (loopback), where anyone on the network can
	// read it. Without it, such a URL is refused (*PlainHTTPError).
	PlainHTTP bool
}

// PlainHTTPError refuses to send an API token in clear over the network.
type PlainHTTPError struct{ URL string }

func (e *PlainHTTPError) Error() string {
	return fmt.Sprintf("%s is plain http to another machine: the API token would cross the network in clear", e.URL)
}

// NewClient returns the client of the mirror at base (http(s)://HOST[:PORT],
// with or without /api/v1) acting with token. A token goes over plain
// http only to a loopback address, unless o.PlainHTTP.
func NewClient(base, token string, o ClientOptions) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("mirror URL %q: want http(s)://HOST[:PORT]", base)
	}
	if !strings.HasPrefix(token, TokenPrefix) {
		return nil, errors.New("an API token begins with " + TokenPrefix + " ('ferry fleet tokens create')")
	}
	if u.Scheme == "http" && !o.PlainHTTP && !loopback(u.Hostname()) {
		return nil, &PlainHTTPError{URL: u.Scheme + "://" + u.Host}
	}
	hc := o.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	return &Client{base: u.Scheme + "://" + u.Host, token: token, hc: hc}, nil
}

// loopback reports whether host (a name or an address) is this machine.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// APIError is an error answer of the mirror's API.
type APIError struct {
	Method, URL string
	Status      int
	Reason      Reason
	Msg         string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.URL, e.Status, e.Reason, e.Msg)
}

// do sends a request to the API path (after /api/v1/) with a body (a
// value sent as JSON, or raw bytes of contentType) and decodes a JSON
// answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, in any, contentType string, out any) error {
	var body io.Reader
	switch v := in.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	u := c.base + APIPrefix + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("fleet API of %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb = ErrorBody{Error: strings.TrimSpace(string(b[:min(len(b), 200)])), Reason: ReasonInternal}
		}
		if eb.Kind != "" {
			if err := rebuildError(eb.Kind, eb.Detail); err != nil {
				return err
			}
		}
		return &APIError{Method: method, URL: u, Status: resp.StatusCode, Reason: eb.Reason, Msg: eb.Error}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON the API describes: %w", method, u, err)
	}
	return nil
}

func deploymentPath(id int64) string { return "deployments/" + strconv.FormatInt(id, 10) }

// Records implements devices.Fleet.
func (c *Client) Records(ctx context.Context) ([]devices.Record, error) {
	var out DeviceList
	return out.Devices, c.do(ctx, "GET", "devices", nil, "", &out)
}

// Show implements devices.Fleet.
func (c *Client) Show(ctx context.Context, id string) (*devices.Record, []devices.Report, error) {
	var out DeviceDetail
	if err := c.do(ctx, "GET", "devices/"+url.PathEscape(id), nil, "", &out); err != nil {
		return nil, nil, err
	}
	return out.Device, out.History, nil
}

// enrollLine is an entry of an enrollment list as the mirror reads it
// (devices.ParseEnrollments).
type enrollLine struct {
	PublicKey  string            `json:"publicKey"`
	Name       string            `json:"name,omitempty"`
	DeviceType string            `json:"deviceType,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// Enroll implements devices.Fleet: the list goes to the mirror as JSON
// lines; the mirror records "api:USER" as how they were enrolled.
func (c *Client) Enroll(ctx context.Context, es []devices.Enrollment, _ string, _ time.Time) ([]devices.EnrollResult, error) {
	var b bytes.Buffer
	for _, e := range es {
		der, err := x509.MarshalPKIXPublicKey(e.PublicKey)
		if err != nil {
			return nil, err
		}
		line, err := json.Marshal(enrollLine{PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), Name: e.Name, DeviceType: e.DeviceType, Labels: e.Labels})
		if err != nil {
			return nil, err
		}
		b.Write(append(line, '\n'))
	}
	var out EnrollResults
	return out.Results, c.do(ctx, "POST", "enrollments", b.Bytes(), "application/x-ndjson", &out)
}

// SetStatus implements devices.Fleet.
func (c *Client) SetStatus(ctx context.Context, id string, to devices.Status, _ time.Time) (*devices.Record, error) {
	action := ""
	for a, s := range statusActions {
		if s == to {
			action = a
		}
	}
	if action == "" {
		return nil, fmt.Errorf("no such status %q", to)
	}
	var out devices.Record
	if err := c.do(ctx, "POST", "devices/"+url.PathEscape(id)+"/"+action, nil, "", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetLabels implements devices.Fleet.
func (c *Client) SetLabels(ctx context.Context, id string, set map[string]string, _ time.Time) (*devices.Record, error) {
	var out devices.Record
	if err := c.do(ctx, "POST", "devices/"+url.PathEscape(id)+"/labels", LabelsRequest{Set: set}, "", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutGroup implements devices.Fleet.
func (c *Client) PutGroup(ctx context.Context, g devices.Group, _ time.Time) (*devices.Group, error) {
	var out devices.Group
	return &out, c.do(ctx, "PUT", "groups/"+url.PathEscape(g.Name), g, "", &out)
}

// Groups implements devices.Fleet.
func (c *Client) Groups(ctx context.Context) ([]devices.Group, error) {
	var out GroupList
	return out.Groups, c.do(ctx, "GET", "groups", nil, "", &out)
}

// GroupMembers implements devices.Fleet.
func (c *Client) GroupMembers(ctx context.Context, name string) (*devices.Group, []devices.Record, error) {
	var out GroupDetail
	if err := c.do(ctx, "GET", "groups/"+url.PathEscape(name), nil, "", &out); err != nil {
		return nil, nil, err
	}
	return out.Group, out.Devices, nil
}

// DeleteGroup implements devices.Fleet.
func (c *Client) DeleteGroup(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "groups/"+url.PathEscape(name), nil, "", nil)
}

// Settings implements devices.Fleet.
func (c *Client) Settings(ctx context.Context) (devices.Settings, error) {
	var out devices.Settings
	return out, c.do(ctx, "GET", "settings", nil, "", &out)
}

// SetSettings implements devices.Fleet.
func (c *Client) SetSettings(ctx context.Context, s devices.Settings) error {
	return c.do(ctx, "PUT", "settings", s, "", nil)
}

// Deploy makes a deployment of the mirror's bundle ref (NAME:VERSION); the
// mirror takes the digest from its own index.
func (c *Client) Deploy(ctx context.Context, ref string, spec devices.DeploymentSpec, _ time.Time) (*devices.Deployment, error) {
	var out devices.Deployment
	req := DeployRequest{Bundle: ref, Group: spec.Group, Filter: spec.Filter, Phases: spec.Phases}
	if err := c.do(ctx, "POST", "deployments", req, "", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateDeployment implements devices.Fleet: a deployment of the bundle
// spec names, as Deploy makes it.
func (c *Client) CreateDeployment(ctx context.Context, spec devices.DeploymentSpec, at time.Time) (*devices.Deployment, error) {
	return c.Deploy(ctx, spec.Bundle+":"+spec.Version, spec, at)
}

// Deployments implements devices.Fleet.
func (c *Client) Deployments(ctx context.Context) ([]devices.Deployment, error) {
	var out DeploymentList
	return out.Deployments, c.do(ctx, "GET", "deployments", nil, "", &out)
}

// DeploymentDetail implements devices.Fleet.
func (c *Client) DeploymentDetail(ctx context.Context, id int64) (*devices.DeploymentDetail, error) {
	var out DeploymentDetail
	if err := c.do(ctx, "GET", deploymentPath(id), nil, "", &out); err != nil {
		return nil, err
	}
	if out.Deployment == nil {
		return nil, fmt.Errorf("deployment %d: the mirror's answer has no deployment", id)
	}
	return &devices.DeploymentDetail{Deployment: *out.Deployment, Targets: out.Targets, Events: out.Events}, nil
}

// act posts a deployment action.
func (c *Client) act(ctx context.Context, id int64, action, reason string) (*devices.Deployment, error) {
	var out devices.Deployment
	if err := c.do(ctx, "POST", deploymentPath(id)+"/"+action, ReasonRequest{Reason: reason}, "", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Approve implements devices.Fleet; the approver is the token's user.
func (c *Client) Approve(ctx context.Context, id int64, _ string, _ time.Time) (*devices.Deployment, error) {
	return c.act(ctx, id, "approve", "")
}

// Pause implements devices.Fleet.
func (c *Client) Pause(ctx context.Context, id int64, _, reason string, _ time.Time) (*devices.Deployment, error) {
	return c.act(ctx, id, "pause", reason)
}

// Resume implements devices.Fleet.
func (c *Client) Resume(ctx context.Context, id int64, _ string, _ time.Time) (*devices.Deployment, error) {
	return c.act(ctx, id, "resume", "")
}

// Abort implements devices.Fleet.
func (c *Client) Abort(ctx context.Context, id int64, _, reason string, _ time.Time) (*devices.Deployment, error) {
	return c.act(ctx, id, "abort", reason)
}

// Evaluate implements devices.Fleet: nothing to do, the mirror evaluates
// its deployments at its own clock before every answer about them.
func (c *Client) Evaluate(context.Context, time.Time) error { return nil }

// Close implements fleet.Client: a client holds nothing open.
func (c *Client) Close() error { return nil }

// RelayAssignments is GET /api/v1/relay/assignments: the signed
// assignments of every device the mirror's running deployments assign
// now, by device id (the envelopes as the mirror signed them). It
// implements mirror.Upstream.
func (c *Client) RelayAssignments(ctx context.Context) (map[string][]byte, error) {
	var l RelayAssignmentList
	if err := c.do(ctx, http.MethodGet, "relay/assignments", nil, "", &l); err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(l.Assignments))
	for id, env := range l.Assignments {
		out[id] = env
	}
	return out, nil
}

// URL is the mirror's address, scheme://HOST[:PORT]; HTTP the client
// requests go through (its TLS settings): a sync from the mirror takes
// its public files (TUF metadata, bundles, check-ins) the same way,
// without the token.
func (c *Client) URL() string { return c.base }

// HTTP is the HTTP client of the requests.
func (c *Client) HTTP() *http.Client { return c.hc }
