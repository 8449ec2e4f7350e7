//go:build cgo && !nopkcs11

package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/ferry-update/ferry/signing/pkcs11uri"
	"github.com/ferry-update/ferry/verify"
)

// PKCS11 reports whether this build can use keys in PKCS#11 tokens.
const PKCS11 = true

// PKCS#11 3.0 names that miekg/pkcs11 v1.1.2 does not define.
const (
	ckkECEdwards            = 0x40
	ckmECEdwardsKeyPairGen  = 0x1055
	ckmEdDSA                = 0x1057
	maxObjectsPerFindObject = 2
)

// The curves a token key may be on, by the OID in CKA_EC_PARAMS.
var (
	oidP256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384    = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// modules are the PKCS#11 libraries loaded, by path: a library is
// initialized once per process and finalized when its last key closes.
var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

type module struct {
	ctx  *pkcs11.Ctx
	refs int
}

func loadModule(path string) (*pkcs11.Ctx, func(), error) {
	modules.Lock()
	defer modules.Unlock()
	if m, ok := modules.m[path]; ok {
		m.refs++
		return m.ctx, func() { releaseModule(path) }, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("PKCS#11 module: %w", err)
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, nil, fmt.Errorf("PKCS#11 module %s: cannot be loaded (not a PKCS#11 library for this system?)", path)
	}
	if err := ctx.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, nil, fmt.Errorf("PKCS#11 module %s: initialize: %w", path, err)
	}
	modules.m[path] = &module{ctx: ctx, refs: 1}
	return ctx, func() { releaseModule(path) }, nil
}

func releaseModule(path string) {
	modules.Lock()
	defer modules.Unlock()
	m := modules.m[path]
	if m.refs--; m.refs > 0 {
		return
	}
	delete(modules.m, path)
	m.ctx.Finalize()
	m.ctx.Destroy()
}

func isCKR(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// session is a logged-in session with the token a URI names.
type session struct {
	ctx     *pkcs11.Ctx
	h       pkcs11.SessionHandle
	release func()
}

func (s *session) close() {
	s.ctx.CloseSession(s.h)
	s.release()
}

// openSession loads the module, picks the one token that matches u, opens
// a session (read-write when rw) and logs in.
func openSession(u *pkcs11uri.URI, o Options, rw bool) (*session, error) {
	path := u.ModulePath
	if path == "" {
		path = o.ModulePath
	}
	if path == "" {
		if u.ModuleName != "" {
			return nil, fmt.Errorf("module-name=%s: give the library's path as module-path (or FERRY_PKCS11_MODULE)", u.ModuleName)
		}
		return nil, errors.New("no PKCS#11 module: add module-path=/path/to/module.so to the URI, or set FERRY_PKCS11_MODULE")
	}
	ctx, release, err := loadModule(path)
	if err != nil {
		return nil, err
	}
	s, err := login(ctx, u, o, rw)
	if err != nil {
		release()
		return nil, err
	}
	s.release = release
	return s, nil
}

func login(ctx *pkcs11.Ctx, u *pkcs11uri.URI, o Options, rw bool) (*session, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return nil, fmt.Errorf("list slots: %w", err)
	}
	var found []uint
	var have []string
	for _, slot := range slots {
		ti, err := ctx.GetTokenInfo(slot)
		if err != nil {
			continue
		}
		label := trimPadded(ti.Label)
		have = append(have, fmt.Sprintf("%q (serial %s)", label, trimPadded(ti.SerialNumber)))
		if (u.Token == "" || u.Token == label) && (u.Serial == "" || u.Serial == trimPadded(ti.SerialNumber)) &&
			(u.Manufacturer == "" || u.Manufacturer == trimPadded(ti.ManufacturerID)) && (u.Model == "" || u.Model == trimPadded(ti.Model)) &&
			(!u.HasSlotID || u.SlotID == slot) {
			found = append(found, slot)
		}
	}
	switch {
	case len(found) == 0:
		return nil, &NotFoundError{What: "token", Have: have}
	case len(found) > 1:
		return nil, fmt.Errorf("%d tokens match (%s): name one with token=, serial= or slot-id=", len(found), strings.Join(have, ", "))
	}
	flags := uint(pkcs11.CKF_SERIAL_SESSION)
	if rw {
		flags |= pkcs11.CKF_RW_SESSION
	}
	h, err := ctx.OpenSession(found[0], flags)
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	pin, err := tokenPIN(u, o)
	if err == nil {
		err = ctx.Login(h, pkcs11.CKU_USER, pin)
		if isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
			err = nil
		} else if err != nil {
			err = &PINError{Err: err}
		}
	}
	if err != nil {
		ctx.CloseSession(h)
		return nil, err
	}
	return &session{ctx: ctx, h: h}, nil
}

// tokenPIN is the user PIN: pin-value, the file pin-source names, or
// what Options.PIN says.
func tokenPIN(u *pkcs11uri.URI, o Options) (string, error) {
	switch {
	case u.PINValue != "":
		return u.PINValue, nil
	case u.PINSource != "":
		path, err := u.PINFile()
		if err != nil {
			return "", err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read PIN: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case o.PIN != nil:
		p, err := o.PIN()
		return string(p), err
	}
	return "", &PINError{Missing: true}
}

func trimPadded(s string) string { return strings.TrimRight(s, " \x00") }

// find returns the objects of class that match u's object label and id.
func (s *session) find(class uint, u *pkcs11uri.URI) ([]pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if u.Object != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	if len(u.ID) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
	}
	if err := s.ctx.FindObjectsInit(s.h, tmpl); err != nil {
		return nil, fmt.Errorf("find objects: %w", err)
	}
	defer s.ctx.FindObjectsFinal(s.h)
	objs, _, err := s.ctx.FindObjects(s.h, maxObjectsPerFindObject)
	if err != nil {
		return nil, fmt.Errorf("find objects: %w", err)
	}
	return objs, nil
}

// labels lists the labels of the token's private keys, for an error.
func (s *session) labels() []string {
	objs, err := s.find(pkcs11.CKO_PRIVATE_KEY, &pkcs11uri.URI{})
	if err != nil {
		return nil
	}
	var out []string
	for _, o := range objs {
		if a, err := s.ctx.GetAttributeValue(s.h, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)}); err == nil {
			out = append(out, fmt.Sprintf("%q", a[0].Value))
		}
	}
	return out
}

func (s *session) attrs(o pkcs11.ObjectHandle, types ...uint) ([][]byte, error) {
	tmpl := make([]*pkcs11.Attribute, len(types))
	for i, t := range types {
		tmpl[i] = pkcs11.NewAttribute(t, nil)
	}
	got, err := s.ctx.GetAttributeValue(s.h, o, tmpl)
	if err != nil {
		return nil, fmt.Errorf("read key attributes: %w", err)
	}
	out := make([][]byte, len(types))
	for i, a := range got {
		out[i] = a.Value
	}
	return out, nil
}

// p11Key is a private key in a token: it signs in the token.
type p11Key struct {
	mu   sync.Mutex
	s    *session
	priv pkcs11.ObjectHandle
	pub  crypto.PublicKey
}

func openPKCS11(u *pkcs11uri.URI, o Options) (Key, error) {
	if u.Type != "" && u.Type != "private" {
		return nil, fmt.Errorf("type=%s: a signing key is type=private", u.Type)
	}
	s, err := openSession(u, o, false)
	if err != nil {
		return nil, err
	}
	k, err := s.key(u)
	if err != nil {
		s.close()
		return nil, err
	}
	return k, nil
}

// key finds the one private key u names and its public key.
func (s *session) key(u *pkcs11uri.URI) (*p11Key, error) {
	privs, err := s.find(pkcs11.CKO_PRIVATE_KEY, u)
	if err != nil {
		return nil, err
	}
	switch len(privs) {
	case 0:
		return nil, &NotFoundError{What: "private key", Have: s.labels()}
	case 1:
	default:
		return nil, errors.New("more than one private key matches: add id= to the URI")
	}
	a, err := s.attrs(privs[0], pkcs11.CKA_ID, pkcs11.CKA_LABEL)
	if err != nil {
		return nil, err
	}
	// The public half is the public key object with the same id (or,
	// without one, the same label), as pkcs11-tool and softhsm2-util make
	// them.
	pu := &pkcs11uri.URI{ID: a[0]}
	if len(a[0]) == 0 {
		pu.Object = string(a[1])
	}
	pubs, err := s.find(pkcs11.CKO_PUBLIC_KEY, pu)
	if err != nil {
		return nil, err
	}
	if len(pubs) != 1 {
		return nil, fmt.Errorf("found %d public key objects for the private key (want 1 with its CKA_ID)", len(pubs))
	}
	v, err := s.attrs(pubs[0], pkcs11.CKA_KEY_TYPE, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT)
	if err != nil {
		return nil, err
	}
	pub, err := publicKey(v[0], v[1], v[2])
	if err != nil {
		return nil, err
	}
	return &p11Key{s: s, priv: privs[0], pub: pub}, nil
}

// publicKey decodes an EC or Edwards public key object's attributes.
func publicKey(keyType, params, point []byte) (crypto.PublicKey, error) {
	var oid asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(params, &oid); err != nil {
		var name string
		if _, err := asn1.UnmarshalWithParams(params, &name, "printable"); err != nil || name != "edwards25519" {
			return nil, fmt.Errorf("key of type %#x with curve parameters %x: only ECDSA P-256, P-384 and Ed25519 keys are supported", bytesToUint(keyType), params)
		}
		oid = oidEd25519
	}
	// CKA_EC_POINT is a DER OCTET STRING; a few modules give it bare.
	var raw []byte
	if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) > 0 {
		raw = point
	}
	switch {
	case oid.Equal(oidP256), oid.Equal(oidP384):
		curve := elliptic.P384()
		if oid.Equal(oidP256) {
			curve = elliptic.P256()
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
		if err != nil {
			return nil, fmt.Errorf("%s public key: %w", curve.Params().Name, err)
		}
		return pub, nil
	case oid.Equal(oidEd25519):
		if len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 public key of %d bytes", len(raw))
		}
		return ed25519.PublicKey(bytes.Clone(raw)), nil
	}
	return nil, fmt.Errorf("curve %v not supported (want P-256, P-384 or Ed25519)", oid)
}

func bytesToUint(b []byte) uint64 {
	var n uint64
	for i := len(b) - 1; i >= 0; i-- { // CK_ULONG in host (little-endian) order
		n = n<<8 | uint64(b[i])
	}
	return n
}

func (k *p11Key) Public() crypto.PublicKey { return k.pub }

// Sign signs in the token: ECDSA over digest (opts the hash it was made
// with), the signature returned ASN.1 DER as Go's ecdsa does; Ed25519 over
// the message itself (opts crypto.Hash(0)).
func (k *p11Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var mech uint
	switch k.pub.(type) {
	case *ecdsa.PublicKey:
		if opts.HashFunc() == 0 || len(digest) != opts.HashFunc().Size() {
			return nil, errors.New("ECDSA signs a digest: give its hash")
		}
		mech = pkcs11.CKM_ECDSA
	case ed25519.PublicKey:
		if opts.HashFunc() != 0 {
			return nil, errors.New("Ed25519 signs the message itself, not a digest")
		}
		mech = ckmEdDSA
	}
	ctx := k.s.ctx
	if err := ctx.SignInit(k.s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, k.priv); err != nil {
		return nil, fmt.Errorf("sign in the token: %w", err)
	}
	sig, err := ctx.Sign(k.s.h, digest)
	if err != nil {
		return nil, fmt.Errorf("sign in the token: %w", err)
	}
	if mech != pkcs11.CKM_ECDSA {
		return sig, nil
	}
	// PKCS#11 gives r and s side by side; Go and sigstore use ASN.1.
	if len(sig)%2 != 0 || len(sig) == 0 {
		return nil, fmt.Errorf("token returned an ECDSA signature of %d bytes", len(sig))
	}
	half := len(sig) / 2
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:half]), new(big.Int).SetBytes(sig[half:])})
}

func (k *p11Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.s != nil {
		k.s.close()
		k.s = nil
	}
	return nil
}

// generatePKCS11 makes a key pair in the token: the private key is
// sensitive and not extractable, both halves carry the URI's label and
// id (a random id when the URI gives none).
func generatePKCS11(u *pkcs11uri.URI, alg verify.Algorithm, o Options) (Key, error) {
	var mech uint
	var oid asn1.ObjectIdentifier
	switch alg {
	case verify.ECDSAP256:
		mech, oid = pkcs11.CKM_EC_KEY_PAIR_GEN, oidP256
	case verify.ECDSAP384:
		mech, oid = pkcs11.CKM_EC_KEY_PAIR_GEN, oidP384
	case verify.Ed25519:
		mech, oid = ckmECEdwardsKeyPairGen, oidEd25519
	default:
		return nil, fmt.Errorf("algorithm %s: keys in a token are ecdsa-p256, ecdsa-p384 or ed25519", alg)
	}
	if u.Object == "" {
		return nil, errors.New("give the new key a label: object=NAME")
	}
	s, err := openSession(u, o, true)
	if err != nil {
		return nil, err
	}
	if objs, err := s.find(pkcs11.CKO_PRIVATE_KEY, &pkcs11uri.URI{Object: u.Object}); err != nil || len(objs) > 0 {
		s.close()
		if err == nil {
			err = fmt.Errorf("the token already holds a private key labelled %q: choose another object= label", u.Object)
		}
		return nil, err
	}
	id := u.ID
	if len(id) == 0 {
		id = make([]byte, 8)
		rand.Read(id)
	}
	params, err := asn1.Marshal(oid)
	if err != nil {
		s.close()
		return nil, err
	}
	common := func(extra ...*pkcs11.Attribute) []*pkcs11.Attribute {
		return append([]*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		}, extra...)
	}
	pubT := common(pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params))
	privT := common(
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
	)
	if _, _, err := s.ctx.GenerateKeyPair(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pubT, privT); err != nil {
		s.close()
		return nil, fmt.Errorf("generate key pair (%s): %w", alg, err)
	}
	k, err := s.key(&pkcs11uri.URI{Object: u.Object, ID: id})
	if err != nil {
		s.close()
		return nil, err
	}
	return k, nil
}
