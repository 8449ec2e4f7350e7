package bundle

import (
	"errors"
	"fmt"
	"io"
	"os"

	"filippo.io/age"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/internal/atomicfile"
)

// Encrypted payloads (FORMAT.md §6.3): a payload's compressed stream is
// encrypted with age's STREAM under the bundle's file key, and the file key
// is wrapped for each recipient in one age header, stored as an attachment
// of AgeHeaderMediaType. Signatures cover the manifest, and so the config
// (plaintext size and digest of every payload), the encrypted parts'
// digests and the header: a device judges all of them before it decrypts.
const (
	// Encryption names the encryption of a payload in the config.
	EncryptionAge = "age"
	// AgeHeaderMediaType is the media type of the age header attachment.
	AgeHeaderMediaType = "application/vnd.ferry.age.header.v1"
	// AgeHeaderName is the name of the age header attachment.
	AgeHeaderName = "age.header"
	// EncryptedPayloadMediaType is the layer media type of an encrypted
	// payload's parts.
	EncryptedPayloadMediaType = "application/vnd.ferry.payload.v1+zstd+age"
	// EncryptedFormatVersion is the lowest formatVersion that may carry
	// encrypted payloads (FORMAT.md §13).
	EncryptedFormatVersion = 3
)

// ErrLocked is wrapped by a payload read's error when the payload is
// encrypted and no file key was unwrapped (Reader.Unlock).
var ErrLocked = errors.New("payload is encrypted and no identity unwrapped its key")

// Encrypted reports whether the payload is encrypted.
func (p Payload) Encrypted() bool { return p.Encryption != "" }

func (p Payload) layerMediaType() string {
	if p.Encrypted() {
		return EncryptedPayloadMediaType
	}
	return PayloadMediaType
}

// Encrypted reports whether any payload of the bundle is encrypted.
func (c *Config) Encrypted() bool {
	for i := range c.Payloads {
		if c.Payloads[i].Encrypted() {
			return true
		}
	}
	return false
}

// validateEncryption checks §6.3's rules on the config: encrypted
// payloads only with formatVersion 3 or more, and the age header
// attachment present exactly when a payload is encrypted.
func (c *Config) validateEncryption() error {
	headers := 0
	for _, a := range c.Attachments {
		if a.MediaType == AgeHeaderMediaType {
			headers++
			if a.Name != AgeHeaderName {
				return fmt.Errorf("age header attachment named %q, want %q", a.Name, AgeHeaderName)
			}
		}
	}
	for _, p := range c.Payloads {
		if p.Encryption != "" && p.Encryption != EncryptionAge {
			return fmt.Errorf("payload %s: encryption %q: want %q", p.Name, p.Encryption, EncryptionAge)
		}
	}
	switch enc := c.Encrypted(); {
	case enc && c.FormatVersion < EncryptedFormatVersion:
		return fmt.Errorf("encrypted payloads need formatVersion %d, config says %d", EncryptedFormatVersion, c.FormatVersion)
	case enc && headers != 1:
		return fmt.Errorf("encrypted payloads need one %s attachment, config lists %d", AgeHeaderMediaType, headers)
	case !enc && headers != 0:
		return fmt.Errorf("an age header attachment but no encrypted payload")
	}
	return nil
}

// Encrypted reports whether any payload of the bundle is encrypted.
func (r *Reader) Encrypted() bool { return r.ageHeader != nil }

// AgeHeader returns the bundle's age header (nil when nothing is
// encrypted), parsed and checked against its signed digest, not
// unwrapped.
func (r *Reader) AgeHeader() *AgeHeader { return r.ageHeader }

// Unlock unwraps the file key of the encrypted payloads with the first
// of ids that is a recipient, so that Next's payloads decrypt as they
// are read. It fails with a *NotRecipientError when none is. It reads
// nothing from the input: call it before the first Next.
func (r *Reader) Unlock(ids ...age.Identity) error {
	if r.ageHeader == nil {
		return nil
	}
	if len(ids) == 0 {
		return fmt.Errorf("decrypt %s %s: %w", r.config.Name, r.config.Version, ErrLocked)
	}
	fk, err := r.ageHeader.Unwrap(ids...)
	if err != nil {
		return fmt.Errorf("decrypt %s %s: %w", r.config.Name, r.config.Version, err)
	}
	r.fileKey = fk
	return nil
}

// parseAgeHeader finds and parses the age header among the attachments
// read so far.
func (r *Reader) parseAgeHeader() error {
	for _, a := range r.attachments {
		if a.MediaType != AgeHeaderMediaType {
			continue
		}
		h, err := ParseAgeHeader(a.Data)
		if err != nil {
			return &Error{What: fmt.Sprintf("attachment %q", a.Name), Member: blobName(a.Digest), Offset: -1, Err: err}
		}
		r.ageHeader = h
	}
	return nil
}

// content is the reader of a payload's compressed stream: its parts,
// decrypted when the payload is encrypted.
func (p *PayloadReader) content() (io.Reader, error) {
	if !p.Encrypted() {
		return rawReader{p}, nil
	}
	if p.r.fileKey == nil {
		return nil, &Error{What: fmt.Sprintf("payload %q content", p.Name), Offset: -1, Err: ErrLocked}
	}
	return newDecryptReader(rawReader{p}, p.r.fileKey), nil
}

// ReencryptOptions say what Reencrypt makes.
type ReencryptOptions struct {
	// Identities unwrap the bundle's file key; one must be a recipient.
	Identities []age.Identity
	// Recipients are the new recipients, all of them: the old header is
	// replaced, not extended.
	Recipients []age.Recipient
	// Sign, when set, signs the new manifest digest of the bundle whose
	// config is cfg (the old signatures cover the old manifest and are
	// dropped).
	Sign func(manifest digest.Digest, cfg *Config) ([]Signature, error)
}

// Reencrypt writes to out the bundle at in with its file key wrapped for
// new recipients. It never decrypts a payload: the parts (ciphertext) are
// copied byte for byte, each checked against its signed digest on the
// way. The header, so the config and the manifest, change (FORMAT.md
// §6.3): the old signatures do not cover the new bundle and are dropped;
// opts.Sign adds new ones. out appears atomically and is never in.
func Reencrypt(in, out string, opts ReencryptOptions) (*Result, error) {
	fail := func(err error) (*Result, error) { return nil, fmt.Errorf("re-encrypt %s: %w", in, err) }
	f, err := os.Open(in)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	if !r.Encrypted() {
		return fail(errors.New("no payload is encrypted: make the bundle again with --encrypt-to"))
	}
	if err := r.Unlock(opts.Identities...); err != nil {
		return fail(err)
	}
	header, err := WrapFileKey(r.fileKey, opts.Recipients)
	if err != nil {
		return fail(err)
	}
	if err := r.Finish(); err != nil {
		return fail(fmt.Errorf("refusing to re-encrypt a damaged bundle: %w", err))
	}
	cfg := *r.config
	cfg.Attachments = append([]Attachment(nil), cfg.Attachments...)
	atts := append([]AttachmentData(nil), r.attachments...)
	for i := range atts {
		if atts[i].MediaType == AgeHeaderMediaType {
			atts[i] = newAttachment(AgeHeaderName, AgeHeaderMediaType, header)
			cfg.Attachments[i] = atts[i].Attachment
		}
	}
	parts := r.manifest.Layers[len(cfg.Attachments):]
	h, err := newHead(&cfg, atts, parts)
	if err != nil {
		return fail(err)
	}
	if opts.Sign != nil {
		if h.sigs, err = opts.Sign(h.manifest.desc.Digest, &cfg); err != nil {
			return fail(fmt.Errorf("sign: %w", err))
		}
	}
	size, err := writeRehead(f, r, h, out, 0o644)
	if err != nil {
		return fail(err)
	}
	return &Result{ManifestDigest: h.manifest.desc.Digest, Config: &cfg, Size: size}, nil
}

// writeRehead writes a bundle to path made of head h followed by
// everything of the bundle in src (read by r) from its first part on: the
// parts and the end of the archive, copied as they are. The file appears
// atomically with mode perm. It returns the new bundle's size.
func writeRehead(src *os.File, r *Reader, h *head, path string, perm os.FileMode) (int64, error) {
	headBytes, err := h.encode(r.config.Created)
	if err == nil {
		err = checkHead(headBytes)
	}
	if err != nil {
		return 0, err
	}
	st, err := src.Stat()
	if err != nil {
		return 0, err
	}
	out, err := atomicfile.CreateTempPerm(path, perm)
	if err != nil {
		return 0, err
	}
	defer func() { out.Close(); os.Remove(out.Name()) }()
	if _, err := out.Write(headBytes); err != nil {
		return 0, err
	}
	rest := st.Size() - r.payloadOffset
	if err := copyRange(out, int64(len(headBytes)), src, r.payloadOffset, rest); err != nil {
		return 0, err
	}
	if err := out.Chmod(perm); err != nil {
		return 0, err
	}
	if err := atomicfile.Commit(out, path); err != nil {
		return 0, err
	}
	return int64(len(headBytes)) + rest, nil
}

// newAttachment is an attachment of data, its digest and size computed.
func newAttachment(name, mediaType string, data []byte) AttachmentData {
	return AttachmentData{
		Attachment: Attachment{Name: name, MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))},
		Data:       data,
	}
}

// EncryptionInfo summarizes a bundle's encryption for people and audits:
// it needs no key.
type EncryptionInfo struct {
	Method string `json:"method"` // EncryptionAge
	// Recipients is the number of recipient stanzas in the age header
	// (one per X25519 recipient).
	Recipients int `json:"recipients"`
	// Header is the age header attachment's digest and size.
	Header     digest.Digest `json:"header"`
	HeaderSize int64         `json:"headerSize"`
	// Payloads are the names of the encrypted payloads.
	Payloads []string `json:"payloads"`
}

// Encryption describes the bundle's encryption, nil when no payload is
// encrypted.
func (r *Reader) Encryption() *EncryptionInfo {
	if r.ageHeader == nil {
		return nil
	}
	info := &EncryptionInfo{Method: EncryptionAge, Recipients: r.ageHeader.Recipients(), Payloads: []string{}}
	for _, a := range r.config.Attachments {
		if a.MediaType == AgeHeaderMediaType {
			info.Header, info.HeaderSize = a.Digest, a.Size
		}
	}
	for _, p := range r.config.Payloads {
		if p.Encrypted() {
			info.Payloads = append(info.Payloads, p.Name)
		}
	}
	return info
}

// Encoding names how a payload's parts are encoded, for people:
// "zstd", or "zstd+age" when encrypted.
func (p Payload) Encoding() string {
	if p.Encrypted() {
		return p.Compression + "+" + p.Encryption
	}
	return p.Compression
}
