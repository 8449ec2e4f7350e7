package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types a registry may answer a manifest request with.
const (
	MediaTypeOCIManifest    = ocispec.MediaTypeImageManifest
	MediaTypeOCIIndex       = ocispec.MediaTypeImageIndex
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// manifestAccept is sent with every manifest request: ferry reads OCI
// manifests, and names the others so that a registry answers with what it
// has and the error can say what the reference is instead.
var manifestAccept = strings.Join([]string{MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerList}, ", ")

// Limits on what a registry may send before it is refused.
const (
	MaxManifestSize = 4 << 20
	MaxIndexSize    = 4 << 20
	MaxTagListSize  = 8 << 20
	maxErrorBody    = 64 << 10
	maxTokenSize    = 1 << 20
)

// ParseManifest decodes an image manifest and checks the shape of its
// descriptors: schemaVersion 2, valid digests, no negative sizes. mediaType
// is the Content-Type the registry gave (it may be empty); it must agree
// with the manifest's own mediaType field where both are set.
func ParseManifest(raw []byte, mediaType string) (*ocispec.Manifest, error) {
	var aux struct {
		ocispec.Manifest
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &aux); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	m := aux.Manifest
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("manifest schemaVersion %d, want 2", m.SchemaVersion)
	}
	if m.MediaType != "" && mediaType != "" && m.MediaType != mediaType {
		return nil, fmt.Errorf("manifest says mediaType %q, registry says %q", m.MediaType, mediaType)
	}
	if m.MediaType == MediaTypeOCIIndex || m.MediaType == MediaTypeDockerList || aux.Manifests != nil {
		return nil, errors.New("this is an image index, not an image manifest")
	}
	if err := checkDescriptor(m.Config); err != nil {
		return nil, fmt.Errorf("manifest config: %w", err)
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(l); err != nil {
			return nil, fmt.Errorf("manifest layer %d: %w", i, err)
		}
	}
	if m.Subject != nil {
		if err := checkDescriptor(*m.Subject); err != nil {
			return nil, fmt.Errorf("manifest subject: %w", err)
		}
	}
	return &m, nil
}

// ParseIndex decodes an image index, such as a referrers response, and
// checks every descriptor in it.
func ParseIndex(raw []byte) (*ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("parse index: %w", err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("index schemaVersion %d, want 2", idx.SchemaVersion)
	}
	if idx.MediaType != "" && idx.MediaType != MediaTypeOCIIndex {
		return nil, fmt.Errorf("index mediaType %q, want %q", idx.MediaType, MediaTypeOCIIndex)
	}
	for i, d := range idx.Manifests {
		if err := checkDescriptor(d); err != nil {
			return nil, fmt.Errorf("index entry %d: %w", i, err)
		}
	}
	return &idx, nil
}

// TagList is the body of GET /v2/<name>/tags/list.
type TagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// ParseTagList decodes a tag list and checks every tag's syntax.
func ParseTagList(raw []byte) (*TagList, error) {
	var tl TagList
	if err := json.Unmarshal(raw, &tl); err != nil {
		return nil, fmt.Errorf("parse tag list: %w", err)
	}
	for _, t := range tl.Tags {
		if !ValidTag(t) {
			return nil, fmt.Errorf("tag list: invalid tag %q", truncate(t))
		}
	}
	return &tl, nil
}

func checkDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", truncate(string(d.Digest)), err)
	}
	if d.Size < 0 {
		return fmt.Errorf("negative size %d", d.Size)
	}
	if d.MediaType == "" {
		return errors.New("no mediaType")
	}
	return nil
}

// challenge is a parsed WWW-Authenticate header.
type challenge struct {
	scheme string            // lower case: "bearer", "basic"
	params map[string]string // realm, service, scope, ...
}

// parseChallenge reads the first challenge of a WWW-Authenticate header:
// a scheme, then comma-separated key=value or key="quoted value" pairs.
func parseChallenge(h string) (challenge, error) {
	h = strings.TrimSpace(h)
	scheme, rest, _ := strings.Cut(h, " ")
	if scheme == "" || strings.ContainsAny(scheme, "=,\"") {
		return challenge{}, fmt.Errorf("WWW-Authenticate %q: no scheme", truncate(h))
	}
	c := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
	s := strings.TrimSpace(rest)
	for s != "" {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return challenge{}, fmt.Errorf("WWW-Authenticate %q: parameter without '='", truncate(h))
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" {
			return challenge{}, fmt.Errorf("WWW-Authenticate %q: empty parameter name", truncate(h))
		}
		v = strings.TrimLeft(v, " ")
		var val string
		if strings.HasPrefix(v, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(v); i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
					b.WriteByte(v[i])
					continue
				}
				if v[i] == '"' {
					break
				}
				b.WriteByte(v[i])
			}
			if i >= len(v) {
				return challenge{}, fmt.Errorf("WWW-Authenticate %q: unterminated quote", truncate(h))
			}
			val, s = b.String(), v[i+1:]
		} else {
			val, s, _ = strings.Cut(v, ",")
			val = strings.TrimSpace(val)
			s = "," + s
		}
		c.params[k] = val
		s = strings.TrimSpace(s)
		s = strings.TrimPrefix(s, ",")
		s = strings.TrimSpace(s)
	}
	return c, nil
}

// checkDigestOf checks raw against d when d is set.
func checkDigestOf(raw []byte, d digest.Digest) error {
	if d == "" {
		return nil
	}
	if err := d.Validate(); err != nil {
		return err
	}
	if got := d.Algorithm().FromBytes(raw); got != d {
		return fmt.Errorf("content digest %s, want %s", got, d)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
