// Package pkcs11uri parses PKCS#11 URIs (RFC 7512), the way cosign and
// p11-kit name a key in a token:
//
//	pkcs11:token=release;object=release-1?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin
//
// It is pure Go and does no I/O: opening the module and the token is
// package signing's job. A URI is untrusted input (it may come from a
// configuration file or a script), so every rule of RFC 7512 §2.3 that
// matters for finding a key is checked and anything else is refused with
// a *SyntaxError.
package pkcs11uri

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Scheme is the prefix of every PKCS#11 URI.
const Scheme = "pkcs11:"

// maxLen bounds a URI: real ones are well under 1 KiB.
const maxLen = 4096

// URI is a parsed PKCS#11 URI. Empty fields were not given; a key is
// matched on every field that was.
type URI struct {
	// Token attributes (CK_TOKEN_INFO).
	Token, Manufacturer, Serial, Model string
	// SlotID is the slot when HasSlotID is set.
	SlotID    uint
	HasSlotID bool
	// Object attributes: the label (CKA_LABEL), the id (CKA_ID, raw
	// bytes) and the type ("private", "public", "cert", "secret-key",
	// "data"; a signer wants "private" or none).
	Object string
	ID     []byte
	Type   string
	// PINValue is the user PIN given in the URI; PINSource names a file
	// holding it ("file:/path" or a path). RFC 7512 says a PIN in a URI
	// should be avoided: prefer pin-source.
	PINValue, PINSource string
	// ModulePath is the PKCS#11 library to load; ModuleName is a module
	// name without path, which this implementation does not resolve.
	ModulePath, ModuleName string
}

// SyntaxError says why a PKCS#11 URI was refused.
type SyntaxError struct {
	URI    string // as given, with any pin-value hidden
	Reason string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("PKCS#11 URI %q: %s", e.URI, e.Reason)
}

// Is reports whether s starts like a PKCS#11 URI (so that it is parsed
// as one, never taken for a file name).
func Is(s string) bool {
	return len(s) >= len(Scheme) && strings.EqualFold(s[:len(Scheme)], Scheme)
}

// pathAttrs and queryAttrs are the attributes RFC 7512 defines, where it
// defines them. pin-value, pin-source and the module attributes are query
// attributes; many tools (cosign among them) write them in the path too,
// so they are accepted in either part, once.
var (
	pathAttrs = []string{
		"token", "manufacturer", "serial", "model",
		"library-manufacturer", "library-description", "library-version",
		"slot-manufacturer", "slot-description", "slot-id",
		"object", "type", "id",
	}
	queryAttrs = []string{"pin-source", "pin-value", "module-name", "module-path"}
	types      = []string{"private", "public", "cert", "secret-key", "data"}
)

// Parse parses a PKCS#11 URI.
func Parse(s string) (*URI, error) {
	u, err := parse(s)
	if err != nil {
		return nil, &SyntaxError{URI: Redact(s), Reason: err.Error()}
	}
	return u, nil
}

func parse(s string) (*URI, error) {
	if len(s) > maxLen {
		return nil, fmt.Errorf("longer than %d bytes", maxLen)
	}
	if !Is(s) {
		return nil, errors.New(`does not start with "pkcs11:"`)
	}
	rest := s[len(Scheme):]
	path, query, _ := strings.Cut(rest, "?")
	if strings.Contains(query, "?") || strings.Contains(rest, "#") {
		return nil, errors.New("'?' may appear once and '#' not at all")
	}
	u := &URI{}
	seen := map[string]bool{}
	for _, p := range []struct{ text, sep string }{{path, ";"}, {query, "&"}} {
		if p.text == "" {
			continue
		}
		sep := p.sep
		for attr := range strings.SplitSeq(p.text, sep) {
			name, raw, ok := strings.Cut(attr, "=")
			if !ok || name == "" {
				return nil, fmt.Errorf("attribute %q is not NAME=VALUE", attr)
			}
			name = strings.ToLower(name)
			if sep == "&" && strings.Contains(raw, ";") {
				return nil, fmt.Errorf("attribute %s: ';' in a query value must be written %%3B", name)
			}
			if !slices.Contains(pathAttrs, name) && !slices.Contains(queryAttrs, name) {
				if strings.Contains(name, "-") && !strings.ContainsAny(name, "%=") {
					continue // vendor-specific (RFC 7512 §2.3): ignored
				}
				return nil, fmt.Errorf("unknown attribute %q", name)
			}
			if sep == "&" && slices.Contains(pathAttrs, name) {
				return nil, fmt.Errorf("%s is a path attribute: write it before '?'", name)
			}
			if seen[name] {
				return nil, fmt.Errorf("attribute %s given twice", name)
			}
			seen[name] = true
			v, err := url.PathUnescape(raw)
			if err != nil {
				return nil, fmt.Errorf("attribute %s: bad percent-encoding", name)
			}
			if err := u.set(name, v); err != nil {
				return nil, fmt.Errorf("attribute %s: %w", name, err)
			}
		}
	}
	if u.PINValue != "" && u.PINSource != "" {
		return nil, errors.New("give pin-value or pin-source, not both")
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, errors.New("names no key: give object=LABEL or id=%XX (hex bytes)")
	}
	return u, nil
}

func (u *URI) set(name, v string) error {
	switch name {
	case "token":
		u.Token = v
	case "manufacturer":
		u.Manufacturer = v
	case "serial":
		u.Serial = v
	case "model":
		u.Model = v
	case "slot-id":
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return errors.New("want a decimal number")
		}
		u.SlotID, u.HasSlotID = uint(n), true
	case "object":
		u.Object = v
	case "id":
		if v == "" {
			return errors.New("empty")
		}
		u.ID = []byte(v)
	case "type":
		if !slices.Contains(types, v) {
			return fmt.Errorf("%q is not one of %v", v, types)
		}
		u.Type = v
	case "pin-value":
		u.PINValue = v
	case "pin-source":
		u.PINSource = v
	case "module-path":
		u.ModulePath = v
	case "module-name":
		u.ModuleName = v
	}
	// The library-* and slot-* descriptions are valid but not used to
	// pick a key.
	return nil
}

// PINFile is the file pin-source names: "file:" URIs and plain paths.
// Other schemes are refused.
func (u *URI) PINFile() (string, error) {
	src := u.PINSource
	if rest, ok := strings.CutPrefix(src, "file:"); ok {
		if p, err := url.PathUnescape(rest); err == nil {
			rest = p
		}
		// file:///path, file:/path
		return strings.TrimPrefix(rest, "//"), nil
	}
	if strings.Contains(src, ":") && !strings.HasPrefix(src, "/") {
		return "", fmt.Errorf("pin-source %q: only file: sources and paths are supported", src)
	}
	return src, nil
}

// String writes the URI back, without the PIN value (pin-value=***), so
// it can be shown and logged.
func (u *URI) String() string {
	var path, query []string
	add := func(list *[]string, name, v string) {
		if v != "" {
			*list = append(*list, name+"="+escape(v))
		}
	}
	add(&path, "token", u.Token)
	add(&path, "manufacturer", u.Manufacturer)
	add(&path, "serial", u.Serial)
	add(&path, "model", u.Model)
	if u.HasSlotID {
		path = append(path, "slot-id="+strconv.FormatUint(uint64(u.SlotID), 10))
	}
	add(&path, "object", u.Object)
	if len(u.ID) > 0 {
		var b strings.Builder
		for _, c := range u.ID {
			fmt.Fprintf(&b, "%%%02X", c)
		}
		path = append(path, "id="+b.String())
	}
	add(&path, "type", u.Type)
	add(&query, "module-path", u.ModulePath)
	add(&query, "module-name", u.ModuleName)
	add(&query, "pin-source", u.PINSource)
	if u.PINValue != "" {
		query = append(query, "pin-value=***")
	}
	s := Scheme + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// escape percent-encodes what RFC 7512 does not allow unescaped in an
// attribute value.
func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:[]@!$'()*+,/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// Redact hides the value of every pin-value attribute in s, for error
// messages about a URI that may not parse.
func Redact(s string) string {
	const attr = "pin-value="
	var b strings.Builder
	for i := 0; i < len(s); {
		if i+len(attr) > len(s) || !strings.EqualFold(s[i:i+len(attr)], attr) {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteString(s[i:i+len(attr)] + "***")
		i += len(attr)
		for i < len(s) && strings.IndexByte(";&?", s[i]) < 0 {
			i++
		}
	}
	return b.String()
}
