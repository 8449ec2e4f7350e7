package bundle

import (
	"fmt"
	"io"
	"os"
)

// AddSignatures adds signatures to the bundle at path. sign is called with
// the bundle's head (manifest digest, config, signatures already present)
// and returns the new ones. The payloads are checked against their digests first, so a
// corrupt bundle is never signed; then the file is rewritten beside path and
// renamed over it, so path is always either the old or the new bundle.
func AddSignatures(path string, sign func(head *Reader) ([]Signature, error)) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", path, err)
	}
	defer r.Close()
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			err = p.Discard()
		}
		if err != nil {
			return nil, fmt.Errorf("sign %s: refusing to sign a damaged bundle: %w", path, err)
		}
	}
	added, err := sign(r)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", path, err)
	}
	if len(r.sigs)+len(added) > MaxSignatures {
		return nil, fmt.Errorf("sign %s: %d signatures would exceed the limit of %d", path, len(r.sigs)+len(added), MaxSignatures)
	}
	h := &head{
		manifest:    blob{desc: r.index.Manifests[0], data: r.manifestRaw},
		config:      newBlob(ConfigMediaType, r.configRaw),
		sigs:        append(append([]Signature{}, r.sigs...), added...),
		attachments: attachmentBlobs(r.attachments),
		tag:         r.config.Tag(),
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", path, err)
	}
	if _, err := writeRehead(f, r, h, path, st.Mode().Perm()); err != nil {
		return nil, fmt.Errorf("sign %s: %w", path, err)
	}
	r.sigs = h.sigs
	return r, nil
}
