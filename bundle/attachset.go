package bundle

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// AttachmentSet gathers the attachments of a new bundle (FORMAT.md §6.1),
// names each the way the format expects, and refuses two of one name.
// The zero value is empty and ready to use.
type AttachmentSet struct {
	list []AttachmentData
	from map[string]addedFrom
}

type addedFrom struct{ label, mediaType string }

// AttachmentNameError is AttachmentSet's refusal of a second attachment
// under a name already taken. First and Second are the labels the two
// were added with (such as their file names); FirstMediaType tells what
// the first one is.
type AttachmentNameError struct {
	Name           string
	First, Second  string
	FirstMediaType string
}

func (e *AttachmentNameError) Error() string {
	return fmt.Sprintf("%s and %s would both be attached as %q", e.First, e.Second, e.Name)
}

// AddSBOM adds an SPDX or CycloneDX JSON document (told apart by
// DetectSBOM), named after label, a file name, by AttachmentName. The
// error wraps DetectSBOM's or is an *AttachmentNameError.
func (s *AttachmentSet) AddSBOM(label string, data []byte) error {
	sb, err := DetectSBOM(data)
	if err != nil {
		return err
	}
	return s.add(label, AttachmentData{Attachment: Attachment{Name: AttachmentName(label), MediaType: sb.MediaType}, Data: data})
}

// AddTrustRoot adds a trust root of the given version, named
// TrustRootName(version). Whether it is well formed, and whether the
// roots chain, the caller (verify) and devices judge. The error is an
// *AttachmentNameError.
func (s *AttachmentSet) AddTrustRoot(label string, version int64, data []byte) error {
	return s.add(label, AttachmentData{Attachment: Attachment{Name: TrustRootName(version), MediaType: TrustRootMediaType}, Data: data})
}

func (s *AttachmentSet) add(label string, a AttachmentData) error {
	if first, ok := s.from[a.Name]; ok {
		return &AttachmentNameError{Name: a.Name, First: first.label, Second: label, FirstMediaType: first.mediaType}
	}
	if s.from == nil {
		s.from = map[string]addedFrom{}
	}
	s.from[a.Name] = addedFrom{label, a.MediaType}
	s.list = append(s.list, a)
	return nil
}

// List returns the attachments in the order they were added, for
// Options.Attachments.
func (s *AttachmentSet) List() []AttachmentData { return s.list }

// TrustRootName is the attachment name of a trust root of the given
// version: N.root.json (FORMAT.md §6.1).
func TrustRootName(version int64) string { return fmt.Sprintf("%d.root.json", version) }

// AttachmentName makes a file name an attachment name: its base name in
// lower case, other characters than [a-z0-9._-] as '-', at most 128
// characters (the end of the name kept); "sbom.json" when nothing is left.
func AttachmentName(path string) string {
	n := strings.Trim(nonAttachmentName.ReplaceAllString(strings.ToLower(filepath.Base(path)), "-"), "-._")
	if len(n) > 128 {
		n = n[len(n)-128:]
		n = strings.TrimLeft(n, "-._")
	}
	if n == "" {
		return "sbom.json"
	}
	return n
}

var nonAttachmentName = regexp.MustCompile(`[^a-z0-9._-]+`)
