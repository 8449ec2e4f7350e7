package display

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Bytes formats a size as 512 B, 97.7 KiB, 2.0 GiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Time formats t in UTC as RFC 3339; the zero time is "".
func Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// ShortID is the first 16 characters of a key id, enough to tell keys
// apart in a listing.
func ShortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// KeyName is a key id for people, with the owner and purpose a trust
// root gives it, escaped: "46e4cd376fbcbe96 (Alice Example: release
// signing)". Without them it is ShortID(id).
func KeyName(id, owner, purpose string) string {
	name := Untrusted(ShortID(id))
	switch {
	case owner != "" && purpose != "":
		return name + " (" + Untrusted(owner) + ": " + Untrusted(purpose) + ")"
	case owner != "" || purpose != "":
		return name + " (" + Untrusted(owner+purpose) + ")"
	}
	return name
}

// OrDash is s, or "-" for an empty s, so that columns stay aligned.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteJSON writes v as indented JSON and a newline, as every --json
// output is written. <, > and & stay as they are ("gw-os >= 1.4", not
// "gw-os \u003e= 1.4"): the output is not HTML.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
