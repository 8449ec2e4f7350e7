package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/verifyio"
	"github.com/ferry-update/ferry/verify"
)

// rootFile is the trust root the agent accepted last, in the state
// directory (verify/TRUST.md §9).
const rootFile = "root.json"

// TrustStatus is the trust root the agent judges bundles with.
type TrustStatus struct {
	// RootVersion and RootExpires describe the trust-root document; both
	// are zero when the configuration lists plain keys.
	RootVersion int64     `json:"rootVersion,omitempty"`
	RootExpires time.Time `json:"rootExpires,omitzero"`
	// Keys and Threshold are the release role's (or the listed keys').
	Keys      int `json:"keys"`
	Threshold int `json:"threshold"`
	Revoked   int `json:"revoked,omitempty"`
}

// loadRoot reads the provisioned root and the one kept in the state
// directory, and trusts the higher version. A provisioned root newer than
// the kept one (a re-provisioned device) is stored before it is used.
func (a *Agent) loadRoot() error {
	b, err := os.ReadFile(a.cfg.Trust.Root)
	if err != nil {
		return fmt.Errorf("read trust root: %w", err)
	}
	prov, err := verify.ParseRoot(b)
	if err != nil {
		return fmt.Errorf("trust root %s: %w", a.cfg.Trust.Root, err)
	}
	// The first root is trusted out of band, but must be self-signed
	// (TRUST.md §5.1); an expired one still lets newer roots in.
	var re *verify.RootError
	if err := prov.Verify(a.now()); err != nil && !(errors.As(err, &re) && re.Kind == verify.RootExpired) {
		return fmt.Errorf("trust root %s: %w", a.cfg.Trust.Root, err)
	}
	a.root = prov
	kept, err := os.ReadFile(a.path(rootFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read trust root: %w", err)
	default:
		k, err := verify.ParseRoot(kept)
		if err != nil {
			return fmt.Errorf("trust root %s: %w", a.path(rootFile), err)
		}
		if k.Version() >= prov.Version() {
			a.root = k
			return nil
		}
	}
	return a.storeRoot(prov)
}

// storeRoot makes r durable in the state directory (TRUST.md §9: stored
// before it is used).
func (a *Agent) storeRoot(r *verify.Root) error {
	if err := atomicfile.WriteFile(a.path(rootFile), r.Bytes(), 0o600); err != nil {
		return fmt.Errorf("store trust root v%d: %w", r.Version(), err)
	}
	return nil
}

// Root returns the trust root the agent holds, or nil when the
// configuration lists plain keys.
func (a *Agent) Root() *verify.Root { return a.root }

// ApplyRoots moves the trust root forward along the roots a source offers
// (TRUST.md §10): those not newer than the one held are dropped, the rest
// applied in version order with verify.UpdateRootChain, and the result
// stored before it is used. On error (a *verify.RootError: a version
// skipped, too few signatures by the old or new root keys, a revoked key
// let back in, an expired last root) the agent keeps its root, and the
// error is also told to the next install whose signatures fail, since a
// bundle signed after a rotation is otherwise refused without a reason;
// that reason is kept until a root is accepted, through later calls that
// offer nothing newer. It returns the root held afterwards.
func (a *Agent) ApplyRoots(docs [][]byte) (*verify.Root, error) {
	if a.root == nil {
		return nil, errors.New("apply trust roots: the configuration lists plain keys ([trust] keys), not a trust root ([trust] root)")
	}
	type offered struct {
		v    int64
		data []byte
	}
	var chain []offered
	seen := map[int64]bool{}
	var errs []error
	for _, d := range docs {
		r, err := verify.ParseRoot(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r.Version() <= a.root.Version() || seen[r.Version()] {
			continue
		}
		seen[r.Version()] = true
		chain = append(chain, offered{r.Version(), d})
	}
	if len(chain) == 0 {
		// Nothing newer: keep the reason an earlier root was refused
		// until some root is accepted.
		if len(errs) > 0 {
			a.rootErr = errors.Join(errs...)
		}
		return a.root, errors.Join(errs...)
	}
	sort.Slice(chain, func(i, j int) bool { return chain[i].v < chain[j].v })
	raw := make([][]byte, len(chain))
	for i, c := range chain {
		raw[i] = c.data
	}
	next, err := verify.UpdateRootChain(a.root, raw, a.now())
	if err != nil {
		a.rootErr = err
		a.logf("warning: keeping trust root v%d: %v", a.root.Version(), err)
		return a.root, err
	}
	if err := a.storeRoot(next); err != nil {
		return a.root, err
	}
	a.logf("trust root v%d accepted (was v%d)", next.Version(), a.root.Version())
	a.root, a.rootErr = next, nil
	return next, nil
}

// applyBundleRoots applies the trust roots a bundle carries as attachments
// (bundle/FORMAT.md §6.1) before its signatures are judged. Each root is
// checked by the chain rule against the root held, whatever signed the
// bundle, so a bundle signed by newly rotated keys can bring the root that
// introduces them; a root that fails leaves the held one in place and the
// reason is told with a refusal (ApplyRoots).
func (a *Agent) applyBundleRoots(br *bundle.Reader) {
	if a.root == nil {
		return
	}
	var docs [][]byte
	for _, at := range br.Attachments() {
		if at.MediaType == bundle.TrustRootMediaType {
			docs = append(docs, at.Data)
		}
	}
	if len(docs) > 0 {
		a.ApplyRoots(docs) // on failure the held root judges, and says why
	}
}

// mirrorRootsPath is where a mirror serves trust roots (TRUST.md §10):
// GET /ferry/v1/roots/N.root.json, 404 when it has no version N.
const mirrorRootsPath = "/ferry/v1/roots/"

// maxMirrorRoots bounds the roots fetched in one poll, so a mirror cannot
// keep the agent fetching forever.
const maxMirrorRoots = 64

// ApplyMirrorRoots fetches the trust roots after the one held from the
// configured mirror, versions held+1, held+2, … until the mirror answers
// 404, and applies them (ApplyRoots). It does nothing when the
// configuration lists plain keys or no mirror. A root the mirror serves
// but that fails the chain rule leaves the held root in place.
func (a *Agent) ApplyMirrorRoots(ctx context.Context, client *http.Client) (*verify.Root, error) {
	if a.root == nil || a.cfg.Mirror.URL == "" {
		return a.root, nil
	}
	if client == nil {
		client = http.DefaultClient
	}
	base, err := url.Parse(strings.TrimSuffix(a.cfg.Mirror.URL, "/"))
	if err != nil {
		return a.root, fmt.Errorf("mirror URL %q: %w", a.cfg.Mirror.URL, err)
	}
	var docs [][]byte
	for v := a.root.Version() + 1; len(docs) < maxMirrorRoots; v++ {
		b, err := fetchRoot(ctx, client, base.JoinPath(mirrorRootsPath, strconv.FormatInt(v, 10)+".root.json").String())
		if err != nil {
			return a.root, fmt.Errorf("fetch trust root v%d: %w", v, err)
		}
		if b == nil {
			break
		}
		docs = append(docs, b)
	}
	if len(docs) == 0 {
		return a.root, nil
	}
	return a.ApplyRoots(docs)
}

// fetchRoot GETs one root document; nil, nil when the mirror has none.
func fetchRoot(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "ferry-agent")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	default:
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, verify.MaxRootSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > verify.MaxRootSize {
		return nil, fmt.Errorf("%s: more than the limit of %d bytes", u, verify.MaxRootSize)
	}
	return b, nil
}

// ApplyRootFiles reads the files and applies them as ApplyRoots does.
func (a *Agent) ApplyRootFiles(paths []string) (*verify.Root, error) {
	var docs [][]byte
	for _, p := range paths {
		b, err := verifyio.ReadFileLimited(p, verify.MaxRootSize)
		if err != nil {
			return a.root, fmt.Errorf("read trust root: %w", err)
		}
		docs = append(docs, b)
	}
	return a.ApplyRoots(docs)
}

// RootFileVersion returns N for a file named N.root.json, the name roots
// are published under (TRUST.md §10), and false for any other name.
func RootFileVersion(name string) (int64, bool) {
	n, ok := strings.CutSuffix(filepath.Base(name), ".root.json")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n, 10, 64)
	return v, err == nil && v > 0
}

// policy is what bundles must satisfy now.
func (a *Agent) policy() (verify.Policy, error) {
	if a.root == nil {
		return verify.Policy{Keys: a.keys, Threshold: a.cfg.Trust.Threshold, DeviceType: a.cfg.DeviceType}, nil
	}
	p, err := a.root.Policy(verify.RoleRelease, a.now())
	if err != nil {
		return p, err
	}
	p.DeviceType = a.cfg.DeviceType
	return p, nil
}

func (a *Agent) trustStatus() *TrustStatus {
	if a.root == nil {
		return &TrustStatus{Keys: len(a.keys), Threshold: a.cfg.Trust.Threshold}
	}
	s := &TrustStatus{RootVersion: a.root.Version(), RootExpires: a.root.Expires(), Revoked: len(a.root.Signed().Revoked)}
	if rl, ok := a.root.Signed().Roles[verify.RoleRelease]; ok {
		s.Keys, s.Threshold = len(rl.KeyIDs), rl.Threshold
	}
	return s
}
