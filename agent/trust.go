package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/verifyio"
	"github.com/ferry-update/ferry/transport/wire"
	"github.com/ferry-update/ferry/verify"
)

// rootFile is the trust root the agent accepted last, in the state
// directory (verify/TRUST.md §9); rootsDir holds every root it accepted
// above the provisioned one, as N.root.json, so that the kept root can be
// re-proved from the provisioned one at each start.
const (
	rootFile = "root.json"
	rootsDir = wire.RootsDir
	// rootRefusedFile records why kept roots were refused at a start,
	// for status, until a newer root is accepted.
	rootRefusedFile = "root-refused"
)

// unreadableRoot is the version given to a kept document that is not a
// trust root: above every real one, so that it is never proven.
const unreadableRoot = math.MaxInt64

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
	// RootExpired: the root has expired, every bundle is refused until a
	// newer root is applied. RootExpiresSoon: it expires within [trust]
	// expiry_warning (default 30 days): renew it.
	RootExpired     bool `json:"rootExpired,omitempty"`
	RootExpiresSoon bool `json:"rootExpiresSoon,omitempty"`
	// KeptRootRefused says why a root kept in the state directory could
	// not be re-proved from the provisioned one at a start, when one could
	// not: the agent fell back to the highest root it could prove. It is
	// reported until the agent accepts a newer root.
	KeptRootRefused string `json:"keptRootRefused,omitempty"`
}

// KeptRootError says that the trust roots kept in the state directory
// could not be re-proved from the provisioned root by the chain rule
// (TRUST.md §9): someone wrote them there, or the chain is damaged. The
// agent falls back to Proven, the highest root it could prove.
type KeptRootError struct {
	Kept   int64 // the highest version kept; 0 when one is not even a root
	Proven int64 // the version the agent holds instead
	Err    error // why the next version was refused
}

func (e *KeptRootError) Error() string {
	what := "a trust root"
	if e.Kept > 0 {
		what = fmt.Sprintf("trust root v%d", e.Kept)
	}
	return fmt.Sprintf("%s kept in the state directory is not proven from the provisioned root (%v): falling back to trust root v%d", what, e.Err, e.Proven)
}

func (e *KeptRootError) Unwrap() error { return e.Err }

// loadRoot reads the provisioned root and re-proves the roots kept in the
// state directory from it, version by version, by the chain rule
// (verify.ProveRootChain); it holds the highest root proven. A kept root
// that cannot be proven (written there by hand, or a chain broken in the
// middle) is refused loudly and removed, and the agent falls back to the
// highest root it could prove — the provisioned one when none. A
// provisioned root newer than the kept ones (a re-provisioned device)
// replaces them.
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
	kept, highest, bad, err := a.keptRoots()
	if err != nil {
		return err
	}
	var chain [][]byte
	for v := prov.Version() + 1; kept[v] != nil; v++ {
		chain = append(chain, kept[v])
	}
	proven, perr := verify.ProveRootChain(prov, chain)
	if perr == nil && bad != nil {
		perr = bad
	}
	if perr == nil && highest > proven.Version() {
		perr = fmt.Errorf("trust root v%d is missing from the chain kept in %s", proven.Version()+1, a.path(rootsDir))
	}
	if highest == unreadableRoot {
		highest = 0
	}
	if perr != nil {
		ke := &KeptRootError{Kept: highest, Proven: proven.Version(), Err: perr}
		a.logf("WARNING: %v. Roots above v%d are discarded: apply them again (ferry-agent trust update N.root.json, a mirror or a stick).", ke, proven.Version())
		a.rootErr, a.keptRefused = ke, ke.Error()
		if err := atomicfile.WriteFile(a.path(rootRefusedFile), []byte(a.keptRefused+"\n"), 0o600); err != nil {
			return fmt.Errorf("record the refused trust root: %w", err)
		}
	} else if b, err := os.ReadFile(a.path(rootRefusedFile)); err == nil {
		a.keptRefused = strings.TrimSpace(string(b))
	}
	a.root = proven
	return a.storeChain(prov.Version(), chain[:proven.Version()-prov.Version()])
}

// keptRoots reads the roots kept in the state directory: rootsDir/N.root.json
// and rootFile (which an agent before the chain was kept held alone). It
// returns them by version, the highest version among them (0: none), and
// why a document is not a trust root, if one is not: such a document
// counts as a version nobody can prove, so it is refused as the others are. Where rootFile and the chain
// disagree on a version, the chain is used and rootFile is rewritten.
func (a *Agent) keptRoots() (kept map[int64][]byte, highest int64, bad, err error) {
	kept = map[int64][]byte{}
	read := func(path string, v int64) (int64, []byte, error) {
		b, err := verifyio.ReadFileLimited(path, verify.MaxRootSize)
		if err != nil {
			return 0, nil, fmt.Errorf("read kept trust root: %w", err)
		}
		r, err := verify.ParseRoot(b)
		switch {
		case err == nil:
			v = r.Version()
		case v == 0:
			v = unreadableRoot // never proven
			bad = fmt.Errorf("%s: %w", path, err)
		}
		highest = max(highest, v)
		return v, b, nil
	}
	ents, err := os.ReadDir(a.path(rootsDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil, fmt.Errorf("read kept trust roots: %w", err)
	}
	for _, e := range ents {
		if n, ok := RootFileVersion(e.Name()); ok {
			v, b, err := read(filepath.Join(a.path(rootsDir), e.Name()), n)
			if err != nil {
				return nil, 0, nil, err
			}
			kept[v] = b
		}
	}
	if _, err := os.Stat(a.path(rootFile)); err == nil {
		v, b, err := read(a.path(rootFile), 0)
		if err != nil {
			return nil, 0, nil, err
		}
		if c, ok := kept[v]; !ok {
			kept[v] = b
		} else if !bytes.Equal(c, b) {
			a.logf("WARNING: %s differs from %s/%d.root.json: only the chain is used", a.path(rootFile), a.path(rootsDir), v)
		}
	}
	return kept, highest, bad, nil
}

// storeChain makes the state directory hold exactly the proven chain:
// rootsDir/N.root.json for each root above the provisioned version p, and
// the last (or the provisioned root) as rootFile. Kept files beyond it
// are removed.
func (a *Agent) storeChain(p int64, chain [][]byte) error {
	for i, doc := range chain {
		if err := a.storeChainRoot(p+int64(i)+1, doc); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(a.path(rootsDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read kept trust roots: %w", err)
	}
	for _, e := range ents {
		if v, ok := RootFileVersion(e.Name()); !ok || v <= p || v > p+int64(len(chain)) {
			if err := os.Remove(filepath.Join(a.path(rootsDir), e.Name())); err != nil {
				return fmt.Errorf("remove unproven trust root: %w", err)
			}
		}
	}
	if cur, err := os.ReadFile(a.path(rootFile)); err != nil || !bytes.Equal(cur, a.root.Bytes()) {
		return a.storeRoot(a.root)
	}
	return nil
}

// storeChainRoot keeps doc, root version v, in rootsDir unless it is there.
func (a *Agent) storeChainRoot(v int64, doc []byte) error {
	path := filepath.Join(a.path(rootsDir), wire.RootFile(v))
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, doc) {
		return nil
	}
	if err := os.MkdirAll(a.path(rootsDir), 0o700); err != nil {
		return fmt.Errorf("store trust root v%d: %w", v, err)
	}
	if err := atomicfile.WriteFile(path, doc, 0o600); err != nil {
		return fmt.Errorf("store trust root v%d: %w", v, err)
	}
	return nil
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
	for _, c := range chain {
		if err := a.storeChainRoot(c.v, c.data); err != nil {
			return a.root, err
		}
	}
	if err := a.storeRoot(next); err != nil {
		return a.root, err
	}
	a.logf("trust root v%d accepted (was v%d)", next.Version(), a.root.Version())
	a.root, a.rootErr, a.keptRefused = next, nil, ""
	if err := os.Remove(a.path(rootRefusedFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.logf("warning: %v", err)
	}
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

// maxMirrorRoots bounds the roots fetched in one poll, so a mirror cannot
// keep the agent fetching forever.
const maxMirrorRoots = 64

// ApplyMirrorRoots fetches the trust roots after the one held from the
// configured mirror (TRUST.md §10: GET wire.RootsPath + N.root.json, 404
// when it has no version N), versions held+1, held+2, … until the mirror answers
// 404, and applies them (ApplyRoots). It does nothing when the
// configuration lists plain keys or no mirror. A root the mirror serves
// but that fails the chain rule leaves the held root in place.
func (a *Agent) ApplyMirrorRoots(ctx context.Context, client *http.Client) (*verify.Root, error) {
	if a.root == nil || a.cfg.Mirror.URL == "" {
		return a.root, nil
	}
	client = a.httpClient(client)
	base, err := url.Parse(strings.TrimSuffix(a.cfg.Mirror.URL, "/"))
	if err != nil {
		return a.root, fmt.Errorf("mirror URL %q: %w", a.cfg.Mirror.URL, err)
	}
	var docs [][]byte
	for v := a.root.Version() + 1; len(docs) < maxMirrorRoots; v++ {
		b, err := fetchRoot(ctx, client, base.JoinPath(wire.RootsPath, wire.RootFile(v)).String())
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
func RootFileVersion(name string) (int64, bool) { return wire.RootFileVersion(name) }

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
	s.KeptRootRefused = a.keptRefused
	warn := a.cfg.Trust.ExpiryWarning.Duration
	if warn == 0 {
		warn = DefaultExpiryWarning
	}
	now := a.now()
	s.RootExpired = !now.Before(s.RootExpires)
	s.RootExpiresSoon = !s.RootExpired && s.RootExpires.Sub(now) <= warn
	if rl, ok := a.root.Signed().Roles[verify.RoleRelease]; ok {
		s.Keys, s.Threshold = len(rl.KeyIDs), rl.Threshold
	}
	return s
}
