package main

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the expected files embedded in testdata/*.txtar from the actual output")

// TestMain lets the test binary act as the ferry command inside the scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"ferry": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/*.txtar: each script documents one area of the
// command line's behaviour. Besides testscript's own commands they may use:
//
//	exitcode N PROG [ARGS...]  run PROG and require exit status N (stdout/stderr are kept for stdout/stderr)
//	randfile FILE SIZE [SEED]  write SIZE deterministic pseudo-random (incompressible) bytes
//	flipbyte FILE OFFSET       invert every bit of the byte at OFFSET (negative: from the end)
//	truncate FILE SIZE|-N|REGION  cut FILE to SIZE bytes, N bytes shorter, or at REGION
//	corrupt FILE REGION        damage one place of a bundle, found by parsing its tar
//	swapblob FILE OTHER        put OTHER's first payload part under FILE's first payload part's name
//	flippart IMAGE BUNDLE      find BUNDLE's last payload part inside IMAGE (a stick) and invert its 100th byte
//	softhsm LABEL...           make SoftHSM2 tokens in $WORK/hsm and point the environment at them (cmdSoftHSM)
//	sigfiles KIND FILE DIR     write each signature of FILE and what it signs, for openssl (cmdSigFiles)
//	serve VAR DIR [FLAG...]    run 'ferry mirror serve DIR' on a loopback port until the script ends; $VAR is its URL (cmdServe)
//
// REGION is one of the names regionOffset documents. [have:NAME] is true
// when the program NAME is installed (testtool.Condition: under CI a
// missing one fails the script). $ESC, $BEL and $RLO hold ESC, BEL and
// U+202E (right-to-left override), for hostile text in arguments.
func TestScripts(t *testing.T) {
	testtool.CheckScripts(t, "testdata")
	testscript.Run(t, testscript.Params{
		Dir:                "testdata",
		UpdateScripts:      *update,
		RequireUniqueNames: true,
		Condition:          testtool.Condition,
		Setup: func(env *testscript.Env) error {
			env.Setenv("ESC", "\x1b")
			env.Setenv("BEL", "\a")
			env.Setenv("RLO", "\u202e")
			return nil
		},
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"exitcode":    testutil.ExitCode,
			"randfile":    cmdRandfile,
			"flipbyte":    cmdFlipbyte,
			"truncate":    cmdTruncate,
			"corrupt":     cmdCorrupt,
			"swapblob":    cmdSwapblob,
			"flippart":    cmdFlippart,
			"signcheckin": cmdSignCheckin,
			"stickreport": cmdStickReport,
			"softhsm":     cmdSoftHSM,
			"sigfiles":    cmdSigFiles,
			"serve":       cmdServe,
		},
	})
}

func cmdRandfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: randfile FILE SIZE [SEED]")
	}
	size, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	var seed uint64 = 1
	if len(args) == 3 {
		seed, err = strconv.ParseUint(args[2], 10, 64)
		ts.Check(err)
	}
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	data := make([]byte, size)
	_, _ = rng.Read(data)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), data, 0o644))
}

func cmdFlipbyte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE OFFSET")
	}
	path := ts.MkAbs(args[0])
	off, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	ts.Check(flipAt(path, off))
}

func flipAt(path string, off int64) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if off < 0 {
		off += int64(len(data))
	}
	if off < 0 || off >= int64(len(data)) {
		return fmt.Errorf("offset %d outside %s (%d bytes)", off, path, len(data))
	}
	data[off] ^= 0xff
	return os.WriteFile(path, data, 0o644)
}

func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate FILE SIZE|-N|REGION")
	}
	path := ts.MkAbs(args[0])
	st, err := os.Stat(path)
	ts.Check(err)
	size, err := strconv.ParseInt(args[1], 10, 64)
	switch {
	case err != nil:
		b, err := parseBundleFile(path)
		ts.Check(err)
		size, err = b.regionOffset(args[1])
		ts.Check(err)
	case size < 0:
		size += st.Size()
	}
	if size < 0 || size > st.Size() {
		ts.Fatalf("truncate: size %d outside %s (%d bytes)", size, args[0], st.Size())
	}
	ts.Logf("truncate %s from %d to %d bytes", args[0], st.Size(), size)
	ts.Check(os.Truncate(path, size))
}

// corrupt FILE REGION damages the bundle in one place. For most regions it
// inverts one byte; "index" points the index at another manifest, and
// "signature" alters a signature's value and rewrites the signature manifest
// and index around it, so that only the cryptographic check can notice.
func cmdCorrupt(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: corrupt FILE REGION")
	}
	path := ts.MkAbs(args[0])
	b, err := parseBundleFile(path)
	ts.Check(err)
	switch args[1] {
	case "index":
		m := b.member("index.json")
		i := bytes.Index(m.data, []byte(b.index.Manifests[0].Digest.Encoded()))
		if i < 0 {
			ts.Fatalf("corrupt: manifest digest not found in index.json")
		}
		off := m.dataOff + int64(i) + 63 // last hex digit of the digest
		c := byte('0')
		if m.data[i+63] == '0' {
			c = '1'
		}
		ts.Logf("corrupt %s: index.json names another manifest (offset %d)", args[0], off)
		ts.Check(writeByteAt(path, off, c))
	case "signature":
		ts.Check(b.forgeSignature(path))
		ts.Logf("corrupt %s: altered the value of signature 1 and re-encoded its manifest and the index", args[0])
	default:
		off, err := b.regionOffset(args[1])
		ts.Check(err)
		ts.Logf("corrupt %s: flip the byte at offset %d (%s)", args[0], off, args[1])
		ts.Check(flipAt(path, off))
	}
}

// swapblob FILE OTHER: the data of OTHER's first payload part is stored in
// FILE under the name (and so the digest) FILE's manifest expects.
func cmdSwapblob(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: swapblob FILE OTHER")
	}
	dst, err := parseBundleFile(ts.MkAbs(args[0]))
	ts.Check(err)
	src, err := parseBundleFile(ts.MkAbs(args[1]))
	ts.Check(err)
	name := blobPath(dst.manifest.Layers[0].Digest)
	data := src.member(blobPath(src.manifest.Layers[0].Digest)).data
	ts.Check(dst.rewrite(ts.MkAbs(args[0]), func(m *tarMember) {
		if m.hdr.Name == name {
			m.data = data
		}
	}))
}

func writeByteAt(path string, off int64, c byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte{c}, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tarMember is one member of a bundle archive and where it sits.
type tarMember struct {
	hdr     *tar.Header
	hdrOff  int64 // offset of its first header block
	dataOff int64 // offset of its data
	data    []byte
}

// bundleFile is a bundle archive taken apart with archive/tar only, without
// package bundle, so that tests can damage what the reader is meant to catch.
type bundleFile struct {
	members     []*tarMember
	index       ocispec.Index
	manifest    ocispec.Manifest
	sigManifest *ocispec.Manifest // nil when unsigned
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

func parseBundleFile(path string) (*bundleFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := &countingReader{r: f}
	tr := tar.NewReader(cr)
	b := &bundleFile{}
	var end int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		m := &tarMember{hdr: hdr, hdrOff: (end + 511) &^ 511, dataOff: cr.n}
		if m.data, err = io.ReadAll(tr); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, hdr.Name, err)
		}
		end = m.dataOff + int64(len(m.data))
		b.members = append(b.members, m)
	}
	idx := b.member("index.json")
	if idx == nil {
		return nil, fmt.Errorf("%s: no index.json", path)
	}
	if err := json.Unmarshal(idx.data, &b.index); err != nil || len(b.index.Manifests) == 0 {
		return nil, fmt.Errorf("%s: index.json: %v", path, err)
	}
	if err := b.decode(b.index.Manifests[0].Digest, &b.manifest); err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", path, err)
	}
	if len(b.index.Manifests) > 1 {
		b.sigManifest = new(ocispec.Manifest)
		if err := b.decode(b.index.Manifests[1].Digest, b.sigManifest); err != nil {
			return nil, fmt.Errorf("%s: signature manifest: %w", path, err)
		}
	}
	return b, nil
}

func blobPath(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }

func (b *bundleFile) member(name string) *tarMember {
	for _, m := range b.members {
		if m.hdr.Name == name {
			return m
		}
	}
	return nil
}

func (b *bundleFile) decode(d digest.Digest, v any) error {
	m := b.member(blobPath(d))
	if m == nil {
		return fmt.Errorf("no member %s", blobPath(d))
	}
	return json.Unmarshal(m.data, v)
}

// regionOffset returns the file offset of one byte in a named region:
//
//	manifest, config        the middle of the bundle manifest / config blob
//	signature-payload       the middle of signature 1's signed (simple-signing) payload
//	payloads                the first header block of the first payload part
//	payload-start           the first byte of the payload data
//	payload-middle          the middle byte of all payload data (across its parts)
//	payload-end             the last byte of the payload data
func (b *bundleFile) regionOffset(region string) (int64, error) {
	middleOf := func(d digest.Digest) (int64, error) {
		m := b.member(blobPath(d))
		if m == nil || len(m.data) == 0 {
			return 0, fmt.Errorf("region %s: no member %s", region, blobPath(d))
		}
		return m.dataOff + int64(len(m.data))/2, nil
	}
	layers := b.manifest.Layers
	layerAt := func(i int) *tarMember { return b.member(blobPath(layers[i].Digest)) }
	switch region {
	case "manifest":
		return middleOf(b.index.Manifests[0].Digest)
	case "config":
		return middleOf(b.manifest.Config.Digest)
	case "signature-payload":
		if b.sigManifest == nil || len(b.sigManifest.Layers) == 0 {
			return 0, errors.New("region signature-payload: the bundle is not signed")
		}
		return middleOf(b.sigManifest.Layers[0].Digest)
	case "payloads":
		return layerAt(0).hdrOff, nil
	case "payload-start":
		return layerAt(0).dataOff, nil
	case "payload-end":
		last := layerAt(len(layers) - 1)
		return last.dataOff + int64(len(last.data)) - 1, nil
	case "payload-middle":
		var total int64
		for _, l := range layers {
			total += l.Size
		}
		pos := total / 2
		for i, l := range layers {
			if pos < l.Size {
				return layerAt(i).dataOff + pos, nil
			}
			pos -= l.Size
		}
	}
	return 0, fmt.Errorf("unknown region %q (want manifest, config, signature-payload, payloads, payload-start, payload-middle or payload-end)", region)
}

// rewrite writes the archive back to path after edit has seen (and maybe
// changed) every member; sizes follow the data.
func (b *bundleFile) rewrite(path string, edit func(*tarMember)) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range b.members {
		edit(m)
		hdr := *m.hdr
		if hdr.Typeflag != tar.TypeXGlobalHeader {
			hdr.Size = int64(len(m.data))
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeXGlobalHeader {
			if _, err := tw.Write(m.data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// forgeSignature inverts one byte of signature 1's value and re-encodes the
// signature manifest and the index to match, as someone who can write the
// file but holds no key would.
func (b *bundleFile) forgeSignature(path string) error {
	if b.sigManifest == nil || len(b.sigManifest.Layers) == 0 {
		return errors.New("the bundle is not signed")
	}
	sm := b.sigManifest
	sig, err := base64.StdEncoding.DecodeString(sm.Layers[0].Annotations[bundle.CosignSigAnnotation])
	if err != nil {
		return err
	}
	sig[len(sig)/2] ^= 0xff
	sm.Layers[0].Annotations[bundle.CosignSigAnnotation] = base64.StdEncoding.EncodeToString(sig)
	smJSON, err := json.Marshal(sm)
	if err != nil {
		return err
	}
	oldName := blobPath(b.index.Manifests[1].Digest)
	b.index.Manifests[1].Digest = digest.FromBytes(smJSON)
	b.index.Manifests[1].Size = int64(len(smJSON))
	idxJSON, err := json.Marshal(&b.index)
	if err != nil {
		return err
	}
	return b.rewrite(path, func(m *tarMember) {
		switch m.hdr.Name {
		case "index.json":
			m.data = idxJSON
		case oldName:
			m.hdr.Name = blobPath(b.index.Manifests[1].Digest)
			m.data = smJSON
		}
	})
}

// TestHelpersFindRegions keeps the tampering helpers honest: each region
// lies inside the member it names.
func TestHelpersFindRegions(t *testing.T) {
	dir := t.TempDir()
	img := dir + "/rootfs.img"
	data := make([]byte, 5000)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(data)
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	if code := run([]string{"key", "generate", "-o", dir + "/k"}, strings.NewReader(""), io.Discard, &stderr); code != 0 {
		t.Fatalf("key generate: %d %s", code, &stderr)
	}
	file := dir + "/b.ferry"
	if code := run([]string{"bundle", "create", img, "-d", "x", "-V", "1.0.0", "-o", file, "--part-size", "2KiB", "--key", dir + "/k.key"}, strings.NewReader(""), io.Discard, &stderr); code != 0 {
		t.Fatalf("bundle create: %d %s", code, &stderr)
	}
	b, err := parseBundleFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.manifest.Layers) != 3 {
		t.Fatalf("%d layers, want 3", len(b.manifest.Layers))
	}
	within := func(region string, d digest.Digest) {
		t.Helper()
		off, err := b.regionOffset(region)
		if err != nil {
			t.Fatal(err)
		}
		m := b.member(blobPath(d))
		if off < m.dataOff || off >= m.dataOff+int64(len(m.data)) {
			t.Errorf("%s at %d is not inside %s [%d, %d)", region, off, m.hdr.Name, m.dataOff, m.dataOff+int64(len(m.data)))
		}
	}
	within("manifest", b.index.Manifests[0].Digest)
	within("config", b.manifest.Config.Digest)
	within("signature-payload", b.sigManifest.Layers[0].Digest)
	within("payload-start", b.manifest.Layers[0].Digest)
	within("payload-middle", b.manifest.Layers[1].Digest)
	within("payload-end", b.manifest.Layers[2].Digest)
	if off, _ := b.regionOffset("payloads"); off != b.member(blobPath(b.manifest.Layers[0].Digest)).dataOff-512 {
		t.Errorf("payloads at %d, want the header block in front of the first part", off)
	}
}

// TestREADMECommands: the README's command table names every command.
func TestREADMECommands(t *testing.T) {
	testutil.CommandsDocumented(t, newRootCommand(nil, io.Discard, io.Discard), "../../README.md")
}

// TestDocsCommandLines: every command line the guides show (README,
// docs/, examples/) names a command and flags this program has.
func TestDocsCommandLines(t *testing.T) {
	files := testutil.GuideFiles(t, "../..")
	if n := testutil.CommandLinesValid(t, newRootCommand(nil, io.Discard, io.Discard), files...); n < 50 {
		t.Errorf("checked only %d command lines in %v", n, files)
	} else {
		t.Logf("%d command lines checked", n)
	}
}

func cmdFlippart(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flippart IMAGE BUNDLE")
	}
	a, err := bundle.OpenArchive(ts.MkAbs(args[1]))
	ts.Check(err)
	defer a.Close()
	layers := a.Manifest().Layers
	r, _, err := a.Blob(layers[len(layers)-1].Digest)
	ts.Check(err)
	part, err := io.ReadAll(r)
	ts.Check(err)
	img, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	// The part's first 512 bytes lie in one cluster of the FAT.
	if len(part) < 512 {
		ts.Fatalf("flippart: the last payload part of %s is shorter than 512 bytes", args[1])
	}
	at := bytes.Index(img, part[:512])
	if at < 0 {
		ts.Fatalf("flippart: the last payload part of %s is not in %s", args[1], args[0])
	}
	ts.Check(flipAt(ts.MkAbs(args[0]), int64(at+100)))
}
