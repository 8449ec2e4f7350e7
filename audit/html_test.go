package audit_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/audit"
	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/verify"
)

// hostile is a signer name and description written to break out of HTML,
// then to reorder the text after it (a right-to-left override) and to
// drive a terminal (ESC).
const hostile = `<script>document.title="pwned"</script><img src=x onerror=alert(1)>` + "\u202egnp.exe\x1b[2J"

// twoBundleHTML audits two bundles, one passing and one with a damaged
// payload, both signed by a key whose signer name is hostile, merges the
// reports into one and writes it as HTML.
func twoBundleHTML(t *testing.T) (string, *audit.Report) {
	t.Helper()
	dir := t.TempDir()
	k, other := testutil.NewKey(t, hostile), testutil.NewKey(t, "other")
	good := makeBundle(t, dir, bundleSpec{name: "gateway", version: "1.0.0", signers: []testutil.Key{k}, sbom: true})
	bad := makeBundle(t, dir, bundleSpec{name: "sensor", version: "2.0.0", signers: []testutil.Key{k, other}})
	flipPayloadByte(t, bad)
	o := audit.Options{Root: makeRoot(t, k, []testutil.Key{k}, 1, nil, now.Add(year)), Tool: "ferry test"}
	rep := run(t, good, o, audit.SourceOptions{})
	rep2 := run(t, bad, o, audit.SourceOptions{})
	rep.Target = dir + ` "quoted" <dir>`
	rep.Bundles = append(rep.Bundles, rep2.Bundles...)
	rep.Bundles[0].Description = hostile
	rep.Passed, rep.Failed, rep.Verdict = 1, 1, audit.Fail
	var buf bytes.Buffer
	must(t, rep.WriteHTML(&buf))
	path := filepath.Join(dir, "report.html")
	must(t, os.WriteFile(path, buf.Bytes(), 0o644))
	return path, rep
}

// TestHTMLSelfContainedAndEscaped checks the page itself: one file, no
// script, nothing fetched from elsewhere, every hostile string escaped.
func TestHTMLSelfContainedAndEscaped(t *testing.T) {
	path, _ := twoBundleHTML(t)
	raw, err := os.ReadFile(path)
	must(t, err)
	page := string(raw)
	lower := strings.ToLower(page)
	for _, bad := range []string{"<script", "<img", "<link", "<iframe", "@import", "url(", "http://", "https://"} {
		if strings.Contains(lower, bad) {
			t.Errorf("the page contains %q", bad)
		}
	}
	// No element loads anything or runs a handler; links stay in the page.
	if m := regexp.MustCompile(`(?i)<[a-z][^>]*\s(src|on[a-z]+|href="[^#])`).FindString(page); m != "" {
		t.Errorf("the page has an element that loads or runs something: %s", m)
	}
	if !strings.Contains(page, "&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;") {
		t.Error("the hostile signer name is not shown escaped")
	}
	if strings.ContainsAny(page, "\u202e\x1b") || !strings.Contains(page, `\u202egnp.exe\x1b[2J`) {
		t.Error("the bidirectional override or the ESC in the signer name is not shown escaped")
	}
	for _, want := range []string{`<tr class="summary-row">`, `<tr class="sig">`, `<tr class="payload">`, `<tr class="attachment">`, "SPDX-2.3", "generated 2026-03-01T12:00:00Z", "ferry test"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// TestHTMLRendersInChromium loads the report in headless Chromium: the DOM
// it builds holds the tables (a row per bundle in the summary, a row per
// signature, payload and SBOM), the hostile signer name is text and no
// element, and a screenshot of the page is not blank.
func TestHTMLRendersInChromium(t *testing.T) {
	bin := testtool.Chromium(t)
	path, rep := twoBundleHTML(t)
	dom := string(runChromium(t, bin, "--dump-dom", "file://"+path))
	count := func(re string) int { return len(regexp.MustCompile(re).FindAllString(dom, -1)) }
	sigs := len(rep.Bundles[0].Signatures) + len(rep.Bundles[1].Signatures)
	if n := count(`<tr class="summary-row">`); n != 2 {
		t.Errorf("%d summary rows in the DOM, want 2", n)
	}
	if n := count(`<tr class="sig">`); n != sigs {
		t.Errorf("%d signature rows in the DOM, want %d", n, sigs)
	}
	if n := count(`<tr class="payload">`); n != 2 {
		t.Errorf("%d payload rows in the DOM, want 2", n)
	}
	if n := count(`<tr class="attachment">`); n != 1 {
		t.Errorf("%d attachment rows in the DOM, want 1", n)
	}
	if count(`(?i)<script`) != 0 || count(`(?i)<img`) != 0 || strings.Contains(dom, "<title>pwned") {
		t.Error("the hostile signer name became markup in the DOM")
	}
	if !strings.Contains(dom, `&lt;script&gt;document.title="pwned"&lt;/script&gt;`) {
		t.Error("the DOM does not show the signer name as text")
	}
	if !strings.Contains(dom, `id="verdict">fail</span>`) || count(`class="badge fail"`) < 2 {
		t.Error("the DOM lacks the fail badges")
	}
	for _, s := range rep.Bundles[1].Signatures {
		if s.Status == verify.UnknownKey && !strings.Contains(dom, s.KeyID[:16]) {
			t.Error("the unknown key's id is not shown")
		}
	}

	shot := filepath.Join(t.TempDir(), "report.png")
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,1600", "--hide-scrollbars", "file://"+path)
	f, err := os.Open(shot)
	must(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 || distinctColours(img) < 8 {
		t.Errorf("screenshot %v looks blank (%d colours)", b, distinctColours(img))
	}
}

func distinctColours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}
