package oci

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Scheme prefixes every reference ferry accepts for a registry.
const Scheme = "oci://"

// Reference names a repository, and optionally one manifest in it, on a
// registry: oci://HOST[:PORT]/REPO[:TAG][@DIGEST].
type Reference struct {
	Host       string        // registry host and port, e.g. "127.0.0.1:5000"
	Repository string        // e.g. "factory/gateway"
	Tag        string        // may be empty
	Digest     digest.Digest // may be empty; wins over Tag when both are set
}

var (
	// From the distribution spec: path components and tags.
	repoRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	hostRE = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$`)
)

// ParseReference parses oci://HOST/REPO[:TAG][@DIGEST].
func ParseReference(s string) (Reference, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Reference{}, fmt.Errorf("reference %q: want %sHOST/REPO[:TAG]", s, Scheme)
	}
	host, path, ok := strings.Cut(rest, "/")
	if !ok || host == "" || path == "" {
		return Reference{}, fmt.Errorf("reference %q: want %sHOST/REPO[:TAG], with a repository after the host", s, Scheme)
	}
	if !hostRE.MatchString(host) {
		return Reference{}, fmt.Errorf("reference %q: invalid registry host %q", s, host)
	}
	r := Reference{Host: host}
	if p, d, ok := strings.Cut(path, "@"); ok {
		dg, err := digest.Parse(d)
		if err != nil {
			return Reference{}, fmt.Errorf("reference %q: digest: %w", s, err)
		}
		r.Digest, path = dg, p
	}
	if i := strings.LastIndexByte(path, ':'); i >= 0 {
		r.Tag, path = path[i+1:], path[:i]
		if !tagRE.MatchString(r.Tag) {
			return Reference{}, fmt.Errorf("reference %q: invalid tag %q: want letters, digits, '_', '.' or '-', at most 128", s, r.Tag)
		}
	}
	if len(path) > 255 || !repoRE.MatchString(path) {
		return Reference{}, fmt.Errorf("reference %q: invalid repository name %q: want lower-case path components", s, path)
	}
	r.Repository = path
	return r, nil
}

// Identifier is the tag or digest that names the manifest: what goes after
// /manifests/ in a URL. It is empty for a bare repository.
func (r Reference) Identifier() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// String formats the reference as ParseReference reads it.
func (r Reference) String() string {
	s := Scheme + r.Host + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// ValidTag reports whether s may be used as a tag.
func ValidTag(s string) bool { return tagRE.MatchString(s) }

// ValidRepository reports whether s may be used as a repository name.
func ValidRepository(s string) bool { return len(s) <= 255 && repoRE.MatchString(s) }
