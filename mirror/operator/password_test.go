package operator

import (
	"errors"
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	h, err := hashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Errorf("hash %q: not argon2id with RFC 9106's parameters", h)
	}
	if h2, _ := hashPassword("correct horse battery"); h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"correct horse battery": true, "correct horse batterY": false, "": false} {
		if ok, err := checkPassword(h, pw); err != nil || ok != want {
			t.Errorf("checkPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	// Stored strings that are not argon2id hashes this version reads.
	noKey := "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$"
	for _, bad := range []string{
		"", "plain", "$2y$10$abcdefghijklmnopqrstuv", // bcrypt
		"$argon2i$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=16$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=8192,t=0,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA", // memory beyond 2 GiB: refused, not allocated
		"$argon2id$v=19$m=8192,t=1,p=1$c2Fs$AAAAAAAAAAAAAAAAAAAAAA",                 // salt too short
		noKey + "!!!",
		noKey,
	} {
		if _, err := checkPassword(bad, "pw"); !errors.Is(err, errBadHash) {
			t.Errorf("checkPassword(%q): %v, want errBadHash", bad, err)
		}
	}
	// A hash keeps its parameters: one made with others still verifies
	// after the defaults change.
	defaults := kdf
	defer func() { kdf = defaults }()
	kdf = kdfParams{time: 1, memory: 8192, threads: 1, keyLen: 24}
	h, _ = hashPassword("pw")
	kdf = defaults
	if ok, err := checkPassword(h, "pw"); !ok || err != nil || !strings.Contains(h, "m=8192,t=1,p=1") {
		t.Errorf("a hash with other parameters (%s) does not verify: %v %v", h, ok, err)
	}
}

func TestCheckNewPassword(t *testing.T) {
	for pw, ok := range map[string]bool{
		"0123456789":              true,
		"012345678":               false,
		strings.Repeat("x", 1024): true,
		strings.Repeat("x", 1025): false,
		"two\nlines and more":     false,
		"a carriage\r return":     false,
	} {
		err := CheckNewPassword(pw)
		var pe *PasswordError
		if (err == nil) != ok || (err != nil && !errors.As(err, &pe)) {
			t.Errorf("CheckNewPassword(%.20q) = %v, want ok %v", pw, err, ok)
		}
	}
}
