package operator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
)

// TestTokens: a token authenticates as its user with the lesser of the
// two roles, and stops when revoked, expired, mistyped, or when its user
// goes; the store never holds the secret.
func TestTokens(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		f := newFleet(t, backend)
		ctx := context.Background()
		a := f.acc
		if err := a.AddUser(ctx, "ana", devices.Operator, "ana-password!"); err != nil {
			t.Fatal(err)
		}
		if err := a.AddUser(ctx, "bo", devices.ReadOnly, "bo-password!"); err != nil {
			t.Fatal(err)
		}
		var ue *UsageError
		for _, bad := range []struct{ user, role, pw string }{{"Ana", "operator", "0123456789"}, {"cy", "admin", "0123456789"}, {"", "operator", "0123456789"}} {
			if err := a.AddUser(ctx, bad.user, devices.Role(bad.role), bad.pw); !errors.As(err, &ue) {
				t.Errorf("AddUser(%q, %q): %v, want a *UsageError", bad.user, bad.role, err)
			}
		}
		var pe *PasswordError
		if err := a.AddUser(ctx, "cy", devices.ReadOnly, "short"); !errors.As(err, &pe) {
			t.Errorf("a short password: %v", err)
		}
		if _, err := a.CreateToken(ctx, "bo", "", devices.Operator, 0); !errors.As(err, &ue) {
			t.Errorf("an operator token for a read-only user: %v, want a *UsageError", err)
		}

		full, err := a.CreateToken(ctx, "ana", "ci", devices.Operator, 0)
		if err != nil {
			t.Fatal(err)
		}
		ro, err := a.CreateToken(ctx, "ana", "dashboard", devices.ReadOnly, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(full.Secret, TokenPrefix+full.ID+"_") || len(full.Secret) < 50 {
			t.Errorf("token %q: want ferry_<id>_<secret>", full.Secret)
		}
		stored, err := f.db.Token(ctx, full.ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(full.Secret, stored.Hash) || stored.Hash != sha256Hex(strings.TrimPrefix(full.Secret, TokenPrefix+full.ID+"_")) {
			t.Errorf("stored hash %q is not the SHA-256 of the secret alone", stored.Hash)
		}

		p, err := a.TokenPrincipal(ctx, full.Secret)
		if err != nil || p.Name != "ana" || p.Role != devices.Operator || p.Via != "token" || p.Token != full.ID {
			t.Fatalf("full token: %+v, %v", p, err)
		}
		if used, _ := f.db.Token(ctx, full.ID); !used.LastUsed.Equal(f.clock.Now().Truncate(time.Millisecond)) {
			t.Errorf("last used %v, want %v", used.LastUsed, f.clock.Now())
		}
		if p, err := a.TokenPrincipal(ctx, ro.Secret); err != nil || p.Role != devices.ReadOnly {
			t.Errorf("read-only token of an operator: %+v, %v", p, err)
		}
		mangled := []string{
			"", "Bearer " + full.Secret, full.Secret + "x", full.Secret[:len(full.Secret)-1],
			strings.Replace(full.Secret, full.ID, "000000000000", 1),
			strings.TrimPrefix(full.Secret, TokenPrefix), TokenPrefix + full.ID,
		}
		for _, m := range mangled {
			if _, err := a.TokenPrincipal(ctx, m); !errors.Is(err, ErrBadToken) {
				t.Errorf("token %q: %v, want ErrBadToken", m, err)
			}
		}
		f.clock.Add(time.Hour)
		if _, err := a.TokenPrincipal(ctx, ro.Secret); !errors.Is(err, ErrBadToken) {
			t.Errorf("an expired token: %v", err)
		}
		if err := f.db.RevokeToken(ctx, full.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := a.TokenPrincipal(ctx, full.Secret); !errors.Is(err, ErrBadToken) {
			t.Errorf("a revoked token: %v", err)
		}
		again, _ := a.CreateToken(ctx, "ana", "", devices.Operator, 0)
		if err := f.db.RemoveUser(ctx, "ana"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.TokenPrincipal(ctx, again.Secret); !errors.Is(err, ErrBadToken) {
			t.Errorf("the token of a removed user: %v", err)
		}
	})
}

// TestLogin: the right password logs in, a wrong one or an unknown user
// fails the same way.
func TestLogin(t *testing.T) {
	f := newFleet(t, "sqlite")
	ctx := context.Background()
	if err := f.acc.AddUser(ctx, "ana", devices.Operator, "ana-password!"); err != nil {
		t.Fatal(err)
	}
	if u, err := f.acc.Login(ctx, "ana", "ana-password!"); err != nil || u.Name != "ana" {
		t.Errorf("right password: %v, %v", u, err)
	}
	for _, c := range [][2]string{{"ana", "ana-password"}, {"nobody", "ana-password!"}, {"ana", strings.Repeat("x", MaxPassword+1)}} {
		if _, err := f.acc.Login(ctx, c[0], c[1]); !errors.Is(err, ErrBadLogin) {
			t.Errorf("Login(%q, %.10q): %v, want ErrBadLogin", c[0], c[1], err)
		}
	}
	if err := f.acc.SetPassword(ctx, "ana", "a-new-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.acc.Login(ctx, "ana", "ana-password!"); !errors.Is(err, ErrBadLogin) {
		t.Error("the old password still works")
	}
	if _, err := f.acc.Login(ctx, "ana", "a-new-password"); err != nil {
		t.Errorf("the new password: %v", err)
	}
}
