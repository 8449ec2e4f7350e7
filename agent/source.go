package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/ferry-update/ferry/internal/filekind"
	"github.com/ferry-update/ferry/transport/httpget"
	"github.com/ferry-update/ferry/transport/oci"
)

// SourceOptions configure OpenSource.
type SourceOptions struct {
	// PlainHTTP fetches oci:// references over http:// instead of https://.
	PlainHTTP bool
	// Client sends the requests of http(s) and oci:// sources; nil means
	// a client with the default timeouts of internal/httpget.
	Client *http.Client
}

// OpenSource opens a bundle source: "-" for stdin, an http:// or https://
// URL (read with Range resume, see httpget.Reader), an oci://HOST/REPO:TAG or
// oci://HOST/REPO@sha256:... reference to a registry or a ferry mirror
// (pulled with transport/oci as a canonical archive stream, its blobs
// resumed with Range), or a file path. Nothing is spooled to disk. A file
// or a URL whose content is of another kind (a stick or raw image, a key,
// a web page) fails with a *filekind.Error.
func OpenSource(ctx context.Context, src string, stdin io.Reader, opts SourceOptions) (io.ReadCloser, error) {
	client := opts.Client
	if client == nil {
		client = httpget.NewClient(httpget.Timeouts{})
	}
	switch {
	case src == "-":
		return io.NopCloser(bufio.NewReaderSize(stdin, 1<<20)), nil
	case strings.HasPrefix(src, "http://"), strings.HasPrefix(src, "https://"):
		// A URL that serves a page or JSON (a mirror's or registry's
		// address, not a bundle's) is named as such before any install.
		h := httpget.NewReader(ctx, client, src)
		return readCloser{filekind.NewReader(h, filekind.Bundle, true), h}, nil
	case strings.HasPrefix(src, oci.Scheme):
		return oci.Open(ctx, src, oci.Options{Client: client, PlainHTTP: opts.PlainHTTP, UserAgent: "ferry-agent"})
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	// A stick image, a raw image or a key is named as what it is.
	if err := filekind.CheckFile(src, filekind.Bundle, nil); err != nil {
		f.Close()
		return nil, fmt.Errorf("open bundle %s: %w", src, err)
	}
	return f, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// OpenSource opens a bundle source as the package function does, with the
// configuration's [source] settings.
func (a *Agent) OpenSource(ctx context.Context, src string, stdin io.Reader) (io.ReadCloser, error) {
	return OpenSource(ctx, src, stdin, SourceOptions{PlainHTTP: a.cfg.Source.PlainHTTP, Client: a.httpClient(nil)})
}
