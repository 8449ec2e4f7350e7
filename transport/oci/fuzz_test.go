package oci

import (
	"testing"
	"time"
)

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.ferry.bundle.v1","config":{"mediaType":"a","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"subject":{"mediaType":"b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}}`), "")
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`), MediaTypeOCIIndex)
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"sha256:zz","size":-1}}`), MediaTypeDockerManifest)
	f.Fuzz(func(t *testing.T, raw []byte, mt string) {
		m, err := ParseManifest(raw, mt)
		if err != nil {
			return
		}
		if m.SchemaVersion != 2 || m.Config.Digest.Validate() != nil || m.Config.Size < 0 {
			t.Fatalf("accepted a bad manifest: %+v", m)
		}
		for _, l := range m.Layers {
			if l.Digest.Validate() != nil || l.Size < 0 {
				t.Fatalf("accepted a bad layer: %+v", l)
			}
		}
	})
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		idx, err := ParseIndex(raw)
		if err != nil {
			return
		}
		for _, d := range idx.Manifests {
			if d.Digest.Validate() != nil || d.Size < 0 {
				t.Fatalf("accepted a bad descriptor: %+v", d)
			}
		}
	})
}

func FuzzParseTagList(f *testing.F) {
	f.Add([]byte(`{"name":"gw","tags":["1.0.0","sha256-44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a.sig"]}`))
	f.Add([]byte(`{"name":"gw","tags":null}`))
	f.Add([]byte(`{"tags":["../x"]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		tl, err := ParseTagList(raw)
		if err != nil {
			return
		}
		for _, tag := range tl.Tags {
			if !ValidTag(tag) {
				t.Fatalf("accepted tag %q", tag)
			}
		}
	})
}

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"`)
	f.Add(`Basic realm="x"`)
	f.Add(`Bearer realm="a\"b", error=insufficient_scope`)
	f.Fuzz(func(t *testing.T, h string) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := parseChallenge(h)
			if err == nil && c.scheme == "" {
				t.Errorf("no scheme from %q", h)
			}
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("parseChallenge(%q) does not terminate", h)
		}
	})
}

func FuzzParseReference(f *testing.F) {
	f.Add("oci://127.0.0.1:5000/gw:1.0.0")
	f.Add("oci://h/a/b@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			return
		}
		r2, err := ParseReference(r.String())
		if err != nil || r2 != r {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, r, r.String(), r2, err)
		}
	})
}
