package bundle

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/mod/semver"
)

// Media types and annotation keys of the format (FORMAT.md, "Media types").
const (
	ArtifactType        = "application/vnd.ferry.bundle.v1"
	ConfigMediaType     = "application/vnd.ferry.bundle.config.v1+json"
	PayloadMediaType    = "application/vnd.ferry.payload.v1+zstd"
	ManifestMediaType   = "application/vnd.oci.image.manifest.v1+json"
	IndexMediaType      = "application/vnd.oci.image.index.v1+json"
	SigConfigMediaType  = "application/vnd.oci.image.config.v1+json"
	SimpleSigningType   = "application/vnd.dev.cosign.simplesigning.v1+json"
	CosignSigAnnotation = "dev.cosignproject.cosign/signature"
	RefNameAnnotation   = "org.opencontainers.image.ref.name"

	PayloadNameAnnotation = "dev.ferry.payload.name"
	PartAnnotation        = "dev.ferry.payload.part"

	// FormatVersion is the highest formatVersion this package reads. It
	// writes the lowest that expresses the bundle: 3 with encrypted
	// payloads, 2 with depends, else 1 (FORMAT.md §13).
	FormatVersion = 3
)

// Size limits a reader enforces before it allocates (FORMAT.md, "Limits").
const (
	MaxLayoutSize      = 1 << 10
	MaxIndexSize       = 1 << 20
	MaxManifestSize    = 4 << 20
	MaxConfigSize      = 1 << 20
	MaxSigManifestSize = 1 << 20
	MaxSigPayloadSize  = 64 << 10
	MaxSignatures      = 64
	MaxSigConfigSize   = 64 << 10
	MaxSignatureBytes  = 8 << 10
	// MaxSkipped bounds the pax global headers and directory entries a
	// reader passes over, in number and in bytes: they are unsigned.
	MaxSkippedEntries = 16
	MaxSkippedBytes   = 1 << 20
	// MaxTrailerSize bounds the zero bytes a reader accepts after the
	// end-of-archive marker (tar record padding; GNU tar pads to 10 KiB).
	MaxTrailerSize = 1 << 20
	MaxPayloads    = 64
	MaxLayers      = 1024
	// MaxPartSize keeps every blob a FAT32 file (4 GiB - 1 byte).
	MaxPartSize = 4<<30 - 1
	// DefaultPartSize is where the writer splits a payload's compressed
	// stream into the next layer.
	DefaultPartSize = 2 << 30
)

// PayloadType says how the agent installs a payload.
type PayloadType string

const (
	// Rootfs is a full filesystem image written to an A/B slot.
	Rootfs PayloadType = "rootfs"
	// Files is a directory tree (as a tar stream) switched in atomically.
	Files PayloadType = "files"
	// Module is a tar stream handed to an update module.
	Module PayloadType = "module"
)

// Valid reports whether t is a payload type this format defines.
func (t PayloadType) Valid() bool {
	return t == Rootfs || t == Files || t == Module
}

// FromDirectory reports whether a payload of type t is made from a
// directory (files, module: a tar stream of it) rather than from an image
// file (rootfs).
func (t PayloadType) FromDirectory() bool { return t != Rootfs }

// DefaultPayloadType is the type of a payload made from a directory
// (Files) or from a file (Rootfs) when none is given.
func DefaultPayloadType(fromDirectory bool) PayloadType {
	if fromDirectory {
		return Files
	}
	return Rootfs
}

// Config is the bundle's configuration blob: what the update is and what it
// fits. It is covered by the manifest digest and so by the signatures.
type Config struct {
	FormatVersion int               `json:"formatVersion"`
	Name          string            `json:"name"`
	Version       string            `json:"version"`
	DeviceTypes   []string          `json:"deviceTypes"`
	Created       time.Time         `json:"created"`
	Description   string            `json:"description,omitempty"`
	Payloads      []Payload         `json:"payloads"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	// Attachments are signed documents such as SBOMs (FORMAT.md §6.1).
	Attachments []Attachment `json:"attachments,omitempty"`
	// Provides names the components the bundle installs besides itself,
	// component → version; Depends the constraints the device's installed
	// components must meet, e.g. "gw-os >= 1.4" (FORMAT.md §6.2).
	Provides map[string]string `json:"provides,omitempty"`
	Depends  []string          `json:"depends,omitempty"`
}

// Payload describes one payload: its decompressed content and where it goes.
type Payload struct {
	Name           string        `json:"name"`
	Type           PayloadType   `json:"type"`
	Target         string        `json:"target"`
	Size           int64         `json:"size"`
	Digest         digest.Digest `json:"digest"`
	Compression    string        `json:"compression"`
	CompressedSize int64         `json:"compressedSize"`
	Parts          int           `json:"parts"`
	// Encryption is "age" for a payload whose parts are encrypted
	// (FORMAT.md §6.3), empty otherwise. Size and Digest describe the
	// plaintext content, the layers the ciphertext.
	Encryption string `json:"encryption,omitempty"`
	// Chunks, on a rootfs payload, says that its content is chunked and
	// where the chunk index is (FORMAT.md §15).
	Chunks *Chunks `json:"chunks,omitempty"`
}

var (
	nameRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	deviceTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	targetRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$`)
)

// NameFromPath is the bundle name made from the payload source path
// src when none is given: its base name without extension, lower case,
// with every run of characters a name may not hold made one '-' and
// leading or trailing '-', '.' and '_' dropped; "update" when nothing is
// left.
func NameFromPath(src string) string {
	base := strings.ToLower(filepath.Base(filepath.Clean(src)))
	base = strings.TrimSuffix(base, filepath.Ext(base))
	n := strings.Trim(nonName.ReplaceAllString(base, "-"), "-._")
	if n == "" {
		return "update"
	}
	return n
}

var nonName = regexp.MustCompile(`[^a-z0-9._-]+`)

// ValidateName checks a bundle or payload name.
func ValidateName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("name %q: want lower-case letters, digits, '.', '_' or '-', at most 128, starting with a letter or digit", s)
	}
	return nil
}

// ValidateDeviceType checks a device type string.
func ValidateDeviceType(s string) error {
	if !deviceTypeRE.MatchString(s) {
		return fmt.Errorf("device type %q: want letters, digits, '.', '_', '+' or '-', at most 64", s)
	}
	return nil
}

// ValidateVersion checks that v is a semantic version (2.0.0, no "v").
func ValidateVersion(v string) error {
	if len(v) > 128 {
		return fmt.Errorf("version of %d characters: at most 128 (it becomes an OCI tag)", len(v))
	}
	if strings.HasPrefix(v, "v") || !semver.IsValid("v"+v) || semver.Canonical("v"+v) == "" {
		return fmt.Errorf("version %q: want a semantic version such as 1.4.2 or 2.0.0-rc.1", v)
	}
	// semver.IsValid accepts "1" and "1.2"; the format wants all three.
	core := strings.SplitN(strings.SplitN(v, "+", 2)[0], "-", 2)[0]
	if strings.Count(core, ".") != 2 {
		return fmt.Errorf("version %q: want MAJOR.MINOR.PATCH", v)
	}
	return nil
}

// CompareVersions compares two valid semantic versions like semver 2.0.0:
// -1 if a < b, 0 if equal in precedence (build metadata ignored), +1 if a > b.
func CompareVersions(a, b string) int {
	return semver.Compare("v"+a, "v"+b)
}

// Tag is the OCI tag under which the bundle manifest is named in the
// archive's index: the version, with '+' (not allowed in tags) as '_'.
func (c *Config) Tag() string {
	return strings.ReplaceAll(c.Version, "+", "_")
}

// Fits reports whether the bundle is meant for deviceType.
func (c *Config) Fits(deviceType string) bool {
	for _, t := range c.DeviceTypes {
		if t == deviceType {
			return true
		}
	}
	return false
}

// Validate checks everything a reader must check before trusting the
// config's shape (not its signatures).
func (c *Config) Validate() error {
	if c.FormatVersion < 1 || c.FormatVersion > FormatVersion {
		return fmt.Errorf("formatVersion %d not supported (this ferry reads 1 to %d); upgrade ferry", c.FormatVersion, FormatVersion)
	}
	if err := ValidateName(c.Name); err != nil {
		return fmt.Errorf("bundle %w", err)
	}
	if err := ValidateVersion(c.Version); err != nil {
		return err
	}
	if len(c.DeviceTypes) == 0 {
		return fmt.Errorf("no device types: a bundle must name the devices it fits")
	}
	seenType := map[string]bool{}
	for _, t := range c.DeviceTypes {
		if err := ValidateDeviceType(t); err != nil {
			return err
		}
		if seenType[t] {
			return fmt.Errorf("device type %q listed twice", t)
		}
		seenType[t] = true
	}
	if len(c.Payloads) == 0 || len(c.Payloads) > MaxPayloads {
		return fmt.Errorf("%d payloads: want 1 to %d", len(c.Payloads), MaxPayloads)
	}
	seen := map[string]bool{}
	for i, p := range c.Payloads {
		if err := p.validate(); err != nil {
			return fmt.Errorf("payload %d: %w", i, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("payload %d: name %q used twice", i, p.Name)
		}
		seen[p.Name] = true
		if p.Chunks != nil {
			if err := p.Chunks.validate(&c.Payloads[i], c.Attachments); err != nil {
				return fmt.Errorf("payload %s: %w", p.Name, err)
			}
		}
	}
	if err := c.ValidateComponents(); err != nil {
		return err
	}
	if err := validateAttachments(c.Attachments); err != nil {
		return err
	}
	return c.validateEncryption()
}

func (p *Payload) validate() error {
	if err := ValidateName(p.Name); err != nil {
		return err
	}
	if !p.Type.Valid() {
		return fmt.Errorf("%s: type %q: want rootfs, files or module", p.Name, p.Type)
	}
	if !targetRE.MatchString(p.Target) || strings.Contains(p.Target, "..") {
		return fmt.Errorf("%s: target %q: want a slot name or relative path without '..'", p.Name, p.Target)
	}
	if p.Size < 0 || p.CompressedSize < 0 {
		return fmt.Errorf("%s: negative size", p.Name)
	}
	if err := p.Digest.Validate(); err != nil || p.Digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("%s: digest %q: want sha256:<64 hex>", p.Name, p.Digest)
	}
	if p.Compression != "zstd" {
		return fmt.Errorf("%s: compression %q: want zstd", p.Name, p.Compression)
	}
	if p.Parts < 1 || p.Parts > MaxLayers {
		return fmt.Errorf("%s: %d parts: want 1 to %d", p.Name, p.Parts, MaxLayers)
	}
	return nil
}

// ParseConfig decodes and validates a config blob.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	if err := strictUnmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}
