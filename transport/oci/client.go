package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/transport/httpget"
	"github.com/ferry-update/ferry/transport/wire"
)

// ErrNotFound is matched (errors.Is) by the error for anything the registry
// answered 404 for: an unknown repository, tag, manifest or blob.
var ErrNotFound = errors.New("not found")

// ErrReferrersUnsupported is returned by Referrers when the registry has no
// referrers API (OCI distribution spec 1.1), as Docker's registry 2.8.
var ErrReferrersUnsupported = errors.New("registry does not support the referrers API")

// Error is a registry's answer other than success, with the first error
// of the distribution spec's JSON body when there was one.
type Error struct {
	Method  string
	URL     string
	Status  int
	Code    string // e.g. MANIFEST_UNKNOWN, DENIED
	Message string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s %s: %s", e.Method, e.URL, http.StatusText(e.Status))
	if e.Status == 0 {
		msg = fmt.Sprintf("%s %s", e.Method, e.URL)
	}
	if e.Code != "" {
		msg += ": " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Is lets errors.Is(err, ErrNotFound) match a 404.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// Credential is a user name and password (or token) for one registry.
type Credential struct {
	Username, Password string
}

// Options configure a Repository. The zero value pulls anonymously over
// HTTPS with http.DefaultTransport.
type Options struct {
	// Client sends every request; nil means a client over
	// http.DefaultTransport. Its Timeout, if any, bounds whole blob
	// downloads, so leave it zero and use the context instead.
	Client *http.Client
	// PlainHTTP talks http:// instead of https:// (loopback mirrors,
	// test registries).
	PlainHTTP bool
	// Credentials returns the credential for a registry host, or ok false
	// for none. It is asked only when the registry demands authentication.
	Credentials func(host string) (cred Credential, ok bool)
	// Retries is how many attempts in a row to resume a blob download
	// with a Range request may deliver nothing (httpget.Reader's policy);
	// 0 means 5, negative means never.
	Retries int
	// UserAgent, if set, is sent with every request.
	UserAgent string
}

// Repository pulls from one repository of one registry. It is safe for
// concurrent use.
type Repository struct {
	host, name string
	opts       Options

	mu    sync.Mutex
	authz string // Authorization header value that worked last
}

// NewRepository returns a client for repository name on host (HOST[:PORT]).
func NewRepository(host, name string, opts Options) *Repository {
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Retries == 0 {
		opts.Retries = 5
	}
	return &Repository{host: host, name: name, opts: opts}
}

// Name returns the repository's name.
func (r *Repository) Name() string { return r.name }

func (r *Repository) url(path string) string {
	scheme := "https"
	if r.opts.PlainHTTP {
		scheme = "http"
	}
	return scheme + "://" + r.host + "/v2/" + r.name + path
}

// do sends a GET or HEAD, answering one authentication challenge.
func (r *Repository) do(ctx context.Context, method, u string, hdr http.Header) (*http.Response, error) {
	send := func(authz string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		if r.opts.UserAgent != "" {
			req.Header.Set("User-Agent", r.opts.UserAgent)
		}
		resp, err := r.opts.Client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, u, err)
		}
		return resp, nil
	}
	r.mu.Lock()
	authz := r.authz
	r.mu.Unlock()
	resp, err := send(authz)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	ch := resp.Header.Get("WWW-Authenticate")
	drain(resp)
	authz, err = r.authorize(ctx, ch)
	if err != nil {
		return nil, fmt.Errorf("%s %s: authenticate: %w", method, u, err)
	}
	r.mu.Lock()
	r.authz = authz
	r.mu.Unlock()
	return send(authz)
}

// authorize answers a WWW-Authenticate challenge with an Authorization
// header value: basic credentials, or a bearer token from the realm.
func (r *Repository) authorize(ctx context.Context, header string) (string, error) {
	c, err := parseChallenge(header)
	if err != nil {
		return "", err
	}
	var cred Credential
	var haveCred bool
	if r.opts.Credentials != nil {
		cred, haveCred = r.opts.Credentials(r.host)
	}
	switch c.scheme {
	case "basic":
		if !haveCred {
			return "", fmt.Errorf("registry %s wants a user name and password and none is configured", r.host)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
		req.SetBasicAuth(cred.Username, cred.Password)
		return req.Header.Get("Authorization"), nil
	case "bearer":
		return r.token(ctx, c, cred, haveCred)
	}
	return "", fmt.Errorf("unsupported authentication scheme %q", c.scheme)
}

func (r *Repository) token(ctx context.Context, c challenge, cred Credential, haveCred bool) (string, error) {
	realm, err := url.Parse(c.params["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", fmt.Errorf("bearer challenge with invalid realm %q", truncate(c.params["realm"]))
	}
	if realm.Scheme == "http" && !r.opts.PlainHTTP && haveCred {
		return "", fmt.Errorf("refusing to send credentials to plain-http token realm %s", realm.Redacted())
	}
	q := realm.Query()
	if s := c.params["service"]; s != "" {
		q.Set("service", s)
	}
	scope := c.params["scope"]
	if scope == "" {
		scope = "repository:" + r.name + ":pull"
	}
	q.Set("scope", scope)
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	if haveCred {
		req.SetBasicAuth(cred.Username, cred.Password)
	}
	resp, err := r.opts.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", responseError(resp)
	}
	body, err := readLimited(resp.Body, maxTokenSize)
	if err != nil {
		return "", fmt.Errorf("token response: %w", err)
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return "", fmt.Errorf("token response: %w", err)
	}
	if tok.Token == "" {
		tok.Token = tok.AccessToken
	}
	if tok.Token == "" {
		return "", errors.New("token response holds no token")
	}
	return "Bearer " + tok.Token, nil
}

// Manifest fetches a manifest by tag or digest. It returns the bytes
// exactly as served and the media type the registry gave. A manifest
// fetched by digest is checked against it.
func (r *Repository) Manifest(ctx context.Context, reference string) ([]byte, string, error) {
	hdr := http.Header{"Accept": {manifestAccept}}
	resp, err := r.do(ctx, http.MethodGet, r.url("/manifests/"+reference), hdr)
	if err != nil {
		return nil, "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, "", responseError(resp)
	}
	raw, err := readLimited(resp.Body, MaxManifestSize)
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", reference, err)
	}
	if d, err := digest.Parse(reference); err == nil {
		if err := checkDigestOf(raw, d); err != nil {
			return nil, "", fmt.Errorf("manifest %s: %w", reference, err)
		}
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return raw, mt, nil
}

// Blob returns a blob's content. The reader resumes with Range requests
// when the connection breaks; it does not check the digest (the caller
// does, through verifyio or bundle.Assemble).
func (r *Repository) Blob(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	return r.BlobAt(ctx, d, 0)
}

// BlobAt is Blob starting at byte offset off, to continue a download.
// It reads through httpget.Reader (one resume policy for the device): a
// drop is resumed with a Range request Options.Retries times without
// progress, waiting from 100 ms doubling to 2 s.
func (r *Repository) BlobAt(ctx context.Context, d ocispec.Descriptor, off int64) (io.ReadCloser, error) {
	return r.BlobRange(ctx, d, off, -1)
}

// BlobRange is BlobAt reading n bytes (all to the end if n < 0), asked
// for with one bounded Range request ("bytes=OFF-LAST") and resumed as
// BlobAt is: a chunk of a blob costs its bytes only (FORMAT.md §15.5).
func (r *Repository) BlobRange(ctx context.Context, d ocispec.Descriptor, off, n int64) (io.ReadCloser, error) {
	if err := d.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w", d.Digest, err)
	}
	if off < 0 || (d.Size >= 0 && off > d.Size) || (n >= 0 && d.Size >= 0 && off+n > d.Size) {
		return nil, fmt.Errorf("blob %s: range %d+%d outside 0..%d", d.Digest, off, n, d.Size)
	}
	h := r.reader(ctx, r.url("/blobs/"+d.Digest.String()))
	h.Offset, h.Size = off, d.Size
	if n >= 0 {
		h.End = off + n
	}
	if err := h.Open(); err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return h, nil
}

// reader is a resumable reader of u through the repository's client
// and authentication.
func (r *Repository) reader(ctx context.Context, u string) *httpget.Reader {
	h := httpget.NewReader(ctx, r.opts.Client, u)
	h.Retries, h.Backoff, h.MaxBackoff = max(r.opts.Retries, 0), 100*time.Millisecond, 2*time.Second
	h.Do = func(req *http.Request) (*http.Response, error) {
		return r.do(req.Context(), req.Method, req.URL.String(), req.Header)
	}
	h.ResponseError = responseError
	return h
}

// DeltaStream opens the delta stream (bundle/FORMAT.md §15.9) of the
// payload whose chunk index is target against the base whose index is
// base, from a ferry mirror (wire.DeltaPath on the registry's host),
// resumed as BlobAt is. A registry, or a mirror that lacks either
// payload, answers 404: an error matching ErrNotFound. Nothing is
// checked.
func (r *Repository) DeltaStream(ctx context.Context, target, base digest.Digest) (io.ReadCloser, error) {
	scheme := "https"
	if r.opts.PlainHTTP {
		scheme = "http"
	}
	h := r.reader(ctx, scheme+"://"+r.host+wire.DeltaPath+r.name+"/"+target.String()+"/"+base.String())
	h.MaxSkip = -1
	if err := h.Open(); err != nil {
		return nil, fmt.Errorf("delta stream: %w", err)
	}
	return h, nil
}

// Tags lists the repository's tags, following the registry's pagination.
func (r *Repository) Tags(ctx context.Context) ([]string, error) {
	var all []string
	next := r.url("/tags/list?n=1000")
	for page := 0; next != ""; page++ {
		if page == 10000 {
			return nil, errors.New("tag list: more than 10000 pages")
		}
		resp, err := r.do(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			err := responseError(resp)
			drain(resp)
			return nil, err
		}
		raw, err := readLimited(resp.Body, MaxTagListSize)
		link := resp.Header.Get("Link")
		drain(resp)
		if err != nil {
			return nil, fmt.Errorf("tag list: %w", err)
		}
		tl, err := ParseTagList(raw)
		if err != nil {
			return nil, err
		}
		all = append(all, tl.Tags...)
		if next, err = r.nextLink(next, link); err != nil {
			return nil, err
		}
	}
	return all, nil
}

// nextLink resolves a Link: <...>; rel="next" header against the current
// URL, refusing to be sent to another host.
func (r *Repository) nextLink(cur, link string) (string, error) {
	if link == "" {
		return "", nil
	}
	target, params, ok := strings.Cut(link, ";")
	if !ok || !strings.Contains(params, `rel="next"`) {
		return "", nil
	}
	target = strings.Trim(strings.TrimSpace(target), "<>")
	base, err := url.Parse(cur)
	if err != nil {
		return "", err
	}
	u, err := base.Parse(target)
	if err != nil {
		return "", fmt.Errorf("tag list: bad Link %q: %w", truncate(link), err)
	}
	if u.Host != base.Host || u.Scheme != base.Scheme {
		return "", fmt.Errorf("tag list: Link points to another server: %s", u.Redacted())
	}
	return u.String(), nil
}

// Referrers lists the manifests whose subject is d, filtered by
// artifactType when it is set. It returns ErrReferrersUnsupported when the
// registry has no referrers API.
func (r *Repository) Referrers(ctx context.Context, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	u := r.url("/referrers/" + d.String())
	if artifactType != "" {
		u += "?artifactType=" + url.QueryEscape(artifactType)
	}
	resp, err := r.do(ctx, http.MethodGet, u, http.Header{"Accept": {MediaTypeOCIIndex}})
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode == http.StatusNotFound && mt != MediaTypeOCIIndex || resp.StatusCode == http.StatusMethodNotAllowed {
		return nil, ErrReferrersUnsupported
	}
	if resp.StatusCode != http.StatusOK {
		return nil, responseError(resp)
	}
	raw, err := readLimited(resp.Body, MaxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", d, err)
	}
	idx, err := ParseIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", d, err)
	}
	var out []ocispec.Descriptor
	for _, m := range idx.Manifests {
		if artifactType == "" || m.ArtifactType == artifactType {
			out = append(out, m)
		}
	}
	return out, nil
}

// responseError turns an unsuccessful response into an *Error.
func responseError(resp *http.Response) error {
	e := &Error{Status: resp.StatusCode}
	if resp.Request != nil {
		e.Method = resp.Request.Method
		e.URL = resp.Request.URL.Redacted()
	}
	body, _ := readLimited(resp.Body, maxErrorBody)
	var oe struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &oe) == nil && len(oe.Errors) > 0 {
		e.Code, e.Message = oe.Errors[0].Code, truncate(oe.Errors[0].Message)
	}
	return e
}

// readLimited reads all of r, refusing more than max bytes.
func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("response exceeds the limit of %d bytes", max)
	}
	return b, nil
}

// drain reads a little of what is left so the connection can be reused,
// then closes the body.
func drain(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

// BlobExists reports whether the repository holds blob d (HEAD).
func (r *Repository) BlobExists(ctx context.Context, d digest.Digest) (bool, error) {
	resp, err := r.do(ctx, http.MethodHead, r.url("/blobs/"+d.String()), nil)
	if err != nil {
		return false, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("blob %s: %w", d, responseError(resp))
}

// StaticCredentials returns an Options.Credentials that looks hosts up in
// creds, for credentials read from a device's configuration.
func StaticCredentials(creds map[string]Credential) func(host string) (Credential, bool) {
	return func(host string) (Credential, bool) {
		c, ok := creds[host]
		return c, ok
	}
}
