package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/registry"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/transport/wire"
)

// deltaImages are two versions of a 3 MiB "filesystem image": random data
// with a free (zero) stretch; v2 changes three stretches of v1 in place.
func deltaImages() (v1, v2 []byte) {
	v1 = make([]byte, 3<<20)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(v1)
	clear(v1[2<<20 : 5<<19])
	v2 = bytes.Clone(v1)
	rng = rand.NewChaCha8([32]byte{2})
	for _, off := range []int{100_000, 1_200_000, 2_900_000} {
		_, _ = rng.Read(v2[off : off+20_000])
	}
	return v1, v2
}

// deltaEnv is a device that installed and committed v1 (into slot b,
// from a chunked bundle) and a mirror store holding v1 and v2.
type deltaEnv struct {
	*device
	v1, v2     []byte
	b1, b2     []byte
	store      *mirror.Store
	log        *bytes.Buffer
	servedBlob atomic.Int64 // bytes of blobs served over HTTP
	// servedStream counts the bytes of delta streams served; noStream
	// answers them 404 (a mirror without the base); tamper, if set,
	// changes each delta stream served.
	servedStream atomic.Int64
	noStream     bool
	tamper       func([]byte) []byte
}

func newDeltaEnv(t *testing.T) *deltaEnv {
	v1, v2 := deltaImages()
	return newDeltaEnvWith(t, v1, v2)
}

func newDeltaEnvWith(t *testing.T, v1, v2 []byte) *deltaEnv {
	d := newDevice(t)
	e := &deltaEnv{device: d, log: &bytes.Buffer{}}
	d.cfg.Log = e.log
	e.v1, e.v2 = v1, v2
	e.b1 = d.bundle(bundleSpec{version: "1.0.0", rootfs: string(e.v1), chunkBits: bundle.MinChunkAvgBits})
	e.b2 = d.bundle(bundleSpec{version: "2.0.0", rootfs: string(e.v2), chunkBits: bundle.MinChunkAvgBits})
	if err := d.install(e.b1); err != nil {
		t.Fatal(err)
	}
	if err := d.bootCheck(); err != nil {
		t.Fatal(err)
	}
	if st := d.bootState(); st.Slot != "b" || st.UpgradeAvailable {
		t.Fatalf("v1 not committed into slot b: %+v", st)
	}
	if _, err := os.Stat(d.path("state/chunks/rootfs.b.idx")); err != nil {
		t.Fatalf("the chunk index of slot b was not kept: %v", err)
	}
	e.store, _ = mirrorFor(t, e.b1, e.b2)
	return e
}

// serve serves the mirror store like ferry mirror serve, counting the
// blob bytes it sends; wrap, if set, may cut responses.
func (e *deltaEnv) serve(t *testing.T, wrap func(http.ResponseWriter, *http.Request) http.ResponseWriter) string {
	h := server.NewHandler(e.store, server.HandlerOptions{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, wire.DeltaPath) {
			switch {
			case e.noStream:
				http.NotFound(w, r)
				return
			case e.tamper != nil:
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				body := e.tamper(rec.Body.Bytes())
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				w.WriteHeader(rec.Code)
				w.Write(body)
				e.servedStream.Add(int64(len(body)))
				return
			}
			w = &countingWriter{ResponseWriter: w, n: &e.servedStream}
			if wrap != nil {
				w = wrap(w, r)
			}
		}
		if strings.Contains(r.URL.Path, "/blobs/") {
			w = &countingWriter{ResponseWriter: w, n: &e.servedBlob}
			if wrap != nil {
				w = wrap(w, r)
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.cfg.Source.PlainHTTP = true
	return "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/sim-os:2.0.0"
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingWriter) Flush() { c.ResponseWriter.(http.Flusher).Flush() }

func (e *deltaEnv) installFrom(where string) (*Result, error) {
	var res *Result
	err := e.do(func(a *Agent) error {
		var err error
		res, err = a.InstallFrom(context.Background(), where, nil, InstallOptions{})
		return err
	})
	return res, err
}

// checkV2 asserts that slot a holds v2 on trial, and commits it.
func (e *deltaEnv) checkV2(t *testing.T) {
	t.Helper()
	if got := e.read("slot-a.img"); got != string(e.v2) {
		t.Fatalf("slot a holds %d bytes, not v2", len(got))
	}
	if st := e.bootState(); st.Slot != "a" || !st.UpgradeAvailable {
		t.Fatalf("boot state %+v: want slot a on trial", st)
	}
	if err := e.bootCheck(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.path("state/chunks/rootfs.a.idx")); err != nil {
		t.Errorf("the chunk index of slot a was not kept: %v", err)
	}
}

func partsSize(t *testing.T, b []byte) int64 {
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return r.Config().Payloads[0].CompressedSize
}

// TestDeltaInstall: v1 → v2 from a mirror (ferry mirror serve's
// handler), a real docker-registry and a mirror store directory installs
// a byte-identical v2, fetching a small part of the payload.
func TestDeltaInstall(t *testing.T) {
	for _, source := range []string{"mirror", "registry", "layout", "stick"} {
		t.Run(source, func(t *testing.T) {
			e := newDeltaEnv(t)
			var where string
			switch source {
			case "mirror":
				where = e.serve(t, nil)
			case "registry":
				host := testutil.StartRegistry(t)
				proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.Contains(r.URL.Path, "/blobs/") {
						w = &countingWriter{ResponseWriter: w, n: &e.servedBlob}
					}
					testutil.Forward(w, r, host)
				}))
				t.Cleanup(proxy.Close)
				for _, b := range [][]byte{e.b1, e.b2} {
					p := filepath.Join(t.TempDir(), "b.ferry")
					if err := os.WriteFile(p, b, 0o644); err != nil {
						t.Fatal(err)
					}
					if _, err := registry.Push(context.Background(), p, "oci://"+host+"/sim-os", registry.Options{PlainHTTP: true}); err != nil {
						t.Fatal(err)
					}
				}
				e.servedBlob.Store(0)
				e.cfg.Source.PlainHTTP = true
				where = "oci://" + strings.TrimPrefix(proxy.URL, "http://") + "/sim-os:2.0.0"
			case "layout":
				// A store directory holding one bundle.
				st, _ := mirrorFor(t, e.b2)
				where = st.Dir()
			case "stick":
				where = makeStick(t, e.store)
			}
			var err error
			if source == "stick" {
				err = e.do(func(a *Agent) error {
					s, err := stick.OpenDir(where)
					if err == nil {
						_, _, err = a.InstallStick(context.Background(), s)
					}
					return err
				})
			} else {
				_, err = e.installFrom(where)
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, e.log)
			}
			if !strings.Contains(e.log.String(), "payload rootfs: delta from slot b") {
				t.Errorf("no delta install logged:\n%s", e.log)
			}
			e.checkV2(t)
			full := partsSize(t, e.b2)
			if served := e.servedBlob.Load(); (source == "mirror" || source == "registry") && (served == 0 || served > full/4) {
				t.Errorf("%d bytes of blobs served, the payload is %d: want a small part of it", e.servedBlob.Load(), full)
			}
			t.Logf("%s: %d of %d bytes fetched", source, e.servedBlob.Load(), full)
		})
	}
}

// TestDeltaRottedBase: a chunk of the base slot that changed since it was
// installed is fetched instead of reused; v2 is still byte-identical.
func TestDeltaRottedBase(t *testing.T) {
	e := newDeltaEnv(t)
	where := e.serve(t, nil)
	f, err := os.OpenFile(e.path("slot-b.img"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("bit rot"), 600_000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := e.installFrom(where); err != nil {
		t.Fatalf("%v\n%s", err, e.log)
	}
	if !strings.Contains(e.log.String(), "in the base slot at byte") || !strings.Contains(e.log.String(), "1 in the slot did not match and were fetched") {
		t.Errorf("the rotted chunk was not reported:\n%s", e.log)
	}
	e.checkV2(t)
}

// TestDeltaKeptV1Index: a slot whose kept index is of version 1 (16-byte
// IDs, FORMAT.md §15.4; kept by an agent before version 2) is still a base
// for a bundle with a version 2 index.
func TestDeltaKeptV1Index(t *testing.T) {
	e := newDeltaEnv(t)
	where := e.serve(t, nil)
	old, _, err := bundle.ChunkIndexOf(mustReader(t, e.b1), "rootfs")
	if err != nil {
		t.Fatal(err)
	}
	v1 := binary.BigEndian.AppendUint32([]byte("ferrycx1"), uint32(len(old.Chunks)))
	v1 = append(v1, 0, 0, 0, 0)
	var off int
	for _, c := range old.Chunks {
		sum := sha256.Sum256(e.v1[off : off+int(c.Size)])
		off += int(c.Size)
		v1 = binary.BigEndian.AppendUint32(v1, c.Size)
		v1 = binary.BigEndian.AppendUint32(v1, c.CompressedSize)
		v1 = append(v1, sum[:16]...)
	}
	e.write("state/chunks/rootfs.b.idx", string(v1))
	if _, err := e.installFrom(where); err != nil {
		t.Fatalf("%v\n%s", err, e.log)
	}
	if !strings.Contains(e.log.String(), "payload rootfs: delta from slot b") {
		t.Errorf("no delta install logged:\n%s", e.log)
	}
	if e.servedBlob.Load() > partsSize(t, e.b2)/4 {
		t.Errorf("%d bytes served: want a small part of %d", e.servedBlob.Load(), partsSize(t, e.b2))
	}
	e.checkV2(t)
}

// TestDeltaRepeatedChunk: a new chunk that occurs twice in v2 is fetched
// once and then read back from the slot being written.
func TestDeltaRepeatedChunk(t *testing.T) {
	v1, v2 := deltaImages()
	copy(v2[1_600_000:1_640_000], v2[1_200_000-20_000:1_220_000]) // the new stretch, twice
	e := newDeltaEnvWith(t, v1, v2)
	e.noStream = true // the frame path: every new chunk fetched by range
	where := e.serve(t, nil)
	if _, err := e.installFrom(where); err != nil {
		t.Fatalf("%v\n%s", err, e.log)
	}
	e.checkV2(t)
	m := regexp.MustCompile(`(\d+) fetched \((\d+) bytes\), (\d+) read again from slot a`).FindStringSubmatch(e.log.String())
	if m == nil || m[3] == "0" {
		t.Fatalf("no chunk read again from slot a:\n%s", e.log)
	}
	old, _, _ := bundle.ChunkIndexOf(mustReader(t, e.b1), "rootfs")
	nix, _, _ := bundle.ChunkIndexOf(mustReader(t, e.b2), "rootfs")
	diff := bundle.Diff(old, nix)
	if fetched, _ := strconv.ParseInt(m[2], 10, 64); fetched != diff.NewCompressedBytes || m[1] != strconv.Itoa(diff.NewChunks) {
		t.Errorf("fetched %s chunks (%s bytes): want each new chunk once, %d (%d bytes)", m[1], m[2], diff.NewChunks, diff.NewCompressedBytes)
	}
}

func mustReader(t *testing.T, b []byte) *bundle.Reader {
	t.Helper()
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDeltaNoBase: without a kept index, or with one of unrelated
// content, the payload is installed whole, and the log says why.
func TestDeltaNoBase(t *testing.T) {
	for _, tc := range []struct {
		name, why string
		prepare   func(e *deltaEnv)
	}{
		{"no index", "no chunk index is kept for slot b", func(e *deltaEnv) {
			if err := os.Remove(e.path("state/chunks/rootfs.b.idx")); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"unknown base", "shares only", func(e *deltaEnv) {
			other := (&bundle.ChunkIndex{Chunks: []bundle.Chunk{{Size: 3 << 20, CompressedSize: 100}}}).Marshal()
			e.write("state/chunks/rootfs.b.idx", string(other))
		}},
		{"damaged index", "bad chunk index", func(e *deltaEnv) {
			e.write("state/chunks/rootfs.b.idx", "garbage")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDeltaEnv(t)
			where := e.serve(t, nil)
			tc.prepare(e)
			if _, err := e.installFrom(where); err != nil {
				t.Fatalf("%v\n%s", err, e.log)
			}
			if !strings.Contains(e.log.String(), tc.why) || !strings.Contains(e.log.String(), "installing it whole") {
				t.Errorf("log does not say %q and that it installs whole:\n%s", tc.why, e.log)
			}
			if e.servedBlob.Load() < partsSize(t, e.b2) {
				t.Errorf("%d bytes served: want the whole payload", e.servedBlob.Load())
			}
			e.checkV2(t)
		})
	}
}

// TestDeltaMissingChunk: a pack the mirror lacks is a clear error, and
// nothing is activated: slot b still boots, committed.
func TestDeltaMissingChunk(t *testing.T) {
	e := newDeltaEnv(t)
	where := e.serve(t, nil)
	r1, _ := bundle.NewReader(bytes.NewReader(e.b1))
	r2, _ := bundle.NewReader(bytes.NewReader(e.b2))
	old := map[string]bool{}
	for _, l := range r1.Manifest().Layers {
		old[l.Digest.Encoded()] = true
	}
	removed := 0
	for _, l := range r2.Manifest().Layers {
		if !old[l.Digest.Encoded()] && l.MediaType == bundle.PayloadMediaType {
			if err := os.Remove(filepath.Join(e.store.Dir(), "blobs", "sha256", l.Digest.Encoded())); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed == 0 {
		t.Fatal("v2 has no part of its own")
	}
	_, err := e.installFrom(where)
	var re *RefusedError
	if err == nil || errors.As(err, &re) || !strings.Contains(err.Error(), "fetch chunk") {
		t.Fatalf("err = %v, want a failure to fetch a chunk", err)
	}
	if st := e.bootState(); st.Slot != "b" || st.UpgradeAvailable {
		t.Errorf("boot state %+v after the failure: want slot b, committed", st)
	}
	if j := e.journal(); j.State != StateFailed {
		t.Errorf("journal state %s", j.State)
	}
	if _, err := os.Stat(e.path("state/chunks/rootfs.a.idx")); err == nil {
		t.Error("a chunk index was kept for the slot that failed")
	}
}

// TestDeltaResume: a chunk download (the frame path) or a delta stream
// cut short resumes with a Range request, and v2 installs.
func TestDeltaResume(t *testing.T) {
	for _, path := range []string{"frames", "stream"} {
		t.Run(path, func(t *testing.T) {
			e := newDeltaEnv(t)
			e.noStream = path == "frames"
			var cuts, resumed atomic.Int32
			where := e.serve(t, func(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
				stream := strings.HasPrefix(r.URL.Path, wire.DeltaPath)
				if stream && r.Header.Get("Range") != "" {
					resumed.Add(1)
				}
				if (stream || r.Header.Get("Range") != "") && cuts.Add(1) <= 2 {
					return &testutil.CutWriter{ResponseWriter: w, Left: 1000}
				}
				return w
			})
			if _, err := e.installFrom(where); err != nil {
				t.Fatalf("%v\n%s", err, e.log)
			}
			if cuts.Load() < 3 {
				t.Fatalf("%d requests: the test cut nothing", cuts.Load())
			}
			if path == "stream" && (resumed.Load() == 0 || !strings.Contains(e.log.String(), "decoded from the delta stream")) {
				t.Fatalf("the delta stream was not resumed (%d ranges) or not used:\n%s", resumed.Load(), e.log)
			}
			e.checkV2(t)
		})
	}
}

// TestDeltaStream: from a ferry mirror, the chunks the base lacks come
// from the delta stream (bundle/FORMAT.md §15.9): v2 is byte-identical,
// the chunk index is not fetched again, and the device moves fewer bytes
// than on the frame path (the same install without the stream).
func TestDeltaStream(t *testing.T) {
	moved := map[bool]int64{}
	for _, stream := range []bool{false, true} {
		e := newDeltaEnv(t)
		e.noStream = !stream
		where := e.serve(t, nil)
		if _, err := e.installFrom(where); err != nil {
			t.Fatalf("%v\n%s", err, e.log)
		}
		e.checkV2(t)
		used := strings.Contains(e.log.String(), "payload rootfs: delta stream from the mirror")
		if used != stream || stream != regexp.MustCompile(`[1-9]\d* chunks decoded from the delta stream of \d+ bytes, 0 of its records did not match`).MatchString(e.log.String()) {
			t.Fatalf("stream %v: the log says otherwise:\n%s", stream, e.log)
		}
		if !stream && !strings.Contains(e.log.String(), "no delta stream") {
			t.Errorf("the frame path is not logged:\n%s", e.log)
		}
		moved[stream] = e.servedBlob.Load() + e.servedStream.Load()
		t.Logf("stream %v: %d bytes of blobs, %d of the delta stream", stream, e.servedBlob.Load(), e.servedStream.Load())
	}
	if moved[true] >= moved[false]*3/4 {
		t.Errorf("the stream path moved %d bytes, the frame path %d", moved[true], moved[false])
	}
}

// TestDeltaStreamNoBase: a mirror that does not hold the device's base
// answers 404; the device fetches the chunks by range and says so.
func TestDeltaStreamNoBase(t *testing.T) {
	e := newDeltaEnv(t)
	e.store, _ = mirrorFor(t, e.b2)
	where := e.serve(t, nil)
	if _, err := e.installFrom(where); err != nil {
		t.Fatalf("%v\n%s", err, e.log)
	}
	if !regexp.MustCompile(`no delta stream \(.*Not Found.*\): fetching the chunks by range`).MatchString(e.log.String()) || e.servedStream.Load() > 1000 {
		t.Errorf("a 404 is not logged as the frame path (%d stream bytes):\n%s", e.servedStream.Load(), e.log)
	}
	e.checkV2(t)
}

// TestDeltaStreamRottedDict: base bytes a record is decoded against that
// changed since the base was installed make the record fail its check;
// that chunk is fetched by range and v2 is still byte-identical.
func TestDeltaStreamRottedDict(t *testing.T) {
	e := newDeltaEnv(t)
	where := e.serve(t, nil)
	f, err := os.OpenFile(e.path("slot-b.img"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// v2 replaced 1 200 000 to 1 220 000 of v1: these bytes of slot b
	// belong to no chunk v2 shares, only to the dictionaries of its new
	// chunks there.
	for off := int64(1_195_000); off < 1_225_000; off += 1000 {
		if _, err := f.WriteAt([]byte("rot"), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if _, err := e.installFrom(where); err != nil {
		t.Fatalf("%v\n%s", err, e.log)
	}
	if !regexp.MustCompile(`from the delta stream: .*: fetching it`).MatchString(e.log.String()) ||
		regexp.MustCompile(` 0 of its records did not match`).MatchString(e.log.String()) {
		t.Errorf("no record failed against the rotted base:\n%s", e.log)
	}
	e.checkV2(t)
}

// TestDeltaStreamHostile: a stream changed on the way (a flipped byte in
// a record or in the index frame, lengths beyond their bounds, a stream
// cut short) is refused whole or record by record, with what it could not
// give fetched by range; v2 is byte-identical and nothing else is ever
// written.
func TestDeltaStreamHostile(t *testing.T) {
	// firstRecord returns where the first record starts.
	firstRecord := func(b []byte) int { return 80 + int(binary.BigEndian.Uint32(b[72:])) }
	// rewrite re-encodes the first record's gap and dictionary length.
	rewrite := func(gap, dictLen func(uint64) uint64) func([]byte) []byte {
		return func(b []byte) []byte {
			off := firstRecord(b)
			g, n := binary.Uvarint(b[off:])
			dl, m := binary.Uvarint(b[off+n:])
			out := append(bytes.Clone(b[:off]), binary.AppendUvarint(nil, gap(g))...)
			out = binary.AppendUvarint(out, dictLen(dl))
			return append(out, b[off+n+m:]...)
		}
	}
	same := func(v uint64) uint64 { return v }
	for _, tc := range []struct {
		name   string
		tamper func([]byte) []byte
		log    string
	}{
		{"record flipped", func(b []byte) []byte { b[len(b)-40] ^= 0x10; return b }, `from the delta stream: .*: fetching it|delta stream: .*: fetching the chunks from`},
		{"index frame flipped", func(b []byte) []byte { b[100] ^= 0x10; return b }, `delta stream refused: bad delta stream: .*: fetching the chunks by range`},
		{"another index", func(b []byte) []byte { b[50] ^= 1; return b }, `delta stream refused: bad delta stream: made for another index`},
		{"record count too high", func(b []byte) []byte { binary.BigEndian.PutUint32(b[76:], 1<<31); return b }, `delta stream refused: bad delta stream: \d+ records for \d+ chunks`},
		{"chunk beyond the index", rewrite(func(uint64) uint64 { return 1 << 40 }, same), `delta stream: bad delta stream: record names chunk`},
		{"dictionary too long", rewrite(same, func(uint64) uint64 { return 1 << 30 }), `delta stream: bad delta stream: chunk \d+: dictionary of 1073741824 bytes`},
		{"truncated", func(b []byte) []byte { return b[:firstRecord(b)+len(b[firstRecord(b):])/2] }, `delta stream: delta stream frame: unexpected EOF: fetching the chunks from|delta stream: delta stream record: unexpected EOF`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDeltaEnv(t)
			e.tamper = tc.tamper
			where := e.serve(t, nil)
			if _, err := e.installFrom(where); err != nil {
				t.Fatalf("%v\n%s", err, e.log)
			}
			if !regexp.MustCompile(tc.log).MatchString(e.log.String()) {
				t.Errorf("log does not match %q:\n%s", tc.log, e.log)
			}
			e.checkV2(t)
		})
	}
}
