package audit

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/verify"
)

// WriteText writes the report for people at a terminal. Everything a
// bundle or a signature says of itself (signer names, descriptions, SBOM
// versions, error texts quoting them) is passed through display.Untrusted first.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p("audit       %s (%s), %s, %s\n", display.Untrusted(r.Target), r.Kind, display.Time(r.Generated), display.OrDash(r.Tool))
	p("trust       %s\n", r.Trust.summary())
	if m := r.Mirror; m != nil {
		p("metadata    %s\n", m.summary())
	}
	for _, b := range r.Bundles {
		what := display.Untrusted(b.Name + " " + b.Version)
		if b.Name == "" {
			what = "(unreadable bundle)"
		}
		p("\n%s  %s  %s\n", strings.ToUpper(b.Verdict), what, display.Untrusted(b.Source))
		if b.Manifest != "" {
			p("  manifest    %s\n", b.Manifest)
			p("  devices     %s\n", display.Untrusted(strings.Join(b.DeviceTypes, ", ")))
			p("  created     %s\n", display.Time(b.Created))
		}
		for _, n := range slices.Sorted(maps.Keys(b.Provides)) {
			p("  provides    %s %s\n", display.Untrusted(n), display.Untrusted(b.Provides[n]))
		}
		for _, d := range b.Depends {
			p("  depends     %s\n", display.Untrusted(d))
		}
		for _, pl := range b.Payloads {
			state := "NOT verified"
			if pl.Verified {
				state = "verified"
			}
			p("  payload     %s (%s -> %s) %s, %s %s in %d part(s), %s\n", pl.Name, pl.Type, pl.Target, display.Bytes(pl.Size), display.Bytes(pl.CompressedSize), pl.Encoding(), pl.Parts, state)
			p("              %s\n", pl.Digest)
		}
		if e := b.Encryption; e != nil {
			p("  encrypted   %s to %d recipient(s): %s; age header %s, %s\n", e.Method, e.Recipients, strings.Join(e.Payloads, ", "), e.Header, display.Bytes(e.HeaderSize))
		}
		for _, a := range b.Attachments {
			label, what := "attachment ", "not an SBOM"
			switch {
			case a.SBOM != nil:
				label, what = "sbom       ", fmt.Sprintf("%s, %d component(s)", display.Untrusted(a.SBOM.Spec), a.SBOM.Components)
			case a.Kind == AttachmentTrustRoot && a.RootVersion > 0:
				label, what = "trust root ", fmt.Sprintf("version %d", a.RootVersion)
			case a.Kind == AttachmentTrustRoot:
				label, what = "trust root ", "not readable"
			}
			p("  %s %s %s, %s, %s\n", label, a.Name, a.MediaType, what, display.Bytes(a.Size))
			p("              %s\n", a.Digest)
		}
		if b.Manifest != "" {
			met := "threshold met"
			if !b.ThresholdMet {
				met = "threshold NOT met"
			}
			p("  signatures  %d, %d of %d required trusted key(s) valid: %s\n", len(b.Signatures), b.ValidKeys, b.Threshold, met)
			p("  checked     %s\n", display.OrDash(strings.Join(b.Checked, ", ")))
		}
		for i, s := range b.Signatures {
			p("    %d. %s\n", i+1, SignatureLine(s))
		}
		if b.Listed != nil {
			p("  listed      %s\n", map[bool]string{true: "in the mirror's signed targets", false: "NOT in the mirror's signed targets"}[*b.Listed])
		}
		for _, x := range b.Warnings {
			p("  warning     %s\n", display.Untrusted(x))
		}
		for _, x := range b.Reasons {
			p("  reason      %s\n", display.Untrusted(x))
		}
	}
	for _, s := range r.Skipped {
		p("\nskipped     %s: %s\n", display.Untrusted(s.Source), display.Untrusted(s.Reason))
	}
	p("\nsummary     %d bundle(s): %d passed, %d failed; %d skipped: %s\n", len(r.Bundles), r.Passed, r.Failed, len(r.Skipped), strings.ToUpper(r.Verdict))
	return bw.Flush()
}

func (t Trust) summary() string {
	var s string
	if t.Source == "trust root" {
		exp := "expires"
		if t.RootExpired {
			exp = "EXPIRED"
		}
		s = fmt.Sprintf("trust root version %d, %s %s; role %s: %d of %d key(s)", t.RootVersion, exp, display.Time(t.RootExpires), t.Role, t.Threshold, len(t.Keys))
		if len(t.Revoked) > 0 {
			s += fmt.Sprintf("; %d revoked key(s)", len(t.Revoked))
		}
		return s
	}
	return fmt.Sprintf("keys: %d of %d key(s)", t.Threshold, len(t.Keys))
}

func (m *MirrorMetadata) summary() string {
	switch {
	case !m.Present:
		return "none (no TUF metadata: freshness cannot be proven, as on any offline medium)"
	case !m.Verified:
		return "REFUSED: " + display.Untrusted(m.Error)
	}
	return fmt.Sprintf("verified against %s: root v%d, timestamp v%d expires %s, snapshot v%d, targets v%d expires %s",
		display.Untrusted(m.Root), m.RootVersion, m.TimestampVersion, display.Time(m.TimestampExpires), m.SnapshotVersion, m.TargetsVersion, display.Time(m.TargetsExpires))
}

// SignatureLine is one signature's verdict for people, as 'ferry audit'
// and 'ferry verify' print it: status, key id with the owner and purpose
// the trust root gives the key, algorithm, the signer the signature
// claims, when, and why it does not count. What the bundle or the root
// says is escaped.
func SignatureLine(s verify.SignatureResult) string {
	key := "-"
	if s.KeyID != "" {
		key = display.KeyName(s.KeyID, s.Owner, s.Purpose)
	}
	line := fmt.Sprintf("%-13s key %s %s signer %s at %s", s.Status, key, display.OrDash(string(s.Algorithm)), display.OrDash(display.Untrusted(s.Signer)), display.OrDash(display.Time(s.SignedAt)))
	if s.Reason != "" && s.Status != verify.Valid {
		line += ": " + display.Untrusted(s.Reason)
	}
	return line
}
