package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/internal/atomicfile"
)

// Attachments (FORMAT.md §6.1): signed documents about the update, such as
// an SBOM, carried as the first layers of the manifest and stored in the
// head of the archive, before any payload.
const (
	// SPDXMediaType and CycloneDXMediaType are the SBOM media types
	// ferry writes (IANA-registered).
	SPDXMediaType      = "application/spdx+json"
	CycloneDXMediaType = "application/vnd.cyclonedx+json"
	// TrustRootMediaType marks an attachment that is a trust root
	// (verify/TRUST.md), which a device applies before it judges the
	// bundle's signatures (§6.1).
	TrustRootMediaType = "application/vnd.ferry.trust.root.v1+json"
	// AttachmentNameAnnotation names an attachment layer in the manifest.
	AttachmentNameAnnotation = "dev.ferry.attachment.name"
	// MaxAttachments bounds the attachments of one bundle.
	MaxAttachments = 8
	// MaxAttachmentSize bounds each attachment and also their sum: a
	// reader holds them in memory before it has judged the signatures.
	MaxAttachmentSize = 16 << 20
)

// Attachment describes one attachment in the config. The manifest layer
// of the same index carries the same media type, digest and size.
type Attachment struct {
	Name      string        `json:"name"`
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
}

// AttachmentData is an attachment with its content. The reader returns it
// only after the content matched the signed digest.
type AttachmentData struct {
	Attachment
	Data []byte `json:"-"`
}

// mediaTypeRE is RFC 6838's type/subtype with an optional +suffix, lower
// case, as OCI descriptors spell media types.
var mediaTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$`)

func validateAttachments(as []Attachment) error {
	if len(as) > MaxAttachments {
		return fmt.Errorf("%d attachments: at most %d", len(as), MaxAttachments)
	}
	seen := map[string]bool{}
	var total int64
	for i, a := range as {
		if err := ValidateName(a.Name); err != nil {
			return fmt.Errorf("attachment %d: %w", i, err)
		}
		if seen[a.Name] {
			return fmt.Errorf("attachment %d: name %q used twice", i, a.Name)
		}
		seen[a.Name] = true
		if !mediaTypeRE.MatchString(a.MediaType) || a.MediaType == PayloadMediaType || a.MediaType == EncryptedPayloadMediaType || a.MediaType == ConfigMediaType || a.MediaType == ManifestMediaType {
			return fmt.Errorf("attachment %s: media type %q: want a document type such as %s", a.Name, a.MediaType, SPDXMediaType)
		}
		if err := a.Digest.Validate(); err != nil || a.Digest.Algorithm() != digest.SHA256 {
			return fmt.Errorf("attachment %s: digest %q: want sha256:<64 hex>", a.Name, a.Digest)
		}
		if a.Size < 0 || a.Size > MaxAttachmentSize {
			return fmt.Errorf("attachment %s: size %d: want 0 to %d", a.Name, a.Size, MaxAttachmentSize)
		}
		if total += a.Size; total > MaxAttachmentSize {
			return fmt.Errorf("attachments hold %d bytes together: at most %d", total, MaxAttachmentSize)
		}
	}
	return nil
}

// layer is the attachment's manifest layer descriptor.
func (a Attachment) layer() ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: a.MediaType,
		Digest:    a.Digest,
		Size:      a.Size,
		Annotations: map[string]string{
			AttachmentNameAnnotation: a.Name,
			ocispec.AnnotationTitle:  a.Name,
		},
	}
}

// checkAttachmentLayer checks that manifest layer l is attachment a.
func checkAttachmentLayer(i int, l ocispec.Descriptor, a Attachment) error {
	if l.MediaType != a.MediaType || l.Digest != a.Digest || l.Size != a.Size || l.Annotations[AttachmentNameAnnotation] != a.Name {
		return fmt.Errorf("layer %d is %s %s (%d bytes, %s %q), config's attachment %d is %s %s (%d bytes, %q)",
			i, l.MediaType, l.Digest, l.Size, AttachmentNameAnnotation, l.Annotations[AttachmentNameAnnotation], i, a.MediaType, a.Digest, a.Size, a.Name)
	}
	return nil
}

// SBOM is what DetectSBOM learned about a document.
type SBOM struct {
	MediaType string `json:"mediaType"` // SPDXMediaType or CycloneDXMediaType
	// Spec is the specification and version the document claims, such
	// as "SPDX-2.3" or "CycloneDX 1.5".
	Spec string `json:"spec"`
	// Components counts SPDX packages, or CycloneDX components
	// (nested ones included).
	Components int `json:"components"`
}

// ErrNotSBOM is wrapped by DetectSBOM's errors for a document that is
// neither SPDX JSON nor CycloneDX JSON.
var ErrNotSBOM = errors.New("not an SPDX or CycloneDX JSON document")

type cdxComponent struct {
	Components []cdxComponent `json:"components"`
}

func countComponents(cs []cdxComponent) int {
	n := len(cs)
	for _, c := range cs {
		n += countComponents(c.Components)
	}
	return n
}

// DetectSBOM tells an SPDX JSON document (it has "spdxVersion") from a
// CycloneDX JSON one ("bomFormat": "CycloneDX") by its content, and counts
// its components. Anything else, or a document over MaxAttachmentSize, is
// an error.
func DetectSBOM(b []byte) (*SBOM, error) {
	if len(b) > MaxAttachmentSize {
		return nil, fmt.Errorf("document of %d bytes exceeds the limit of %d", len(b), MaxAttachmentSize)
	}
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrNotSBOM)
	}
	var doc struct {
		SPDXVersion *string         `json:"spdxVersion"`
		BOMFormat   *string         `json:"bomFormat"`
		SpecVersion string          `json:"specVersion"`
		Packages    json.RawMessage `json:"packages"`
		Components  []cdxComponent  `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotSBOM, err)
	}
	spdx := doc.SPDXVersion != nil && strings.HasPrefix(*doc.SPDXVersion, "SPDX-")
	cdx := doc.BOMFormat != nil && *doc.BOMFormat == "CycloneDX"
	switch {
	case spdx && cdx:
		return nil, fmt.Errorf("%w: it claims to be both (spdxVersion and bomFormat)", ErrNotSBOM)
	case spdx:
		var pkgs []json.RawMessage
		if len(doc.Packages) > 0 && string(doc.Packages) != "null" {
			if err := json.Unmarshal(doc.Packages, &pkgs); err != nil {
				return nil, fmt.Errorf("SPDX packages: %w", err)
			}
		}
		return &SBOM{MediaType: SPDXMediaType, Spec: clip(*doc.SPDXVersion), Components: len(pkgs)}, nil
	case cdx:
		spec := "CycloneDX"
		if doc.SpecVersion != "" {
			spec += " " + doc.SpecVersion
		}
		return &SBOM{MediaType: CycloneDXMediaType, Spec: clip(spec), Components: countComponents(doc.Components)}, nil
	}
	return nil, fmt.Errorf("%w: no \"spdxVersion\" nor \"bomFormat\": \"CycloneDX\"", ErrNotSBOM)
}

// clip bounds a version string taken from a document.
func clip(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "..."
	}
	return s
}

// ExtractAttachment writes an attachment read by a Reader (and so checked
// against its signed digest) into dir under its name, which the format
// keeps a plain file name. It refuses to replace an existing file and
// writes beside the final name, so a failure leaves nothing behind.
func ExtractAttachment(a AttachmentData, dir string) (string, error) {
	if err := ValidateName(a.Name); err != nil {
		return "", fmt.Errorf("extract attachment: %w", err)
	}
	final := filepath.Join(dir, a.Name)
	if _, err := os.Lstat(final); err == nil {
		return "", fmt.Errorf("extract attachment %s: %s already exists", a.Name, final)
	}
	f, err := atomicfile.CreateTempPerm(final, 0o644)
	if err != nil {
		return "", fmt.Errorf("extract attachment %s: %w", a.Name, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(a.Data); err != nil {
		f.Close()
		return "", fmt.Errorf("extract attachment %s: %w", a.Name, err)
	}
	if err := atomicfile.Commit(f, final); err != nil {
		return "", fmt.Errorf("extract attachment %s: %w", a.Name, err)
	}
	return final, nil
}
