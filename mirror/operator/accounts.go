package operator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ferry-update/ferry/devices"
)

// AccountStore keeps operators' accounts, tokens and sessions
// (*devices.DB, on SQLite or PostgreSQL).
type AccountStore interface {
	AddUser(ctx context.Context, u devices.User) error
	SetPassword(ctx context.Context, name, hash string) error
	User(ctx context.Context, name string) (*devices.User, error)
	Users(ctx context.Context) ([]devices.User, error)
	RemoveUser(ctx context.Context, name string) error
	AddToken(ctx context.Context, t devices.Token) error
	Token(ctx context.Context, id string) (*devices.Token, error)
	Tokens(ctx context.Context) ([]devices.Token, error)
	TouchToken(ctx context.Context, id string, at time.Time) error
	RevokeToken(ctx context.Context, id string) error
	AddSession(ctx context.Context, s devices.Session) error
	Session(ctx context.Context, id string, now time.Time) (*devices.Session, *devices.User, error)
	DeleteSession(ctx context.Context, id string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) error
}

var _ AccountStore = (*devices.DB)(nil)

// SessionLifetime is how long a console log-in lasts.
const SessionLifetime = 12 * time.Hour

// TokenPrefix begins every API token, so a token is recognised where it
// leaks (logs, a secret scanner).
const TokenPrefix = "ferry_"

// Accounts authenticates operators: local accounts with argon2id
// password hashes, API tokens and console sessions, whose secrets are
// stored only as hashes.
type Accounts struct {
	st  AccountStore
	now func() time.Time
	// kdfSlots bounds the password hashes computed at once: each takes
	// kdf.memory, so a flood of log-ins cannot exhaust the machine.
	kdfSlots chan struct{}
	// dummy is hashed against for unknown users, so a log-in takes as
	// long whether or not the account exists.
	dummy func() string
}

// NewAccounts returns the accounts kept in st.
func NewAccounts(st AccountStore) *Accounts {
	return &Accounts{st: st, now: time.Now, kdfSlots: make(chan struct{}, 2),
		dummy: sync.OnceValue(func() string { h, _ := hashPassword(randomText(16)); return h })}
}

// Principal is who makes a request, and with what role.
type Principal struct {
	Name string       `json:"name"`
	Role devices.Role `json:"role"`
	// Via is "session" (the console) or "token" (the API).
	Via   string `json:"via"`
	Token string `json:"token,omitempty"` // the token's id, Via "token"
	// csrf is the session's CSRF token, which the console's forms carry.
	csrf string
}

// Can reports whether p may act as need.
func (p *Principal) Can(need devices.Role) bool { return p != nil && p.Role.Allows(need) }

var userNameRE = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)

// UsageError is a request the caller can fix (a bad name, role,
// password or label).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// AddUser adds an account; the password is hashed (argon2id) and never
// stored.
func (a *Accounts) AddUser(ctx context.Context, name string, role devices.Role, password string) error {
	if !userNameRE.MatchString(name) {
		return &UsageError{fmt.Sprintf("user name %q: want a lower-case letter, then letters, digits, '.', '_' or '-', at most 64", name)}
	}
	if !role.Valid() {
		return &UsageError{fmt.Sprintf("role %q: want %s or %s", role, devices.ReadOnly, devices.Operator)}
	}
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	hash, err := a.hash(ctx, password)
	if err != nil {
		return err
	}
	return a.st.AddUser(ctx, devices.User{Name: name, Role: role, PasswordHash: hash, CreatedAt: a.now().UTC()})
}

// SetPassword gives an account a new password.
func (a *Accounts) SetPassword(ctx context.Context, name, password string) error {
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	hash, err := a.hash(ctx, password)
	if err != nil {
		return err
	}
	return a.st.SetPassword(ctx, name, hash)
}

func (a *Accounts) hash(ctx context.Context, pw string) (string, error) {
	if err := a.slot(ctx); err != nil {
		return "", err
	}
	defer func() { <-a.kdfSlots }()
	return hashPassword(pw)
}

func (a *Accounts) slot(ctx context.Context) error {
	select {
	case a.kdfSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrBadLogin is a log-in or token that does not authenticate: the
// caller is not told which part was wrong.
var ErrBadLogin = errors.New("wrong user name or password")

// ErrBadToken is a token that does not authenticate (unknown, revoked,
// expired, or whose account is gone).
var ErrBadToken = errors.New("the token is not valid on this mirror (revoked, expired or mistyped)")

// Login checks a user's password.
func (a *Accounts) Login(ctx context.Context, name, password string) (*devices.User, error) {
	if len(password) > MaxPassword {
		return nil, ErrBadLogin
	}
	u, err := a.st.User(ctx, name)
	var na *devices.NoAccountError
	if err != nil && !errors.As(err, &na) {
		return nil, err
	}
	if err := a.slot(ctx); err != nil {
		return nil, err
	}
	defer func() { <-a.kdfSlots }()
	if u == nil {
		// As slow as a real check: no telling which names exist.
		checkPassword(a.dummy(), password)
		return nil, ErrBadLogin
	}
	ok, err := checkPassword(u.PasswordHash, password)
	if err != nil {
		return nil, fmt.Errorf("user %s: stored password: %w", name, err)
	}
	if !ok {
		return nil, ErrBadLogin
	}
	return u, nil
}

// NewToken is a token just made: Secret is shown once, never again.
type NewToken struct {
	devices.Token
	Secret string `json:"token"`
}

// CreateToken makes an API token for user, acting with role (at most
// the user's role, when it is used), valid for ttl (0: until revoked).
func (a *Accounts) CreateToken(ctx context.Context, user, label string, role devices.Role, ttl time.Duration) (*NewToken, error) {
	if !role.Valid() {
		return nil, &UsageError{fmt.Sprintf("role %q: want %s or %s", role, devices.ReadOnly, devices.Operator)}
	}
	if len(label) > 128 || strings.ContainsFunc(label, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, &UsageError{"label: at most 128 printable characters"}
	}
	if ttl < 0 {
		return nil, &UsageError{"a token's lifetime must not be negative"}
	}
	u, err := a.st.User(ctx, user)
	if err != nil {
		return nil, err
	}
	if !u.Role.Allows(role) {
		return nil, &UsageError{fmt.Sprintf("user %s is %s: a token of theirs cannot be %s", user, u.Role, role)}
	}
	id, secret := randomHex(6), randomText(32)
	now := a.now().UTC()
	t := devices.Token{ID: id, Hash: sha256Hex(secret), User: user, Label: label, Role: role, CreatedAt: now}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
	}
	if err := a.st.AddToken(ctx, t); err != nil {
		return nil, err
	}
	return &NewToken{Token: t, Secret: TokenPrefix + id + "_" + secret}, nil
}

// TokenPrincipal authenticates an API token: its role is the lesser of
// the token's and its user's now, so demoting a user demotes the tokens.
func (a *Accounts) TokenPrincipal(ctx context.Context, token string) (*Principal, error) {
	rest, ok := strings.CutPrefix(token, TokenPrefix)
	id, secret, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || len(id) != 12 {
		return nil, ErrBadToken
	}
	t, err := a.st.Token(ctx, id)
	var na *devices.NoAccountError
	if errors.As(err, &na) {
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, err
	}
	now := a.now()
	if subtle.ConstantTimeCompare([]byte(sha256Hex(secret)), []byte(t.Hash)) != 1 || (!t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)) {
		return nil, ErrBadToken
	}
	u, err := a.st.User(ctx, t.User)
	if errors.As(err, &na) {
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, err
	}
	if err := a.st.TouchToken(ctx, id, now); err != nil && !errors.As(err, &na) {
		return nil, err
	}
	return &Principal{Name: u.Name, Role: devices.Lesser(t.Role, u.Role), Via: "token", Token: id}, nil
}

// StartSession starts a console session of user: the cookie's secret
// (stored only as its hash) and the session with its CSRF token.
func (a *Accounts) StartSession(ctx context.Context, user string) (string, *devices.Session, error) {
	now := a.now().UTC()
	if err := a.st.DeleteExpiredSessions(ctx, now); err != nil {
		return "", nil, err
	}
	secret := randomText(32)
	s := devices.Session{ID: sha256Hex(secret), User: user, CSRF: randomText(32), CreatedAt: now, ExpiresAt: now.Add(SessionLifetime)}
	if err := a.st.AddSession(ctx, s); err != nil {
		return "", nil, err
	}
	return secret, &s, nil
}

// ErrNoSession is a session cookie that names no live session.
var ErrNoSession = errors.New("not logged in (or the session ended)")

// SessionPrincipal finds the session of a cookie's secret.
func (a *Accounts) SessionPrincipal(ctx context.Context, secret string) (*Principal, *devices.Session, error) {
	if secret == "" {
		return nil, nil, ErrNoSession
	}
	s, u, err := a.st.Session(ctx, sha256Hex(secret), a.now())
	var na *devices.NoAccountError
	if errors.As(err, &na) {
		return nil, nil, ErrNoSession
	}
	if err != nil {
		return nil, nil, err
	}
	return &Principal{Name: u.Name, Role: u.Role, Via: "session", csrf: s.CSRF}, s, nil
}

// EndSession ends the session of a cookie's secret (log-out).
func (a *Accounts) EndSession(ctx context.Context, secret string) error {
	return a.st.DeleteSession(ctx, sha256Hex(secret))
}

// Store is the store the accounts are kept in, for listing and removing.
func (a *Accounts) Store() AccountStore { return a.st }

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

func randomText(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }
