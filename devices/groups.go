package devices

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// engineSchema holds groups, labels, settings and deployments, for the
// dialect (the serial key is all that differs).
func engineSchema(dl dialect) string {
	serial := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if dl.name == "postgres" {
		serial = "BIGSERIAL PRIMARY KEY"
	}
	return `
CREATE TABLE IF NOT EXISTS fleet_labels (
	device_id TEXT NOT NULL,
	key       TEXT NOT NULL,
	value     TEXT NOT NULL,
	PRIMARY KEY (device_id, key)
);
CREATE TABLE IF NOT EXISTS fleet_groups (
	name       TEXT PRIMARY KEY,
	kind       TEXT NOT NULL,   -- static, dynamic
	filter     TEXT NOT NULL,   -- dynamic: the filter
	created_at BIGINT NOT NULL, -- unix ms, mirror clock
	updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_group_devices (
	group_name TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	PRIMARY KEY (group_name, device_id)
);
CREATE TABLE IF NOT EXISTS fleet_settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_deployments (
	id               ` + serial + `,
	bundle           TEXT NOT NULL,
	version          TEXT NOT NULL,
	digest           TEXT NOT NULL,
	group_name       TEXT NOT NULL,
	filter           TEXT NOT NULL,
	phases           TEXT NOT NULL,   -- JSON []Phase
	created_by       TEXT NOT NULL,
	approved_by      TEXT NOT NULL,
	state            TEXT NOT NULL,
	phase            BIGINT NOT NULL, -- the current phase, 0-based
	phase_started_at BIGINT NOT NULL,
	phase_done_at    BIGINT NOT NULL, -- every device of the phase reported; 0: not yet
	reason           TEXT NOT NULL,
	devices          BIGINT NOT NULL,
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_targets (
	deployment_id BIGINT NOT NULL,
	device_id     TEXT NOT NULL,
	seq           BIGINT NOT NULL, -- rollout order
	phase         BIGINT NOT NULL,
	state         TEXT NOT NULL,   -- waiting, assigned, succeeded, failed
	assigned_at   BIGINT NOT NULL, -- unix ms: also the assignment's counter
	reported_at   BIGINT NOT NULL,
	result        TEXT NOT NULL,
	error         TEXT NOT NULL,
	attempts      BIGINT NOT NULL,
	PRIMARY KEY (deployment_id, device_id)
);
CREATE INDEX IF NOT EXISTS fleet_targets_by_device ON fleet_targets (device_id, deployment_id);
CREATE TABLE IF NOT EXISTS fleet_events (
	id            ` + serial + `,
	deployment_id BIGINT NOT NULL,
	at            BIGINT NOT NULL,
	operator      TEXT NOT NULL,
	kind          TEXT NOT NULL,
	message       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fleet_events_by_deployment ON fleet_events (deployment_id, id);
`
}

// Labels: operators' facts about devices.

var labelKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// MaxLabels bounds the labels of one device.
const MaxLabels = 32

// LabelError says a label cannot be set.
type LabelError struct {
	Key string `json:"key"`
	Msg string `json:"msg"`
}

func (e *LabelError) Error() string { return fmt.Sprintf("label %q: %s", e.Key, e.Msg) }

// checkLabel checks a label; value "" removes it.
func checkLabel(k, v string) error {
	if !labelKeyRE.MatchString(k) {
		return &LabelError{k, "a key is a lower-case letter, then up to 31 of a-z, 0-9, '_' and '-'"}
	}
	if len(v) > 128 || strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return &LabelError{k, "a value is at most 128 printable characters"}
	}
	return nil
}

// SetLabels sets (value "") removes) labels of the device idOrPrefix,
// and returns its record.
func (d *DB) SetLabels(ctx context.Context, idOrPrefix string, set map[string]string, at time.Time) (*Record, error) {
	for k, v := range set {
		if err := checkLabel(k, v); err != nil {
			return nil, err
		}
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rec, err := resolve(ctx, tx, idOrPrefix, tx.dl.forUpdate)
	if err != nil {
		return nil, err
	}
	if err := setLabels(ctx, tx, rec.ID, set); err != nil {
		return nil, err
	}
	one := []Record{*rec}
	if err := attachLabels(ctx, tx, one); err != nil {
		return nil, err
	}
	if len(one[0].Labels) > MaxLabels {
		return nil, &LabelError{"", fmt.Sprintf("a device has at most %d labels", MaxLabels)}
	}
	return &one[0], tx.Commit()
}

func setLabels(ctx context.Context, tx sqlTx, id string, set map[string]string) error {
	for k, v := range set {
		if _, err := tx.ExecContext(ctx, `DELETE FROM fleet_labels WHERE device_id = ? AND key = ?`, id, k); err != nil {
			return err
		}
		if v == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_labels (device_id, key, value) VALUES (?, ?, ?)`, id, k, v); err != nil {
			return err
		}
	}
	return nil
}

// attachLabels fills the Labels of recs.
func attachLabels(ctx context.Context, q querier, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	query, args := `SELECT device_id, key, value FROM fleet_labels`, []any{}
	if len(recs) == 1 {
		query, args = query+` WHERE device_id = ?`, []any{recs[0].ID}
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	defer rows.Close()
	at := map[string]int{}
	for i := range recs {
		at[recs[i].ID] = i
	}
	for rows.Next() {
		var id, k, v string
		if err := rows.Scan(&id, &k, &v); err != nil {
			return fmt.Errorf("labels: %w", err)
		}
		if i, ok := at[id]; ok {
			if recs[i].Labels == nil {
				recs[i].Labels = map[string]string{}
			}
			recs[i].Labels[k] = v
		}
	}
	return rows.Err()
}

// Groups.

// GroupKind says how a group's devices are chosen.
type GroupKind string

const (
	// Static: a named list of devices.
	Static GroupKind = "static"
	// Dynamic: every enrolled device its filter matches, when asked.
	Dynamic GroupKind = "dynamic"
)

// Group is a set of devices a deployment can target.
type Group struct {
	Name      string    `json:"name"`
	Kind      GroupKind `json:"kind"`
	Devices   []string  `json:"devices,omitempty"` // static: device ids
	Filter    string    `json:"filter,omitempty"`  // dynamic: its filter, canonical
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

var groupNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// GroupNotFoundError says there is no group of that name.
type GroupNotFoundError struct {
	Name string `json:"name"`
}

func (e *GroupNotFoundError) Error() string { return fmt.Sprintf("no group %q on this mirror", e.Name) }

// SpecError says what is wrong with a group or a deployment asked for.
type SpecError struct {
	Field string `json:"field"`
	Msg   string `json:"msg"`
}

func (e *SpecError) Error() string { return e.Field + ": " + e.Msg }

// PutGroup creates the group g, or replaces the group of its name. A
// static group's devices may be given by unique id prefixes; they are
// stored by id (a device need not be enrolled yet). A dynamic group's
// filter is parsed and stored in its canonical form.
func (d *DB) PutGroup(ctx context.Context, g Group, at time.Time) (*Group, error) {
	if !groupNameRE.MatchString(g.Name) {
		return nil, &SpecError{"name", fmt.Sprintf("group name %q: a letter or digit, then up to 63 of letters, digits, '.', '_' and '-'", g.Name)}
	}
	switch g.Kind {
	case Static:
		if g.Filter != "" {
			return nil, &SpecError{"filter", "a static group lists devices; a dynamic one has a filter"}
		}
	case Dynamic:
		if len(g.Devices) != 0 {
			return nil, &SpecError{"devices", "a dynamic group has a filter, not a list of devices"}
		}
		f, err := ParseFilter(g.Filter)
		if err != nil {
			return nil, err
		}
		g.Filter = f.String()
	default:
		return nil, &SpecError{"kind", fmt.Sprintf("%q: want static or dynamic", g.Kind)}
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	ids := map[string]bool{}
	for _, p := range g.Devices {
		rec, err := resolve(ctx, tx, p, "")
		if err != nil {
			return nil, err
		}
		ids[rec.ID] = true
	}
	g.Devices = sortedKeys(ids)
	old, err := getGroup(ctx, tx, g.Name)
	var nf *GroupNotFoundError
	switch {
	case errors.As(err, &nf):
		g.CreatedAt = msTime(at.UnixMilli())
	case err != nil:
		return nil, err
	default:
		g.CreatedAt = old.CreatedAt
	}
	g.UpdatedAt = msTime(at.UnixMilli())
	if _, err := tx.ExecContext(ctx, `DELETE FROM fleet_groups WHERE name = ?`, g.Name); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM fleet_group_devices WHERE group_name = ?`, g.Name); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_groups (name, kind, filter, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		g.Name, g.Kind, g.Filter, g.CreatedAt.UnixMilli(), g.UpdatedAt.UnixMilli()); err != nil {
		return nil, err
	}
	for _, id := range g.Devices {
		if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_group_devices (group_name, device_id) VALUES (?, ?)`, g.Name, id); err != nil {
			return nil, err
		}
	}
	if g.Devices == nil && g.Kind == Static {
		g.Devices = []string{}
	}
	return &g, tx.Commit()
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type rowQuerier interface {
	querier
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getGroup(ctx context.Context, q rowQuerier, name string) (*Group, error) {
	var g Group
	var created, updated int64
	err := q.QueryRowContext(ctx, `SELECT name, kind, filter, created_at, updated_at FROM fleet_groups WHERE name = ?`, name).
		Scan(&g.Name, &g.Kind, &g.Filter, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &GroupNotFoundError{name}
	}
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", name, err)
	}
	g.CreatedAt, g.UpdatedAt = msTime(created), msTime(updated)
	if g.Kind == Static {
		rows, err := q.QueryContext(ctx, `SELECT device_id FROM fleet_group_devices WHERE group_name = ? ORDER BY device_id`, name)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", name, err)
		}
		defer rows.Close()
		g.Devices = []string{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			g.Devices = append(g.Devices, id)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return &g, nil
}

// Groups lists the groups, by name.
func (d *DB) Groups(ctx context.Context) ([]Group, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name FROM fleet_groups ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := []Group{}
	for _, n := range names {
		g, err := getGroup(ctx, d.db, n)
		if err != nil {
			return nil, err
		}
		out = append(out, *g)
	}
	return out, nil
}

// GroupMembers returns the group and the enrolled devices in it now.
func (d *DB) GroupMembers(ctx context.Context, name string) (*Group, []Record, error) {
	g, err := getGroup(ctx, d.db, name)
	if err != nil {
		return nil, nil, err
	}
	recs, err := records(ctx, d.db)
	if err != nil {
		return nil, nil, err
	}
	members, err := g.members(recs)
	return g, members, err
}

// members picks the group's enrolled devices among recs.
func (g *Group) members(recs []Record) ([]Record, error) {
	match := func(r *Record) bool { return false }
	switch g.Kind {
	case Static:
		in := map[string]bool{}
		for _, id := range g.Devices {
			in[id] = true
		}
		match = func(r *Record) bool { return in[r.ID] }
	case Dynamic:
		f, err := ParseFilter(g.Filter)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", g.Name, err)
		}
		match = f.Match
	}
	return enrolledMatching(recs, match), nil
}

func enrolledMatching(recs []Record, match func(*Record) bool) []Record {
	out := []Record{}
	for i := range recs {
		if recs[i].Status == Enrolled && match(&recs[i]) {
			out = append(out, recs[i])
		}
	}
	return out
}

// DeleteGroup deletes a group. Deployments made for it keep their devices.
func (d *DB) DeleteGroup(ctx context.Context, name string) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := getGroup(ctx, tx, name); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM fleet_groups WHERE name = ?`, name); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM fleet_group_devices WHERE group_name = ?`, name); err != nil {
		return err
	}
	return tx.Commit()
}

// Settings are a site's rules for deployments.
type Settings struct {
	// RequireApproval: a deployment starts only once an operator other
	// than the one who made it approves it.
	RequireApproval bool `json:"requireApproval"`
}

// Settings returns the site's settings.
func (d *DB) Settings(ctx context.Context) (Settings, error) {
	return readSettings(ctx, d.db)
}

func readSettings(ctx context.Context, q rowQuerier) (Settings, error) {
	var s Settings
	var v string
	err := q.QueryRowContext(ctx, `SELECT value FROM fleet_settings WHERE key = 'require-approval'`).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("settings: %w", err)
	}
	s.RequireApproval = v == "true"
	return s, nil
}

// SetSettings stores the site's settings.
func (d *DB) SetSettings(ctx context.Context, s Settings) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM fleet_settings WHERE key = 'require-approval'`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_settings (key, value) VALUES ('require-approval', ?)`, fmt.Sprint(s.RequireApproval)); err != nil {
		return err
	}
	return tx.Commit()
}
