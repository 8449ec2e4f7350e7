package devices

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-update/ferry/transport/checkin"
)

// DeploymentState is where a deployment stands.
type DeploymentState string

// The states of a deployment (docs/fleet.md, "Deployments").
const (
	AwaitingApproval DeploymentState = "awaiting-approval"
	Running          DeploymentState = "running"
	Paused           DeploymentState = "paused"
	Completed        DeploymentState = "completed"
	Aborted          DeploymentState = "aborted"
)

// TargetState is where one device of a deployment stands.
type TargetState string

// The states of a deployment's device.
const (
	// Waiting: its phase has not started.
	Waiting TargetState = "waiting"
	// Assigned: its phase runs; the mirror hands it the assignment.
	Assigned TargetState = "assigned"
	// Succeeded: it reported the bundle committed (or already ran it).
	Succeeded TargetState = "succeeded"
	// Failed: it reported the install failed, refused or rolled back.
	Failed TargetState = "failed"
)

// DeploymentSpec is what an operator asks for.
type DeploymentSpec struct {
	Bundle  string `json:"bundle"`
	Version string `json:"version"`
	// Digest is the bundle's manifest digest on the mirror (sha256:…): the
	// assignment names it, and the device installs only that manifest.
	Digest string `json:"digest"`
	// Group or Filter (one of them) chooses the devices: the enrolled
	// devices in it when the deployment is made.
	Group  string  `json:"group,omitempty"`
	Filter string  `json:"filter,omitempty"`
	Phases []Phase `json:"phases"`
	// CreatedBy names the operator who made it.
	CreatedBy string `json:"createdBy"`
}

// Deployment is a deployment and its progress.
type Deployment struct {
	ID int64 `json:"id"`
	DeploymentSpec
	State DeploymentState `json:"state"`
	// Phase is the current phase, 0-based.
	Phase          int       `json:"phase"`
	PhaseStartedAt time.Time `json:"phaseStartedAt"`
	// PhaseDoneAt is when the last device of the current phase reported
	// (zero while some have not): its soak runs from then.
	PhaseDoneAt time.Time `json:"phaseDoneAt,omitzero"`
	ApprovedBy  string    `json:"approvedBy,omitempty"`
	// Reason says why it is paused or aborted.
	Reason    string          `json:"reason,omitempty"`
	Devices   int             `json:"devices"`
	Progress  []PhaseProgress `json:"progress"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// PhaseProgress counts a phase's devices by state.
type PhaseProgress struct {
	Phase       Phase `json:"phase"`
	Devices     int   `json:"devices"`
	Waiting     int   `json:"waiting"`
	Assigned    int   `json:"assigned"`
	Succeeded   int   `json:"succeeded"`
	Failed      int   `json:"failed"`
	MaxFailures int   `json:"maxFailures"` // failures allowed, as a number
}

// Target is one device of a deployment.
type Target struct {
	Device     string      `json:"device"`
	Name       string      `json:"name"`
	Phase      int         `json:"phase"`
	State      TargetState `json:"state"`
	Result     string      `json:"result,omitempty"`
	Error      string      `json:"error,omitempty"`
	Attempts   int         `json:"attempts"`
	AssignedAt time.Time   `json:"assignedAt,omitzero"`
	ReportedAt time.Time   `json:"reportedAt,omitzero"`
}

// Event is one entry of a deployment's log.
type Event struct {
	At       time.Time `json:"at"`
	Operator string    `json:"operator,omitempty"` // "" for the mirror itself
	Kind     string    `json:"kind"`
	Message  string    `json:"message"`
}

// DeploymentDetail is a deployment with its devices and log.
type DeploymentDetail struct {
	Deployment
	Targets []Target `json:"targets"`
	Events  []Event  `json:"events"`
}

// Assignment is what the mirror tells a device to install: the content
// of its signed assignment (package transport/assign).
type Assignment struct {
	Deployment int64
	Bundle     string
	Version    string
	Digest     string
	// Counter rises with each new assignment of the device: the mirror's
	// time, in Unix milliseconds, when the device was (re)assigned.
	Counter uint64
}

// DeploymentNotFoundError says there is no such deployment.
type DeploymentNotFoundError struct {
	ID int64 `json:"id"`
}

func (e *DeploymentNotFoundError) Error() string {
	return fmt.Sprintf("no deployment %d on this mirror", e.ID)
}

// StateError says a deployment cannot do what was asked in its state.
type StateError struct {
	ID     int64           `json:"id"`
	State  DeploymentState `json:"state"`
	Action string          `json:"action"`
}

func (e *StateError) Error() string {
	return fmt.Sprintf("deployment %d is %s: it cannot be %s", e.ID, e.State, e.Action)
}

// ApprovalError says an operator may not approve a deployment.
type ApprovalError struct {
	ID       int64  `json:"id"`
	Operator string `json:"operator"`
	Msg      string `json:"msg"`
}

func (e *ApprovalError) Error() string {
	return fmt.Sprintf("deployment %d: %s cannot approve it: %s", e.ID, e.Operator, e.Msg)
}

var (
	digestRE   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	operatorRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
)

func (s *DeploymentSpec) check() error {
	r := checkin.Report{DeviceID: "x", DeviceType: "x", Bundle: s.Bundle, Version: s.Version, Result: "x", Time: time.Now()}
	if err := r.Validate(); err != nil || s.Bundle == "" {
		return &SpecError{"bundle", fmt.Sprintf("%q %q: want a bundle name and version", s.Bundle, s.Version)}
	}
	if !digestRE.MatchString(s.Digest) {
		return &SpecError{"digest", fmt.Sprintf("%q: want sha256:<64 hex>", s.Digest)}
	}
	if (s.Group == "") == (s.Filter == "") {
		return &SpecError{"group", "give a group or a filter (one of them)"}
	}
	if s.CreatedBy != "" && !operatorRE.MatchString(s.CreatedBy) {
		return &SpecError{"createdBy", fmt.Sprintf("operator %q: letters, digits, '.', '_', '@' and '-', at most 64", s.CreatedBy)}
	}
	return checkPhases(s.Phases)
}

const deploymentColumns = `id, bundle, version, digest, group_name, filter, phases, created_by, approved_by, state, phase, phase_started_at, phase_done_at, reason, devices, created_at, updated_at`

func scanDeployment(row scanner) (*Deployment, error) {
	var d Deployment
	var phases string
	var phase, started, done, devices, created, updated int64
	if err := row.Scan(&d.ID, &d.Bundle, &d.Version, &d.Digest, &d.Group, &d.Filter, &phases, &d.CreatedBy, &d.ApprovedBy, &d.State,
		&phase, &started, &done, &d.Reason, &devices, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(phases), &d.Phases); err != nil {
		return nil, fmt.Errorf("deployment %d: stored phases: %w", d.ID, err)
	}
	d.Phase, d.Devices = int(phase), int(devices)
	d.PhaseStartedAt, d.PhaseDoneAt, d.CreatedAt, d.UpdatedAt = msTime(started), msTime(done), msTime(created), msTime(updated)
	return &d, nil
}

// getDeployment reads a deployment, locking its row (forUpdate).
func getDeployment(ctx context.Context, tx sqlTx, id int64, lock bool) (*Deployment, error) {
	forUpdate := ""
	if lock {
		forUpdate = tx.dl.forUpdate
	}
	return queryDeployment(ctx, tx, id, forUpdate)
}

// queryDeployment reads deployment id; suffix ends the SELECT (a lock).
func queryDeployment(ctx context.Context, q reader, id int64, suffix string) (*Deployment, error) {
	d, err := scanDeployment(q.QueryRowContext(ctx, `SELECT `+deploymentColumns+` FROM fleet_deployments WHERE id = ?`+suffix, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &DeploymentNotFoundError{id}
	}
	if err != nil {
		return nil, fmt.Errorf("deployment %d: %w", id, err)
	}
	return d, nil
}

func logEvent(ctx context.Context, tx sqlTx, id int64, at time.Time, operator, kind, msg string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO fleet_events (deployment_id, at, operator, kind, message) VALUES (?, ?, ?, ?, ?)`,
		id, at.UnixMilli(), operator, kind, msg)
	return err
}

// rolloutOrder orders a deployment's devices: by a hash of the
// deployment and the device, so the canary is a different device from
// one deployment to the next, and the same on every mirror.
func rolloutOrder(id int64, devs []Record) {
	key := func(d string) string {
		s := sha256.Sum256([]byte(strconv.FormatInt(id, 10) + ":" + d))
		return hex.EncodeToString(s[:])
	}
	sort.Slice(devs, func(i, j int) bool { return key(devs[i].ID) < key(devs[j].ID) })
}

// CreateDeployment makes a deployment of spec to the enrolled devices
// its group or filter selects now. Unless the site requires approval
// (Settings), it starts at once: the devices of its first phase are
// assigned the bundle.
func (db *DB) CreateDeployment(ctx context.Context, spec DeploymentSpec, at time.Time) (*Deployment, error) {
	if err := spec.check(); err != nil {
		return nil, err
	}
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	settings, err := readSettings(ctx, tx)
	if err != nil {
		return nil, err
	}
	if settings.RequireApproval && spec.CreatedBy == "" {
		return nil, &SpecError{"createdBy", "this site requires a second operator's approval: name the operator who makes the deployment"}
	}
	recs, err := records(ctx, tx)
	if err != nil {
		return nil, err
	}
	var members []Record
	if spec.Group != "" {
		g, err := getGroup(ctx, tx, spec.Group)
		if err != nil {
			return nil, err
		}
		if members, err = g.members(recs); err != nil {
			return nil, err
		}
	} else {
		f, err := ParseFilter(spec.Filter)
		if err != nil {
			return nil, err
		}
		spec.Filter = f.String()
		members = enrolledMatching(recs, f.Match)
	}
	if len(members) == 0 {
		return nil, &SpecError{"group", "no enrolled device matches: nothing to deploy to"}
	}
	phases, err := json.Marshal(spec.Phases)
	if err != nil {
		return nil, err
	}
	state := Running
	if settings.RequireApproval {
		state = AwaitingApproval
	}
	now := at.UnixMilli()
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO fleet_deployments (bundle, version, digest, group_name, filter, phases, created_by, approved_by, state,
			phase, phase_started_at, phase_done_at, reason, devices, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, 0, 0, 0, '', ?, ?, ?) RETURNING id`,
		spec.Bundle, spec.Version, spec.Digest, spec.Group, spec.Filter, string(phases), spec.CreatedBy, state, len(members), now, now).Scan(&id); err != nil {
		return nil, fmt.Errorf("create deployment: %w", err)
	}
	rolloutOrder(id, members)
	sizes := PhaseSizes(spec.Phases, len(members))
	seq := 0
	for phase, n := range sizes {
		for range n {
			if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_targets (deployment_id, device_id, seq, phase, state, assigned_at, reported_at, result, error, attempts)
				VALUES (?, ?, ?, ?, ?, 0, 0, '', '', 0)`, id, members[seq].ID, seq, phase, Waiting); err != nil {
				return nil, fmt.Errorf("create deployment: %w", err)
			}
			seq++
		}
	}
	target := "group " + spec.Group
	if spec.Group == "" {
		target = "filter " + spec.Filter
	}
	if err := logEvent(ctx, tx, id, at, spec.CreatedBy, "created", fmt.Sprintf("%s %s to %s: %d devices in phases %s", spec.Bundle, spec.Version, target, len(members), phaseList(spec.Phases, sizes))); err != nil {
		return nil, err
	}
	if state == Running {
		if err := startPhase(ctx, tx, id, 0, at); err != nil {
			return nil, err
		}
		if err := advance(ctx, tx, id, at); err != nil {
			return nil, err
		}
	}
	d, err := loadDeployment(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return d, tx.Commit()
}

func phaseList(ps []Phase, sizes []int) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s (+%d, soak %s, %s may fail)", p.Size, sizes[i], p.Soak, p.MaxFailures)
	}
	return strings.Join(parts, ", ")
}

// startPhase makes phase the current one and assigns its devices.
func startPhase(ctx context.Context, tx sqlTx, id int64, phase int, at time.Time) error {
	now := at.UnixMilli()
	if _, err := tx.ExecContext(ctx, `UPDATE fleet_deployments SET phase = ?, phase_started_at = ?, phase_done_at = 0, updated_at = ? WHERE id = ?`, phase, now, now, id); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE fleet_targets SET state = ?, assigned_at = ?, attempts = attempts + 1 WHERE deployment_id = ? AND phase = ? AND state = ?`,
		Assigned, now, id, phase, Waiting)
	return err
}

// phaseCounts counts the devices of one phase.
func phaseCounts(ctx context.Context, tx reader, id int64, phase int) (devices, succeeded, failed int, lastReport int64, err error) {
	rows, err := tx.QueryContext(ctx, `SELECT state, count(*), max(reported_at) FROM fleet_targets WHERE deployment_id = ? AND phase = ? GROUP BY state`, id, phase)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var st TargetState
		var n, last int64
		if err := rows.Scan(&st, &n, &last); err != nil {
			return 0, 0, 0, 0, err
		}
		devices += int(n)
		switch st {
		case Succeeded:
			succeeded += int(n)
		case Failed:
			failed += int(n)
		}
		if st == Succeeded || st == Failed {
			lastReport = max(lastReport, last)
		}
	}
	return devices, succeeded, failed, lastReport, rows.Err()
}

// advance moves a running deployment on as far as its phases allow at
// at: a phase whose devices all reported, few enough failed, and whose
// soak is over, gives way to the next; one with too many failures
// pauses the deployment with the reason. The caller holds the
// deployment's row.
// phaseJudgement is where a running deployment's current phase stands.
type phaseJudgement struct {
	devices, succeeded, failed int
	doneAt                     time.Time // every device reported: when the last did
	markDone                   bool      // done, and phase_done_at not yet set
	verdict                    Verdict
}

// judgePhase judges d's current phase at at, changing nothing.
func judgePhase(ctx context.Context, q reader, d *Deployment, at time.Time) (phaseJudgement, error) {
	var j phaseJudgement
	var last int64
	var err error
	j.devices, j.succeeded, j.failed, last, err = phaseCounts(ctx, q, d.ID, d.Phase)
	if err != nil {
		return j, err
	}
	if j.succeeded+j.failed == j.devices {
		j.doneAt = msTime(max(last, d.PhaseStartedAt.UnixMilli()))
		j.markDone = d.PhaseDoneAt.IsZero()
	}
	j.verdict = d.Phases[d.Phase].Judge(j.devices, j.succeeded, j.failed, j.doneAt, at)
	return j, nil
}

// advanceDue says whether advance would change deployment id at at,
// without locking it: a device's poll takes the deployment's lock only
// when its phase has news to act on. Two hundred devices of one
// deployment polling each took the lock for every poll, and every other
// check-in waited behind them for a database connection (the scale
// benchmark on PostgreSQL, docs/fleet.md "Scale").
func advanceDue(ctx context.Context, q reader, id int64, at time.Time) (bool, error) {
	d, err := queryDeployment(ctx, q, id, "")
	if err != nil || d.State != Running {
		return err == nil, err
	}
	j, err := judgePhase(ctx, q, d, at)
	return j.markDone || j.verdict != Wait, err
}

func advance(ctx context.Context, tx sqlTx, id int64, at time.Time) error {
	for {
		d, err := getDeployment(ctx, tx, id, false)
		if err != nil {
			return err
		}
		if d.State != Running {
			return nil
		}
		j, err := judgePhase(ctx, tx, d, at)
		if err != nil {
			return err
		}
		n, ok, bad := j.devices, j.succeeded, j.failed
		if j.markDone {
			if _, err := tx.ExecContext(ctx, `UPDATE fleet_deployments SET phase_done_at = ? WHERE id = ?`, j.doneAt.UnixMilli(), id); err != nil {
				return err
			}
		}
		switch j.verdict {
		case Wait:
			return nil
		case Halt:
			reason, err := haltReason(ctx, tx, d, n, bad)
			if err != nil {
				return err
			}
			return setState(ctx, tx, d, Paused, "", "auto-paused", reason, at)
		}
		if d.Phase+1 == len(d.Phases) {
			return setState(ctx, tx, d, Completed, "", "completed", fmt.Sprintf("every phase done: %d devices", d.Devices), at)
		}
		if err := logEvent(ctx, tx, id, at, "", "phase", fmt.Sprintf("phase %d of %d done (%d succeeded, %d failed); phase %d starts",
			d.Phase+1, len(d.Phases), ok, bad, d.Phase+2)); err != nil {
			return err
		}
		if err := startPhase(ctx, tx, id, d.Phase+1, at); err != nil {
			return err
		}
	}
}

// haltReason says why a phase stops: its counts and the first failures.
func haltReason(ctx context.Context, tx sqlTx, d *Deployment, n, failed int) (string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT t.device_id, COALESCE(f.name, ''), t.result, t.error FROM fleet_targets t LEFT JOIN fleet_devices f ON f.device_id = t.device_id
		WHERE t.deployment_id = ? AND t.phase = ? AND t.state = ? ORDER BY t.reported_at, t.device_id LIMIT 3`, d.ID, d.Phase, Failed)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var which []string
	for rows.Next() {
		var id, name, result, msg string
		if err := rows.Scan(&id, &name, &result, &msg); err != nil {
			return "", err
		}
		s := fmt.Sprintf("%s (%s) %s", name, id[:16], result)
		if msg != "" {
			s += ": " + msg
		}
		which = append(which, s)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return fmt.Sprintf("phase %d of %d: %d of %d devices failed, more than the %d allowed: %s",
		d.Phase+1, len(d.Phases), failed, n, d.Phases[d.Phase].allowedFailures(n), strings.Join(which, "; ")), nil
}

func setState(ctx context.Context, tx sqlTx, d *Deployment, to DeploymentState, operator, kind, reason string, at time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE fleet_deployments SET state = ?, reason = ?, updated_at = ? WHERE id = ?`, to, reason, at.UnixMilli(), d.ID); err != nil {
		return err
	}
	d.State, d.Reason = to, reason
	return logEvent(ctx, tx, d.ID, at, operator, kind, reason)
}

// Evaluate moves every running deployment on at at: phases whose soak
// is over give way to the next, phases with too many failures pause.
// Reports (Accept) and assignments (AssignmentFor) evaluate the
// deployments they touch; Evaluate is for the time that passes between
// them ('ferry mirror serve' calls it every minute).
func (db *DB) Evaluate(ctx context.Context, at time.Time) error {
	rows, err := db.db.QueryContext(ctx, `SELECT id FROM fleet_deployments WHERE state = ? ORDER BY id`, Running)
	if err != nil {
		return fmt.Errorf("evaluate deployments: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if err := db.inTx(ctx, func(tx sqlTx) error {
			if _, err := getDeployment(ctx, tx, id, true); err != nil {
				return err
			}
			return advance(ctx, tx, id, at)
		}); err != nil {
			return fmt.Errorf("evaluate deployment %d: %w", id, err)
		}
	}
	return nil
}

// reader is what a read needs: a transaction, or the database itself.
type reader interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// read runs fn's queries, which change nothing. On PostgreSQL they go
// straight to the pool: no BEGIN and COMMIT round trips, and each query
// sees what was committed when it ran. SQLite's one connection is taken
// through the gate in a transaction, so reads keep their turn too.
func (db *DB) read(ctx context.Context, fn func(q reader) error) error {
	if db.db.gate != nil {
		return db.inTx(ctx, func(tx sqlTx) error { return fn(tx) })
	}
	return fn(db.db)
}

func (db *DB) inTx(ctx context.Context, fn func(tx sqlTx) error) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// operate applies an operator's action to deployment id.
func (db *DB) operate(ctx context.Context, id int64, at time.Time, fn func(tx sqlTx, d *Deployment) error) (*Deployment, error) {
	var out *Deployment
	err := db.inTx(ctx, func(tx sqlTx) error {
		d, err := getDeployment(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if err := fn(tx, d); err != nil {
			return err
		}
		if err := advance(ctx, tx, id, at); err != nil {
			return err
		}
		out, err = loadDeployment(ctx, tx, id)
		return err
	})
	return out, err
}

func checkOperator(op string) error {
	if op != "" && !operatorRE.MatchString(op) {
		return &SpecError{"operator", fmt.Sprintf("operator %q: letters, digits, '.', '_', '@' and '-', at most 64", op)}
	}
	return nil
}

// Approve approves a deployment that awaits approval, and starts it.
// The operator must not be the one who made it.
func (db *DB) Approve(ctx context.Context, id int64, operator string, at time.Time) (*Deployment, error) {
	if err := checkOperator(operator); err != nil {
		return nil, err
	}
	return db.operate(ctx, id, at, func(tx sqlTx, d *Deployment) error {
		switch {
		case d.State != AwaitingApproval:
			return &StateError{id, d.State, "approved"}
		case operator == "":
			return &ApprovalError{id, operator, "name the approving operator"}
		case strings.EqualFold(operator, d.CreatedBy):
			return &ApprovalError{id, operator, "the operator who made a deployment cannot approve it: a second operator must"}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE fleet_deployments SET approved_by = ? WHERE id = ?`, operator, id); err != nil {
			return err
		}
		if err := setState(ctx, tx, d, Running, operator, "approved", "approved by "+operator, at); err != nil {
			return err
		}
		return startPhase(ctx, tx, id, 0, at)
	})
}

// Pause stops a running deployment from assigning more devices; devices
// already installing finish, and their reports still count.
func (db *DB) Pause(ctx context.Context, id int64, operator, reason string, at time.Time) (*Deployment, error) {
	if err := checkOperator(operator); err != nil {
		return nil, err
	}
	return db.operate(ctx, id, at, func(tx sqlTx, d *Deployment) error {
		if d.State != Running {
			return &StateError{id, d.State, "paused"}
		}
		msg := "paused by " + orMirror(operator)
		if reason != "" {
			msg += ": " + reason
		}
		return setState(ctx, tx, d, Paused, operator, "paused", msg, at)
	})
}

// Resume runs a paused deployment again. The failed devices of the
// phases so far are assigned the bundle again (after a fix, they try
// again), and their failures no longer count.
func (db *DB) Resume(ctx context.Context, id int64, operator string, at time.Time) (*Deployment, error) {
	if err := checkOperator(operator); err != nil {
		return nil, err
	}
	return db.operate(ctx, id, at, func(tx sqlTx, d *Deployment) error {
		if d.State != Paused {
			return &StateError{id, d.State, "resumed"}
		}
		now := at.UnixMilli()
		res, err := tx.ExecContext(ctx, `UPDATE fleet_targets SET state = ?, assigned_at = ?, attempts = attempts + 1, result = '', error = '', reported_at = 0
			WHERE deployment_id = ? AND phase <= ? AND state = ?`, Assigned, now, id, d.Phase, Failed)
		if err != nil {
			return err
		}
		retried, _ := res.RowsAffected()
		if _, err := tx.ExecContext(ctx, `UPDATE fleet_deployments SET phase_done_at = 0 WHERE id = ?`, id); err != nil {
			return err
		}
		return setState(ctx, tx, d, Running, operator, "resumed", fmt.Sprintf("resumed by %s; %d failed devices assigned again", orMirror(operator), retried), at)
	})
}

// Abort ends a deployment for good: no device is assigned its bundle
// any more (devices that installed it keep it).
func (db *DB) Abort(ctx context.Context, id int64, operator, reason string, at time.Time) (*Deployment, error) {
	if err := checkOperator(operator); err != nil {
		return nil, err
	}
	return db.operate(ctx, id, at, func(tx sqlTx, d *Deployment) error {
		if d.State == Completed || d.State == Aborted {
			return &StateError{id, d.State, "aborted"}
		}
		msg := "aborted by " + orMirror(operator)
		if reason != "" {
			msg += ": " + reason
		}
		return setState(ctx, tx, d, Aborted, operator, "aborted", msg, at)
	})
}

func orMirror(op string) string {
	if op == "" {
		return "an operator"
	}
	return op
}

// loadDeployment reads a deployment with its progress.
func loadDeployment(ctx context.Context, tx sqlTx, id int64) (*Deployment, error) {
	d, err := getDeployment(ctx, tx, id, false)
	if err != nil {
		return nil, err
	}
	return d, fillProgress(ctx, tx, []*Deployment{d})
}

func fillProgress(ctx context.Context, q querier, ds []*Deployment) error {
	byID := map[int64]*Deployment{}
	for _, d := range ds {
		byID[d.ID] = d
		d.Progress = make([]PhaseProgress, len(d.Phases))
		for i, p := range d.Phases {
			d.Progress[i].Phase = p
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT deployment_id, phase, state, count(*) FROM fleet_targets GROUP BY deployment_id, phase, state`)
	if err != nil {
		return fmt.Errorf("deployment progress: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, phase, n int64
		var st TargetState
		if err := rows.Scan(&id, &phase, &st, &n); err != nil {
			return err
		}
		d := byID[id]
		if d == nil || int(phase) >= len(d.Progress) {
			continue
		}
		pp := &d.Progress[phase]
		pp.Devices += int(n)
		switch st {
		case Waiting:
			pp.Waiting += int(n)
		case Assigned:
			pp.Assigned += int(n)
		case Succeeded:
			pp.Succeeded += int(n)
		case Failed:
			pp.Failed += int(n)
		}
	}
	for _, d := range ds {
		for i := range d.Progress {
			d.Progress[i].MaxFailures = d.Phases[i].allowedFailures(d.Progress[i].Devices)
		}
	}
	return rows.Err()
}

// Deployments lists the deployments, newest first, with their progress.
func (db *DB) Deployments(ctx context.Context) ([]Deployment, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+deploymentColumns+` FROM fleet_deployments ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	var ds []*Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list deployments: %w", err)
		}
		ds = append(ds, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := fillProgress(ctx, db.db, ds); err != nil {
		return nil, err
	}
	out := make([]Deployment, len(ds))
	for i, d := range ds {
		out[i] = *d
	}
	return out, nil
}

// DeploymentDetail returns a deployment, its devices (in rollout order)
// and its log (oldest first).
func (db *DB) DeploymentDetail(ctx context.Context, id int64) (*DeploymentDetail, error) {
	var out *DeploymentDetail
	err := db.inTx(ctx, func(tx sqlTx) error {
		d, err := loadDeployment(ctx, tx, id)
		if err != nil {
			return err
		}
		out = &DeploymentDetail{Deployment: *d, Targets: []Target{}, Events: []Event{}}
		rows, err := tx.QueryContext(ctx, `SELECT t.device_id, COALESCE(f.name, ''), t.phase, t.state, t.result, t.error, t.attempts, t.assigned_at, t.reported_at
			FROM fleet_targets t LEFT JOIN fleet_devices f ON f.device_id = t.device_id WHERE t.deployment_id = ? ORDER BY t.seq`, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var t Target
			var phase, attempts, assigned, reported int64
			if err := rows.Scan(&t.Device, &t.Name, &phase, &t.State, &t.Result, &t.Error, &attempts, &assigned, &reported); err != nil {
				rows.Close()
				return err
			}
			t.Phase, t.Attempts, t.AssignedAt, t.ReportedAt = int(phase), int(attempts), msTime(assigned), msTime(reported)
			out.Targets = append(out.Targets, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.QueryContext(ctx, `SELECT at, operator, kind, message FROM fleet_events WHERE deployment_id = ? ORDER BY id`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e Event
			var at int64
			if err := rows.Scan(&at, &e.Operator, &e.Kind, &e.Message); err != nil {
				return err
			}
			e.At = msTime(at)
			out.Events = append(out.Events, e)
		}
		return rows.Err()
	})
	return out, err
}

// deviceTarget is a device's place in its newest deployment.
type deviceTarget struct {
	deployment int64
	state      TargetState
	assignedAt int64
	depState   DeploymentState
	bundle     string
	version    string
	digest     string
}

// assignment is what t assigns its device: its deployment's bundle while
// the deployment runs (or has completed) and the device is assigned or
// has succeeded; nil otherwise.
func (t *deviceTarget) assignment() *Assignment {
	if (t.depState == Running || t.depState == Completed) && (t.state == Assigned || t.state == Succeeded) {
		return &Assignment{Deployment: t.deployment, Bundle: t.bundle, Version: t.version, Digest: t.digest, Counter: uint64(t.assignedAt)}
	}
	return nil
}

// newestTarget finds the newest deployment that includes the device.
func newestTarget(ctx context.Context, tx reader, device string) (*deviceTarget, error) {
	var t deviceTarget
	err := tx.QueryRowContext(ctx, `SELECT t.deployment_id, t.state, t.assigned_at, d.state, d.bundle, d.version, d.digest
		FROM fleet_targets t JOIN fleet_deployments d ON d.id = t.deployment_id
		WHERE t.device_id = ? ORDER BY t.deployment_id DESC LIMIT 1`, device).
		Scan(&t.deployment, &t.state, &t.assignedAt, &t.depState, &t.bundle, &t.version, &t.digest)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return &t, err
}

// AssignmentFor says what the device is assigned at at: the bundle of
// the newest deployment that includes it, while that deployment runs (or
// has completed) and the device's phase has started; nil when none (not
// in a deployment, its phase not started, the deployment paused or
// aborted, or the device failed it). A running deployment is evaluated
// first, so a soak that ended assigns the next phase.
//
// Most polls change nothing: they are answered from a read, and only a
// device whose deployment has a phase to move on takes the write path.
func (db *DB) AssignmentFor(ctx context.Context, device string, at time.Time) (*Assignment, error) {
	var out *Assignment
	write := false
	err := db.read(ctx, func(q reader) error {
		t, err := newestTarget(ctx, q, device)
		if err != nil || t == nil {
			return err
		}
		if t.depState == Running {
			if write, err = advanceDue(ctx, q, t.deployment, at); err != nil || write {
				return err
			}
		}
		out = t.assignment()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("assignment of %s: %w", device, err)
	}
	if !write {
		return out, nil
	}
	err = db.inTx(ctx, func(tx sqlTx) error {
		t, err := newestTarget(ctx, tx, device)
		if err != nil || t == nil {
			return err
		}
		if t.depState == Running {
			if _, err := getDeployment(ctx, tx, t.deployment, true); err != nil {
				return err
			}
			if err := advance(ctx, tx, t.deployment, at); err != nil {
				return err
			}
			if t, err = newestTarget(ctx, tx, device); err != nil {
				return err
			}
		}
		out = t.assignment()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("assignment of %s: %w", device, err)
	}
	return out, nil
}

// Outcome of an install as a deployment counts it.
func installOutcome(result string) TargetState {
	switch result {
	case "committed":
		return Succeeded
	case "rolled-back", "failed", "refused":
		return Failed
	}
	return ""
}

// countReport counts an enrolled device's report against the deployment
// that assigned it its install: a committed install of the assigned
// bundle succeeds, one failed, refused or rolled back (a failed health
// check) fails; a device that already runs the assigned version succeeds.
// A report counts once: only a device still assigned moves, under the
// deployment's row lock, and an install's result counts only if it
// acted on the current assignment (its counter at least the one the
// device was last assigned).
func countReport(ctx context.Context, tx sqlTx, inv *checkin.Inventory, at time.Time) error {
	t, err := newestTarget(ctx, tx, inv.Device)
	if err != nil || t == nil || t.state != Assigned || (t.depState != Running && t.depState != Paused) {
		return err
	}
	var outcome TargetState
	result, msg := inv.Result, inv.Error
	if in := inv.Install; in != nil && in.Deployment == t.deployment && in.Assignment >= uint64(t.assignedAt) && in.Bundle == t.bundle && in.Version == t.version {
		outcome = installOutcome(inv.Result)
	}
	if outcome == "" && inv.Bundle == t.bundle && inv.Version == t.version && !inv.Slot.Trial {
		outcome, result, msg = Succeeded, "running", ""
	}
	if outcome == "" {
		return nil
	}
	if _, err := getDeployment(ctx, tx, t.deployment, true); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE fleet_targets SET state = ?, result = ?, error = ?, reported_at = ? WHERE deployment_id = ? AND device_id = ? AND state = ?`,
		outcome, result, msg, at.UnixMilli(), t.deployment, inv.Device, Assigned)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	if outcome == Failed {
		m := fmt.Sprintf("device %s (%s): %s", inv.Name, inv.Device[:16], result)
		if msg != "" {
			m += ": " + msg
		}
		if err := logEvent(ctx, tx, t.deployment, at, "", "device-failed", m); err != nil {
			return err
		}
	}
	return advance(ctx, tx, t.deployment, at)
}

// Fleet is what the fleet commands ('ferry fleet') ask of a mirror's
// device records: DB implements it on a mirror directory or a database,
// and an HTTP client of the mirror's API implements it for a mirror's URL.
type Fleet interface {
	Records(ctx context.Context) ([]Record, error)
	Show(ctx context.Context, idOrPrefix string) (*Record, []Report, error)
	Enroll(ctx context.Context, es []Enrollment, how string, at time.Time) ([]EnrollResult, error)
	SetStatus(ctx context.Context, idOrPrefix string, to Status, at time.Time) (*Record, error)
	SetLabels(ctx context.Context, idOrPrefix string, set map[string]string, at time.Time) (*Record, error)

	PutGroup(ctx context.Context, g Group, at time.Time) (*Group, error)
	Groups(ctx context.Context) ([]Group, error)
	GroupMembers(ctx context.Context, name string) (*Group, []Record, error)
	DeleteGroup(ctx context.Context, name string) error

	Settings(ctx context.Context) (Settings, error)
	SetSettings(ctx context.Context, s Settings) error

	CreateDeployment(ctx context.Context, spec DeploymentSpec, at time.Time) (*Deployment, error)
	Deployments(ctx context.Context) ([]Deployment, error)
	DeploymentDetail(ctx context.Context, id int64) (*DeploymentDetail, error)
	Approve(ctx context.Context, id int64, operator string, at time.Time) (*Deployment, error)
	Pause(ctx context.Context, id int64, operator, reason string, at time.Time) (*Deployment, error)
	Resume(ctx context.Context, id int64, operator string, at time.Time) (*Deployment, error)
	Abort(ctx context.Context, id int64, operator, reason string, at time.Time) (*Deployment, error)
	Evaluate(ctx context.Context, at time.Time) error
}

var _ Fleet = (*DB)(nil)
