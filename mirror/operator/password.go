package operator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// kdf are the argon2id parameters of new password hashes: RFC 9106's
// second recommended option (t=3, 64 MiB, 4 lanes), for machines whose
// memory is not plentiful. A hash keeps its parameters, so hashes made
// with other ones still verify.
var kdf = kdfParams{time: 3, memory: 64 << 10, threads: 4, keyLen: 32}

type kdfParams struct {
	time, memory uint32 // memory in KiB
	threads      uint8
	keyLen       uint32
}

// Password limits: long enough to resist guessing offline, short
// enough that hashing one costs what it should.
const (
	MinPassword = 10
	MaxPassword = 1024
)

// PasswordError says why a new password is not taken.
type PasswordError struct{ Msg string }

func (e *PasswordError) Error() string { return "password: " + e.Msg }

// CheckNewPassword says whether pw may become a password.
func CheckNewPassword(pw string) error {
	switch n := len(pw); {
	case n < MinPassword:
		return &PasswordError{fmt.Sprintf("%d characters: at least %d", n, MinPassword)}
	case n > MaxPassword:
		return &PasswordError{fmt.Sprintf("%d bytes: at most %d", n, MaxPassword)}
	case strings.ContainsAny(pw, "\r\n"):
		return &PasswordError{"a line break in it (a password file holds the password on its first line)"}
	}
	return nil
}

// hashPassword returns pw's argon2id hash as a PHC string:
// $argon2id$v=19$m=65536,t=3,p=4$SALT$KEY (unpadded base64).
func hashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, kdf.time, kdf.memory, kdf.threads, kdf.keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, kdf.memory, kdf.time, kdf.threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("not an argon2id hash this version of ferry reads")

// checkPassword reports whether pw is the password of hash.
func checkPassword(hash, pw string) (bool, error) {
	var p kdfParams
	var version int
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, errBadHash
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil ||
		p.time == 0 || p.threads == 0 || p.memory < 8*uint32(p.threads) || p.memory > 1<<21 || p.time > 100 {
		return false, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
