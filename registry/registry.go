package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/layout"
	"github.com/ferry-update/ferry/transport/oci"
)

// Options say how to reach a registry.
type Options struct {
	// PlainHTTP talks http:// (loopback and test registries). Loopback
	// and localhost registries get http:// even without it, as docker does.
	PlainHTTP bool
	// Keychain finds credentials; nil means authn.DefaultKeychain, which
	// reads the Docker config file (~/.docker/config.json, $DOCKER_CONFIG)
	// and its credential helpers.
	Keychain authn.Keychain
	// Transport carries the requests; nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// Progress, if set, is called by Push with the number of blob bytes
	// uploaded so far.
	Progress func(uploaded int64)
}

// remoteRepo is one repository on a registry, reached with go-containerregistry's
// authenticating transport. Its client is an oci.Repository over that
// transport, so pulls share the device's code and checks.
type remoteRepo struct {
	repo     name.Repository
	client   *oci.Repository
	opts     []remote.Option
	progress func(int64)
	sent     int64
}

func connect(ctx context.Context, ref oci.Reference, o Options, push bool) (*remoteRepo, error) {
	var nopts []name.Option
	if o.PlainHTTP {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(ref.Host+"/"+ref.Repository, nopts...)
	if err != nil {
		return nil, fmt.Errorf("repository %s/%s: %w", ref.Host, ref.Repository, err)
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	tr := o.Transport
	if tr == nil {
		tr = remote.DefaultTransport
	}
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo.RegistryStr(), err)
	}
	scope := repo.Scope(transport.PullScope)
	if push {
		scope = repo.Scope(transport.PushScope)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, tr, []string{scope})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", repo.RegistryStr(), err)
	}
	client := oci.NewRepository(repo.RegistryStr(), repo.RepositoryStr(), oci.Options{
		Client:    &http.Client{Transport: rt},
		PlainHTTP: repo.Scheme() == "http",
	})
	return &remoteRepo{
		progress: o.Progress,
		repo:     repo,
		client:   client,
		opts: []remote.Option{
			remote.WithContext(ctx),
			remote.WithAuthFromKeychain(kc),
			remote.WithTransport(tr),
			remote.WithReferrersTagFallback(false),
		},
	}, nil
}

// Repository connects to the repository ref names for pulling, with
// go-containerregistry's authenticating transport (credentials from o's
// Keychain), and returns a client over it: what a mirror sync reads from.
func Repository(ctx context.Context, ref oci.Reference, o Options) (*oci.Repository, error) {
	r, err := connect(ctx, ref, o, false)
	if err != nil {
		return nil, err
	}
	return r.client, nil
}

// Referrer push outcomes reported in PushResult.Referrers.
const (
	ReferrersPushed      = "pushed"
	ReferrersUnsupported = "unsupported" // the registry has no referrers API: tag scheme only
	ReferrersNone        = "none"        // nothing to refer: the bundle has no signatures
)

// PushResult says what Push did.
type PushResult struct {
	Reference       string        `json:"reference"` // oci://HOST/REPO:TAG
	Digest          digest.Digest `json:"digest"`    // the manifest digest, as signed
	Name            string        `json:"name"`
	Version         string        `json:"version"`
	BlobsUploaded   int           `json:"blobsUploaded"`
	BlobsPresent    int           `json:"blobsPresent"` // already in the registry: skipped
	BytesUploaded   int64         `json:"bytesUploaded"`
	Signatures      int           `json:"signatures"`      // under the signature tag, after merging
	SignaturesAdded int           `json:"signaturesAdded"` // of them, new with this push
	SignatureTag    string        `json:"signatureTag,omitempty"`
	Referrers       string        `json:"referrers"` // ReferrersPushed, ReferrersUnsupported or ReferrersNone
}

// Push uploads the bundle file at bundlePath to ref (oci://HOST/REPO[:TAG];
// the tag defaults to the bundle's version). Blobs the repository already
// holds are skipped; the manifest is put byte for byte as signed, so its
// digest does not change; the bundle's signatures are merged with those
// already stored under the cosign tag sha256-<hex>.sig, and also pushed as
// OCI 1.1 referrers where the registry has the referrers API.
func Push(ctx context.Context, bundlePath, ref string, o Options) (*PushResult, error) {
	res, err := push(ctx, bundlePath, ref, o)
	if err != nil {
		return res, fmt.Errorf("push %s: %w", ref, err)
	}
	return res, nil
}

func push(ctx context.Context, bundlePath, refStr string, o Options) (*PushResult, error) {
	ref, err := oci.ParseReference(refStr)
	if err != nil {
		return nil, err
	}
	if ref.Digest != "" {
		return nil, errors.New("push to a tag, not a digest: the digest is the bundle's own")
	}
	a, err := bundle.OpenArchive(bundlePath)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if ref.Tag == "" {
		ref.Tag = a.Config().Tag()
	}
	reg, err := connect(ctx, ref, o, true)
	if err != nil {
		return nil, err
	}
	d := a.ManifestDigest()
	res := &PushResult{Reference: ref.String(), Digest: d, Name: a.Config().Name, Version: a.Config().Version, Referrers: ReferrersNone}

	m := a.Manifest()
	cfg := a.RawConfig()
	if err := reg.putBlob(ctx, res, m.Config, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(cfg)), nil }); err != nil {
		return res, fmt.Errorf("config: %w", err)
	}
	for i, l := range m.Layers {
		err := reg.putBlob(ctx, res, l, func() (io.ReadCloser, error) {
			r, _, err := a.Blob(l.Digest)
			return io.NopCloser(r), err
		})
		if err != nil {
			return res, fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
	}
	// Signatures before the bundle's tag: whoever sees the tag finds them.
	sigs := a.Signatures()
	if err := reg.pushSignatures(ctx, res, d, sigs); err != nil {
		return res, err
	}
	if err := reg.putManifest(ref.Tag, a.RawManifest(), bundle.ManifestMediaType); err != nil {
		return res, fmt.Errorf("manifest: %w", err)
	}
	if res.Signatures > 0 || len(a.Attachments()) > 0 {
		subject := ocispec.Descriptor{MediaType: bundle.ManifestMediaType, Digest: d, Size: int64(len(a.RawManifest()))}
		if err := reg.pushReferrers(ctx, res, subject, sigs, a.Attachments()); err != nil {
			return res, err
		}
	}
	return res, nil
}

// putBlob uploads a blob unless the repository has it.
func (r *remoteRepo) putBlob(ctx context.Context, res *PushResult, d ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	ok, err := r.client.BlobExists(ctx, d.Digest)
	if err != nil {
		return err
	}
	if ok {
		res.BlobsPresent++
		return nil
	}
	if r.progress != nil {
		inner := open
		open = func() (io.ReadCloser, error) {
			rc, err := inner()
			if err != nil {
				return nil, err
			}
			return &progressReader{ReadCloser: rc, r: r}, nil
		}
	}
	l, err := partial.CompressedToLayer(&blobLayer{d: d, open: open})
	if err != nil {
		return err
	}
	if err := remote.WriteLayer(r.repo, l, r.opts...); err != nil {
		return err
	}
	res.BlobsUploaded++
	res.BytesUploaded += d.Size
	return nil
}

// putManifest puts raw, unchanged, under tag or (tag == "") its digest.
func (r *remoteRepo) putManifest(tag string, raw []byte, mediaType string) error {
	var ref name.Reference = r.repo.Digest(digest.FromBytes(raw).String())
	if tag != "" {
		ref = r.repo.Tag(tag)
	}
	return remote.Put(ref, rawManifest{raw: raw, mediaType: types.MediaType(mediaType)}, r.opts...)
}

// pushSignatures merges sigs into the signature tag. It puts the merged
// manifest and reads it back; if a concurrent push replaced it in between
// (losing ours), it merges again, a few times.
func (r *remoteRepo) pushSignatures(ctx context.Context, res *PushResult, d digest.Digest, sigs []bundle.Signature) error {
	tag := bundle.SignatureTag(d)
	for attempt := 0; ; attempt++ {
		old, err := oci.FetchSignatures(ctx, r.client, d)
		if err != nil {
			return err
		}
		merged, added := oci.MergeSignatures(old, sigs)
		if attempt == 0 {
			res.SignaturesAdded = added
		}
		res.Signatures = len(merged)
		if added == 0 {
			if len(merged) > 0 {
				res.SignatureTag = tag
			}
			return nil
		}
		if len(merged) > bundle.MaxSignatures {
			return fmt.Errorf("signatures %s: %d would exceed the limit of %d", tag, len(merged), bundle.MaxSignatures)
		}
		if attempt == 3 {
			return fmt.Errorf("signatures %s: still missing after %d attempts: another push keeps replacing the tag", tag, attempt)
		}
		art, err := layout.SignatureArtifact(merged)
		if err != nil {
			return err
		}
		if err := r.putArtifact(ctx, res, art, tag); err != nil {
			return fmt.Errorf("signatures %s: %w", tag, err)
		}
		// Loop: read back and check that ours survived.
	}
}

// pushReferrers pushes one referrer per signature and one per attachment
// (an SBOM) where the registry has the referrers API, and records whether
// it did.
func (r *remoteRepo) pushReferrers(ctx context.Context, res *PushResult, subject ocispec.Descriptor, sigs []bundle.Signature, atts []bundle.AttachmentData) error {
	// Unfiltered: some registries (go-containerregistry's in-memory one)
	// report the config media type as artifactType; digests decide here.
	have, err := r.client.Referrers(ctx, subject.Digest, "")
	if errors.Is(err, oci.ErrReferrersUnsupported) {
		res.Referrers = ReferrersUnsupported
		return nil
	}
	if err != nil {
		return fmt.Errorf("referrers: %w", err)
	}
	known := map[digest.Digest]bool{}
	for _, h := range have {
		known[h.Digest] = true
	}
	arts, err := layout.ReferrerArtifacts(subject, sigs)
	if err != nil {
		return err
	}
	for _, at := range atts {
		if bundle.IsChunkIndex(at.MediaType) {
			continue // a part of the payload, not a document about it
		}
		art, err := layout.AttachmentReferrer(subject, at)
		if err != nil {
			return err
		}
		arts = append(arts, art)
	}
	for _, art := range arts {
		if known[art.Digest()] {
			continue
		}
		if err := r.putArtifact(ctx, res, art, ""); err != nil {
			return fmt.Errorf("referrer %s: %w", art.Digest(), err)
		}
	}
	res.Referrers = ReferrersPushed
	return nil
}

func (r *remoteRepo) putArtifact(ctx context.Context, res *PushResult, art *layout.Artifact, tag string) error {
	for d, b := range art.Blobs {
		data := b.Data
		desc := ocispec.Descriptor{MediaType: b.MediaType, Digest: d, Size: int64(len(data))}
		if err := r.putBlob(ctx, res, desc, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }); err != nil {
			return err
		}
	}
	return r.putManifest(tag, art.Manifest, art.MediaType)
}

// progressReader reports upload progress.
type progressReader struct {
	io.ReadCloser
	r *remoteRepo
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	p.r.sent += int64(n)
	p.r.progress(p.r.sent)
	return n, err
}

// blobLayer is a blob as go-containerregistry's partial.CompressedLayer.
type blobLayer struct {
	d    ocispec.Descriptor
	open func() (io.ReadCloser, error)
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return v1.NewHash(l.d.Digest.String()) }
func (l *blobLayer) Compressed() (io.ReadCloser, error)  { return l.open() }
func (l *blobLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return types.MediaType(l.d.MediaType), nil }

// rawManifest puts manifest bytes as they are.
type rawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }

// PullResult says what Pull fetched.
type PullResult struct {
	Reference  string        `json:"reference"`
	Digest     digest.Digest `json:"digest"`
	Name       string        `json:"name"`
	Version    string        `json:"version"`
	Signatures int           `json:"signatures"`
}

// Pull fetches the bundle that ref (oci://HOST/REPO:TAG or @DIGEST) names
// and writes it to w as a canonical bundle archive, streaming each layer
// from the registry and checking it on the way. Signatures come from the
// cosign tag and from OCI 1.1 referrers, merged; a bundle with neither
// (copied by a tool that does not know them) is written without signatures, and verify then refuses it for
// want of them, which is the right verdict. Something that is not a ferry
// bundle is an *oci.NotBundleError.
func Pull(ctx context.Context, ref string, w io.Writer, o Options) (*PullResult, error) {
	res, err := pull(ctx, ref, w, o)
	if err != nil {
		return res, fmt.Errorf("pull %s: %w", ref, err)
	}
	return res, nil
}

func pull(ctx context.Context, refStr string, w io.Writer, o Options) (*PullResult, error) {
	ref, err := oci.ParseReference(refStr)
	if err != nil {
		return nil, err
	}
	if ref.Identifier() == "" {
		return nil, fmt.Errorf("no tag or digest: name the bundle, e.g. %s:1.0.0", refStr)
	}
	reg, err := connect(ctx, ref, o, false)
	if err != nil {
		return nil, err
	}
	h, err := oci.FetchHead(ctx, reg.client, ref.Identifier())
	if err != nil {
		return nil, err
	}
	cfg, err := bundle.ParseConfig(h.Config)
	if err != nil {
		return nil, err
	}
	res := &PullResult{Reference: ref.String(), Digest: h.Digest, Name: cfg.Name, Version: cfg.Version, Signatures: len(h.Signatures)}
	return res, h.Assemble(ctx, reg.client, w)
}
