package devices

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAccounts walks accounts, tokens and sessions through their life on
// both backends: what is added is found, a name or id taken is refused,
// an expired session is gone, and removing a user takes its tokens and
// sessions with it.
func TestAccounts(t *testing.T) {
	eachBackend(t, func(t *testing.T, newDB func(*testing.T) *DB) {
		ctx := context.Background()
		d := newDB(t)
		t0 := time.UnixMilli(1_780_000_000_000).UTC()
		var noAcct *NoAccountError

		must(t, d.AddUser(ctx, User{Name: "ana", Role: Operator, PasswordHash: "$argon2id$x", CreatedAt: t0}))
		must(t, d.AddUser(ctx, User{Name: "bo", Role: ReadOnly, PasswordHash: "$argon2id$y", CreatedAt: t0}))
		if err := d.AddUser(ctx, User{Name: "ana", Role: ReadOnly, PasswordHash: "z", CreatedAt: t0}); !errors.Is(err, ErrExists) {
			t.Fatalf("adding ana twice: %v, want ErrExists", err)
		}
		u, err := d.User(ctx, "ana")
		must(t, err)
		if u.Role != Operator || u.PasswordHash != "$argon2id$x" || !u.CreatedAt.Equal(t0) {
			t.Errorf("ana = %+v: the second add changed her, or she was stored wrong", u)
		}
		must(t, d.SetPassword(ctx, "bo", "$argon2id$new"))
		if u, _ := d.User(ctx, "bo"); u.PasswordHash != "$argon2id$new" {
			t.Errorf("bo's password hash = %q after SetPassword", u.PasswordHash)
		}
		if _, err := d.User(ctx, "cy"); !errors.As(err, &noAcct) || noAcct.What != "user" {
			t.Errorf("User(cy) = %v, want a *NoAccountError", err)
		}
		users, err := d.Users(ctx)
		must(t, err)
		if len(users) != 2 || users[0].Name != "ana" || users[1].Name != "bo" {
			t.Errorf("Users = %+v, want ana, bo", users)
		}

		tok := Token{ID: "0123456789ab", Hash: "h1", User: "ana", Label: "ci", Role: Operator, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		must(t, d.AddToken(ctx, tok))
		if err := d.AddToken(ctx, tok); !errors.Is(err, ErrExists) {
			t.Errorf("adding a token id twice: %v, want ErrExists", err)
		}
		if err := d.AddToken(ctx, Token{ID: "ffffffffffff", Hash: "h", User: "cy", Role: ReadOnly, CreatedAt: t0}); !errors.As(err, &noAcct) || noAcct.What != "user" {
			t.Errorf("a token for no user: %v, want a *NoAccountError for the user", err)
		}
		must(t, d.AddToken(ctx, Token{ID: "bbbbbbbbbbbb", Hash: "h2", User: "bo", Label: "dash", Role: ReadOnly, CreatedAt: t0}))
		must(t, d.TouchToken(ctx, tok.ID, t0.Add(time.Minute)))
		got, err := d.Token(ctx, tok.ID)
		must(t, err)
		if got.Hash != "h1" || got.User != "ana" || got.Label != "ci" || !got.ExpiresAt.Equal(t0.Add(time.Hour)) || !got.LastUsed.Equal(t0.Add(time.Minute)) {
			t.Errorf("token = %+v", got)
		}
		if got, _ := d.Token(ctx, "bbbbbbbbbbbb"); !got.ExpiresAt.IsZero() || !got.LastUsed.IsZero() {
			t.Errorf("a token that never expires and was never used reads %+v", got)
		}
		must(t, d.RevokeToken(ctx, "bbbbbbbbbbbb"))
		if err := d.RevokeToken(ctx, "bbbbbbbbbbbb"); !errors.As(err, &noAcct) {
			t.Errorf("revoking a revoked token: %v, want a *NoAccountError", err)
		}
		if _, err := d.Token(ctx, "bbbbbbbbbbbb"); !errors.As(err, &noAcct) {
			t.Errorf("a revoked token is still found: %v", err)
		}

		live := Session{ID: "s-live", User: "ana", CSRF: "c1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		must(t, d.AddSession(ctx, live))
		must(t, d.AddSession(ctx, Session{ID: "s-old", User: "bo", CSRF: "c2", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}))
		if err := d.AddSession(ctx, Session{ID: "s-x", User: "cy", CSRF: "c", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); !errors.As(err, &noAcct) {
			t.Errorf("a session for no user: %v", err)
		}
		s, u, err := d.Session(ctx, "s-live", t0.Add(30*time.Minute))
		must(t, err)
		if s.User != "ana" || s.CSRF != "c1" || u.Role != Operator {
			t.Errorf("session = %+v of %+v", s, u)
		}
		if _, _, err := d.Session(ctx, "s-old", t0.Add(time.Minute)); !errors.As(err, &noAcct) {
			t.Errorf("an expired session is found: %v", err)
		}
		must(t, d.DeleteExpiredSessions(ctx, t0.Add(2*time.Minute)))
		if _, _, err := d.Session(ctx, "s-old", t0); !errors.As(err, &noAcct) {
			t.Errorf("DeleteExpiredSessions left s-old: %v", err)
		}
		must(t, d.DeleteSession(ctx, "s-gone"))

		must(t, d.RemoveUser(ctx, "ana"))
		if _, _, err := d.Session(ctx, "s-live", t0); !errors.As(err, &noAcct) {
			t.Errorf("ana's session outlived her account: %v", err)
		}
		if _, err := d.Token(ctx, tok.ID); !errors.As(err, &noAcct) {
			t.Errorf("ana's token outlived her account: %v", err)
		}
		if err := d.RemoveUser(ctx, "ana"); !errors.As(err, &noAcct) {
			t.Errorf("removing ana twice: %v", err)
		}
		toks, err := d.Tokens(ctx)
		must(t, err)
		if len(toks) != 0 {
			t.Errorf("tokens left: %+v", toks)
		}
	})
}

func TestRoles(t *testing.T) {
	for _, c := range []struct {
		have, need Role
		allows     bool
	}{
		{Operator, Operator, true},
		{Operator, ReadOnly, true},
		{ReadOnly, ReadOnly, true},
		{ReadOnly, Operator, false},
		{"admin", ReadOnly, false},
		{"", ReadOnly, false},
	} {
		if got := c.have.Allows(c.need); got != c.allows {
			t.Errorf("%q.Allows(%q) = %v", c.have, c.need, got)
		}
	}
	if Lesser(Operator, ReadOnly) != ReadOnly || Lesser(Operator, Operator) != Operator || Lesser("x", Operator) != ReadOnly {
		t.Error("Lesser")
	}
	if !Operator.Valid() || !ReadOnly.Valid() || Role("root").Valid() {
		t.Error("Valid")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
