package bundle

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// CosignSignatureType is the "type" a cosign simple-signing payload carries.
const CosignSignatureType = "cosign container image signature"

// Signature is one detached signature over a bundle's manifest digest, stored
// the cosign way: Payload is the simple-signing JSON that was signed, Sig the
// raw signature bytes over Payload.
type Signature struct {
	Payload []byte
	Sig     []byte
	// Annotations are the signature layer's annotations other than the
	// signature itself (unsigned hints such as a certificate).
	Annotations map[string]string
}

// SimpleSigning is cosign's signed payload. Only Critical binds: its digest
// must be the manifest digest being checked.
type SimpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// NewSimpleSigning returns the payload a signer signs for manifest d. ref is
// the repository the signature names (cosign's docker-reference); optional
// holds signed claims such as the key id, the signer and the time.
func NewSimpleSigning(ref string, d digest.Digest, optional map[string]string) ([]byte, error) {
	var s SimpleSigning
	s.Critical.Identity.DockerReference = ref
	s.Critical.Image.DockerManifestDigest = d.String()
	s.Critical.Type = CosignSignatureType
	if len(optional) > 0 {
		s.Optional = make(map[string]any, len(optional))
		for k, v := range optional {
			s.Optional[k] = v
		}
	}
	return json.Marshal(&s)
}

// ParseSimpleSigning decodes a simple-signing payload and checks its type.
func ParseSimpleSigning(b []byte) (*SimpleSigning, error) {
	var s SimpleSigning
	if err := strictUnmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse signature payload: %w", err)
	}
	if s.Critical.Type != CosignSignatureType {
		return nil, fmt.Errorf("signature payload type %q, want %q", s.Critical.Type, CosignSignatureType)
	}
	if _, err := digest.Parse(s.Critical.Image.DockerManifestDigest); err != nil {
		return nil, fmt.Errorf("signature payload digest: %w", err)
	}
	return &s, nil
}

// OptionalString returns a string claim from the signed optional section.
func (s *SimpleSigning) OptionalString(key string) string {
	v, _ := s.Optional[key].(string)
	return v
}

// SignatureTag is the cosign tag naming the signatures of manifest d.
func SignatureTag(d digest.Digest) string {
	return fmt.Sprintf("%s-%s.sig", d.Algorithm(), d.Encoded())
}

func encodeSig(sig []byte) string { return base64.StdEncoding.EncodeToString(sig) }

func decodeSig(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("signature annotation is not base64: %w", err)
	}
	if len(b) == 0 || len(b) > MaxSignatureBytes {
		return nil, fmt.Errorf("signature of %d bytes: want 1 to %d", len(b), MaxSignatureBytes)
	}
	return b, nil
}
