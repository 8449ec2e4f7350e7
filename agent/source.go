package agent

import (
	"context"
	"io"
	"net/http"

	"github.com/ferry-update/ferry/transport"
)

// SourceOptions configure OpenSource.
type SourceOptions struct {
	// PlainHTTP fetches oci:// references over http:// instead of https://.
	PlainHTTP bool
	// Client sends the requests of http(s) and oci:// sources; nil means
	// a client with the default timeouts of internal/httpget.
	Client *http.Client
}

// OpenSource opens the one bundle at src, as transport.OpenBundle does:
// "-" for stdin, an http:// or https:// URL (read with Range resume, see
// httpget.Reader), an oci://HOST/REPO:TAG or oci://HOST/REPO@sha256:...
// reference to a registry or a ferry mirror (a canonical archive stream,
// its blobs resumed with Range), a mounted stick or layout directory
// holding one bundle, or a file path. Nothing is spooled to disk. A file
// or a URL whose content is of another kind (a stick or raw image, a key,
// a web page) fails with a *filekind.Error.
func OpenSource(ctx context.Context, src string, stdin io.Reader, opts SourceOptions) (io.ReadCloser, error) {
	return transport.OpenBundle(ctx, src, opts.transport(stdin))
}

func (opts SourceOptions) transport(stdin io.Reader) transport.Options {
	return transport.Options{Stdin: stdin, Client: opts.Client, PlainHTTP: opts.PlainHTTP, UserAgent: "ferry-agent"}
}

// OpenSource opens a bundle source as the package function does, with the
// configuration's [source] settings.
func (a *Agent) OpenSource(ctx context.Context, src string, stdin io.Reader) (io.ReadCloser, error) {
	return OpenSource(ctx, src, stdin, a.sourceOptions())
}

func (a *Agent) sourceOptions() SourceOptions {
	return SourceOptions{PlainHTTP: a.cfg.Source.PlainHTTP, Client: a.httpClient(nil)}
}

// transportOptions are the transport options of the configuration's
// [source] settings.
func (a *Agent) transportOptions(stdin io.Reader) transport.Options {
	return a.sourceOptions().transport(stdin)
}
