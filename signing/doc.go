// Package signing opens the private keys the host signs with, wherever
// they live, as one crypto.Signer: a PEM file, a key in a PKCS#11 token
// named by an RFC 7512 URI (pkcs11:token=…;object=…, as cosign takes
// them), or a key in a KMS that suits an isolated site (HashiCorp Vault's
// transit engine, hashivault://KEY). Bundles, trust roots and mirror TUF
// metadata are all signed through it.
//
// It is host-only: ferry-agent never imports it (the agent's depcheck
// fence keeps it out, as it keeps out every package outside the device
// tier), so the device binary links neither cgo nor a PKCS#11 library.
//
// # Which PKCS#11 library, and why
//
// PKCS#11 goes through github.com/miekg/pkcs11, the cgo binding to the
// PKCS#11 C API that github.com/ThalesGroup/crypto11 (what cosign uses)
// is built on. crypto11 was the other candidate; it was not taken
// because it cannot sign with Ed25519 keys (CKM_EDDSA), which SoftHSM2 2.6
// and current HSMs support and ferry's trust roots use, and because what
// it adds — a session pool for long-running servers, AES and HMAC, and
// certificate storage — is not needed by a command that opens one key,
// signs a few times and exits. sigstore/sigstore has no PKCS#11 signer
// of its own (cosign's lives in cosign and uses crypto11). Talking to the
// module directly costs about 300 lines (pkcs11.go): find the token and
// the key, read its public half, sign with CKM_ECDSA or CKM_EDDSA, and
// generate a key pair inside the token.
//
// cgo is needed for PKCS#11 (a module is a C shared library). A build
// without cgo, or with the build tag nopkcs11, has no PKCS#11: Open and
// Generate return an *UnavailableError that says so, and everything else
// works.
//
// # KMS
//
// hashivault:// URIs go to sigstore's Vault provider
// (github.com/sigstore/sigstore/pkg/signature/kms/hashivault), configured
// as cosign configures it: VAULT_ADDR, VAULT_TOKEN and
// TRANSIT_SECRET_ENGINE_PATH (default "transit"). Vault (or OpenBao) runs
// on the site's own network, so it fits an isolated site; the cloud KMS
// providers (awskms://, gcpkms://, azurekms://) do not, and are refused
// with an *UnavailableError. A Vault that cannot be reached, or has no
// such key, is a *KMSError when the key is opened, before anything is
// signed.
package signing
