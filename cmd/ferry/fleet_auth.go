package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/mirror/operator"
)

// The operators of the console and the API: 'ferry fleet users' and
// 'ferry fleet tokens', on a mirror directory (or its PostgreSQL).

// fleetAuthOptions are the flags every users and tokens command takes.
type fleetAuthOptions struct {
	asJSON   bool
	database string
}

func (o *fleetAuthOptions) addFlags(cmd *cobra.Command, json bool) {
	if json {
		cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	}
	addDatabaseFlag(cmd, &o.database)
}

// openAccounts opens the accounts kept with the mirror dir's devices.
func openAccounts(ctx context.Context, dir, database string) (*operator.Accounts, func(), error) {
	d, err := openDeviceStore(ctx, dir, database)
	if err != nil {
		return nil, nil, err
	}
	return operator.NewAccounts(d), func() { d.Close() }, nil
}

// accountUsage makes the errors a caller fixes by changing the command
// (a bad name, role or password) usage errors.
func accountUsage(err error) error {
	var ue *operator.UsageError
	var pe *operator.PasswordError
	if errors.As(err, &ue) || errors.As(err, &pe) {
		return cliexit.UsageError{Err: err}
	}
	return err
}

func newFleetUsersCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "users",
		Short: "Add, list and remove the operators who log in to the console",
		Long: `Operators log in to the console ('ferry mirror serve --console', at
/console/) with a local account: a name, a password (kept only as an
argon2id hash) and a role: read-only (sees the fleet) or operator (also
approves devices and steers deployments). Accounts live with the device
records (DIR/devices.db, or --database); every mirror sharing a PostgreSQL
database shares them.`,
	}
}

// usersAddOptions are the flags of 'fleet users add' and 'passwd'.
type usersAddOptions struct {
	fleetAuthOptions
	role         string
	passwordFile string
}

func (o *usersAddOptions) addPasswordFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.passwordFile, "password-file", "", "read the password from the first line of FILE ('-': standard input); default: ask on the terminal")
}

func newFleetUsersAddCommand(s *streams) *cobra.Command {
	var o usersAddOptions
	cmd := &cobra.Command{
		Use:   "add DIR NAME [--role read-only|operator] [--password-file FILE]",
		Short: "Add an operator account",
		Long: `Add an account NAME (lower-case letters, digits, '.', '_', '-') with a
password of at least 10 characters, asked twice on the terminal or read
from --password-file (never from the command line, where other users
could read it).`,
		Args: args(2, "a mirror DIR and a user NAME"),
		RunE: func(cmd *cobra.Command, a []string) error { return runFleetUsersAdd(cmd.Context(), s, o, a[0], a[1]) },
	}
	cmd.Flags().StringVar(&o.role, "role", string(devices.ReadOnly), "read-only or operator")
	o.addPasswordFlag(cmd)
	o.addFlags(cmd, false)
	return cmd
}

func runFleetUsersAdd(ctx context.Context, s *streams, o usersAddOptions, dir, name string) error {
	pw, err := s.readNewPassword(o.passwordFile, name)
	if err != nil {
		return err
	}
	a, done, err := openAccounts(ctx, dir, o.database)
	if err != nil {
		return err
	}
	defer done()
	if err := a.AddUser(ctx, name, devices.Role(o.role), pw); err != nil {
		return accountUsage(err)
	}
	fmt.Fprintf(s.err, "ferry: added %s (%s)\n", name, o.role)
	return nil
}

func newFleetUsersPasswdCommand(s *streams) *cobra.Command {
	var o usersAddOptions
	cmd := &cobra.Command{
		Use:   "passwd DIR NAME [--password-file FILE]",
		Short: "Give an operator account a new password",
		Args:  args(2, "a mirror DIR and a user NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runFleetUsersPasswd(cmd.Context(), s, o, a[0], a[1])
		},
	}
	o.addPasswordFlag(cmd)
	o.addFlags(cmd, false)
	return cmd
}

func runFleetUsersPasswd(ctx context.Context, s *streams, o usersAddOptions, dir, name string) error {
	pw, err := s.readNewPassword(o.passwordFile, name)
	if err != nil {
		return err
	}
	a, done, err := openAccounts(ctx, dir, o.database)
	if err != nil {
		return err
	}
	defer done()
	if err := a.SetPassword(ctx, name, pw); err != nil {
		return accountUsage(err)
	}
	fmt.Fprintf(s.err, "ferry: changed the password of %s\n", name)
	return nil
}

// readNewPassword reads a new password: the first line of file ("-":
// standard input), or asked twice on the terminal.
func (s *streams) readNewPassword(file, user string) (string, error) {
	var line string
	switch {
	case file == "-":
		l, err := firstLine(s.in)
		if err != nil {
			return "", fmt.Errorf("password from standard input: %w", err)
		}
		line = l
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		defer f.Close()
		l, err := firstLine(f)
		if err != nil {
			return "", fmt.Errorf("password file %s: %w", file, err)
		}
		line = l
	case display.IsTerminal(s.in):
		fd := int(s.in.(*os.File).Fd())
		fmt.Fprintf(s.err, "password for %s: ", user)
		p, err := term.ReadPassword(fd)
		fmt.Fprintln(s.err)
		if err != nil {
			return "", err
		}
		fmt.Fprint(s.err, "again: ")
		p2, err := term.ReadPassword(fd)
		fmt.Fprintln(s.err)
		if err != nil {
			return "", err
		}
		if string(p) != string(p2) {
			return "", errors.New("the passwords differ")
		}
		line = string(p)
	default:
		return "", cliexit.UsageError{Err: errors.New("no password: give --password-file FILE (or - for standard input), or run from a terminal to be asked")}
	}
	if err := operator.CheckNewPassword(line); err != nil {
		return "", cliexit.UsageError{Err: err}
	}
	return line, nil
}

// firstLine reads the first line of r, without its line break.
func firstLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, operator.MaxPassword+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func newFleetUsersListCommand(s *streams) *cobra.Command {
	var o fleetAuthOptions
	cmd := &cobra.Command{
		Use:   "list DIR [--json]",
		Short: "List the operator accounts",
		Args:  args(1, "a mirror DIR"),
		RunE:  func(cmd *cobra.Command, a []string) error { return runFleetUsersList(cmd.Context(), s, o, a[0]) },
	}
	o.addFlags(cmd, true)
	return cmd
}

func runFleetUsersList(ctx context.Context, s *streams, o fleetAuthOptions, dir string) error {
	a, done, err := openAccounts(ctx, dir, o.database)
	if err != nil {
		return err
	}
	defer done()
	users, err := a.Store().Users(ctx)
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, struct {
			Users []devices.User `json:"users"`
		}{users})
	}
	if len(users) == 0 {
		fmt.Fprintln(s.err, "ferry: no operator account yet: ferry fleet users add DIR NAME --role operator")
		return nil
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLE\tCREATED")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, display.Time(u.CreatedAt))
	}
	return tw.Flush()
}

func newFleetUsersRemoveCommand(s *streams) *cobra.Command {
	var o fleetAuthOptions
	cmd := &cobra.Command{
		Use:   "remove DIR NAME",
		Short: "Remove an operator account, its tokens and its log-ins",
		Args:  args(2, "a mirror DIR and a user NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			acc, done, err := openAccounts(cmd.Context(), a[0], o.database)
			if err != nil {
				return err
			}
			defer done()
			if err := acc.Store().RemoveUser(cmd.Context(), a[1]); err != nil {
				return err
			}
			fmt.Fprintf(s.err, "ferry: removed %s, with their tokens and log-ins\n", a[1])
			return nil
		},
	}
	o.addFlags(cmd, false)
	return cmd
}

func newFleetTokensCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tokens",
		Short: "Create, list and revoke the API tokens of operator accounts",
		Long: `An API token lets a program (or 'ferry fleet COMMAND URL') use the
fleet API of a mirror served with --console: it acts as its user, with
its own role at most the user's (a user demoted later demotes the token).
The token is printed once, when it is made: the mirror keeps only its
SHA-256. Give it to ferry in FERRY_TOKEN or a file (--token-file), never
on the command line.`,
	}
}

// tokensCreateOptions are the flags of 'fleet tokens create'.
type tokensCreateOptions struct {
	fleetAuthOptions
	user, label, role, expires string
}

func newFleetTokensCreateCommand(s *streams) *cobra.Command {
	var o tokensCreateOptions
	cmd := &cobra.Command{
		Use:   "create DIR --user NAME [--label TEXT] [--role read-only|operator] [--expires 90d]",
		Short: "Make an API token for an operator account (printed once)",
		Args:  args(1, "a mirror DIR"),
		RunE:  func(cmd *cobra.Command, a []string) error { return runFleetTokensCreate(cmd.Context(), s, o, a[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.user, "user", "", "the account the token acts as (required)")
	f.StringVar(&o.label, "label", "", "what the token is for, for 'tokens list'")
	f.StringVar(&o.role, "role", "", "read-only or operator (default: the user's role)")
	f.StringVar(&o.expires, "expires", "", "lifetime: Nd or a duration such as 720h (default: until revoked)")
	o.addFlags(cmd, true)
	return cmd
}

func runFleetTokensCreate(ctx context.Context, s *streams, o tokensCreateOptions, dir string) error {
	if o.user == "" {
		return cliexit.UsageError{Err: errors.New("--user NAME: whose token it is")}
	}
	var ttl time.Duration
	if o.expires != "" {
		d, err := display.ParseDuration(o.expires)
		if err != nil {
			return cliexit.UsageError{Err: fmt.Errorf("--expires: %w", err)}
		}
		ttl = d
	}
	a, done, err := openAccounts(ctx, dir, o.database)
	if err != nil {
		return err
	}
	defer done()
	role := devices.Role(o.role)
	if role == "" {
		u, err := a.Store().User(ctx, o.user)
		if err != nil {
			return err
		}
		role = u.Role
	}
	t, err := a.CreateToken(ctx, o.user, o.label, role, ttl)
	if err != nil {
		return accountUsage(err)
	}
	if o.asJSON {
		return writeJSON(s.out, t)
	}
	fmt.Fprintln(s.out, t.Secret)
	fmt.Fprintf(s.err, "ferry: token %s for %s (%s): shown this once; keep it in FERRY_TOKEN or a file only its user reads\n", t.ID, t.User, t.Role)
	return nil
}

func newFleetTokensListCommand(s *streams) *cobra.Command {
	var o fleetAuthOptions
	cmd := &cobra.Command{
		Use:   "list DIR [--json]",
		Short: "List the API tokens (their ids, never their secrets)",
		Args:  args(1, "a mirror DIR"),
		RunE:  func(cmd *cobra.Command, a []string) error { return runFleetTokensList(cmd.Context(), s, o, a[0]) },
	}
	o.addFlags(cmd, true)
	return cmd
}

func runFleetTokensList(ctx context.Context, s *streams, o fleetAuthOptions, dir string) error {
	a, done, err := openAccounts(ctx, dir, o.database)
	if err != nil {
		return err
	}
	defer done()
	toks, err := a.Store().Tokens(ctx)
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, struct {
			Tokens []devices.Token `json:"tokens"`
		}{toks})
	}
	if len(toks) == 0 {
		fmt.Fprintln(s.err, "ferry: no API token yet: ferry fleet tokens create DIR --user NAME")
		return nil
	}
	when := func(t time.Time, zero string) string {
		if t.IsZero() {
			return zero
		}
		return display.Time(t)
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tUSER\tROLE\tLABEL\tCREATED\tEXPIRES\tLAST USED")
	for _, t := range toks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.User, t.Role, display.Untrusted(display.OrDash(t.Label)), display.Time(t.CreatedAt), when(t.ExpiresAt, "never"), when(t.LastUsed, "never"))
	}
	return tw.Flush()
}

func newFleetTokensRevokeCommand(s *streams) *cobra.Command {
	var o fleetAuthOptions
	cmd := &cobra.Command{
		Use:   "revoke DIR TOKEN-ID",
		Short: "Revoke an API token: it stops working at once",
		Args:  args(2, "a mirror DIR and a token id ('tokens list')"),
		RunE: func(cmd *cobra.Command, a []string) error {
			acc, done, err := openAccounts(cmd.Context(), a[0], o.database)
			if err != nil {
				return err
			}
			defer done()
			// The whole token names its id too.
			id := a[1]
			if rest, ok := strings.CutPrefix(id, operator.TokenPrefix); ok {
				id, _, _ = strings.Cut(rest, "_")
			}
			if err := acc.Store().RevokeToken(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(s.err, "ferry: revoked token %s\n", id)
			return nil
		},
	}
	o.addFlags(cmd, false)
	return cmd
}
