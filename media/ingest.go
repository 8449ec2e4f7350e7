package media

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/stick"
)

// IngestResult says what IngestReports did.
type IngestResult struct {
	From    string `json:"from"`
	Reports int    `json:"reports"` // valid reports on the stick
	New     int    `json:"new"`     // recorded now
	Known   int    `json:"known"`   // recorded before: same device, time and bundle (signed: counter)
	// Signed counts the reports that carried the device's signed
	// check-in: judged as over the network, they count toward
	// deployments.
	Signed int `json:"signed"`
	// Relayed counts the reports of an upstream mirror's devices, kept
	// for the upstream (Relay): this mirror records nothing of them.
	Relayed int `json:"relayed"`
	// Rejected lists report files that are not valid reports, or whose
	// report a check-in cannot hold, and why.
	Rejected []Rejected `json:"rejected"`
	// Pending lists the devices whose signed check-in on the stick
	// verified but which the mirror has not enrolled: listed as pending,
	// nothing of them recorded (IngestOptions.Enroll enrolls them).
	Pending []string `json:"pending"`
	// Enrolled lists the devices enrolled now (IngestOptions.Enroll).
	Enrolled []string `json:"enrolled"`
}

// IngestOptions says how IngestReports treats the devices of a stick.
type IngestOptions struct {
	// Enroll enrolls the devices the stick carries (the operator who
	// brought it from them vouches for it), as devices.DB.Enroll does by
	// EnrolledBy: those listed in its ferry/identities.jsonl (read as
	// devices.ParseEnrollments reads an enrollment list: one bad line
	// fails the ingest, nothing enrolled), and each whose signed check-in
	// verifies for this mirror, under the name and device type it
	// claims; then their reports are recorded. A rejected or revoked
	// device stays refused.
	Enroll bool
}

// EnrolledBy is how IngestOptions.Enroll enrolls a device (its record's
// EnrolledBy).
const EnrolledBy = "stick"

// Rejected is a report file IngestReports left out, and why.
type Rejected struct {
	Source string `json:"source"` // the report file
	Reason string `json:"reason"`
}

// Store is the mirror store whose reports IngestReports takes (a
// *mirror.Store): signed check-ins must be meant for one of its
// MirrorIDs.
type Store interface {
	Dir() string
	MirrorIDs() ([]string, error)
}

// Relay is a Store that relays to upstream mirrors the reports of their
// devices (a *mirror.Store, docs/fleet.md §13): a signed check-in made
// for one of RelayUpstreams is kept with RelayReport instead of being
// refused as foreign.
type Relay interface {
	RelayUpstreams() ([]string, error)
	RelayReport(file string, report []byte) error
}

// StickRemote prefixes the remote address IngestReports records, the
// path of the stick after it: where the check-in came from.
const StickRemote = "stick:"

// IngestReports records the reports on a stick (an image, a device or a
// directory, as Reports reads them) in d, the device records of the mirror
// store st (its devices.db, or the PostgreSQL database it uses), each as
// a check-in (devices.DB.Record) of its device:
// bundle, version after the install (0.0.0 if none, as the agent checks
// in), result, finished time (else started) and error. The device type is
// the report's; reports from agents that did not record it get the type
// the device last checked in with, else "unknown". A report already recorded (the same device id,
// time and bundle) is not recorded again, so ingesting a stick twice adds
// nothing. A signed check-in of a device the mirror has not enrolled is
// listed as pending (IngestResult.Pending), unless o.Enroll.
func IngestReports(st Store, d *devices.DB, imgOrDir string, o IngestOptions) (*IngestResult, error) {
	res, err := ingestReports(st, d, imgOrDir, o, time.Now())
	if err != nil {
		return nil, fmt.Errorf("ingest reports of %s into %s: %w", imgOrDir, st.Dir(), err)
	}
	return res, nil
}

func ingestReports(st Store, d *devices.DB, imgOrDir string, o IngestOptions, now time.Time) (*IngestResult, error) {
	ferry, reps, done, err := openStick(imgOrDir)
	if err != nil {
		return nil, err
	}
	defer done()
	var ids []devices.Enrollment
	if o.Enroll && ferry != nil {
		if ids, err = readIdentities(ferry); err != nil {
			return nil, err
		}
	}
	rs, err := stick.ReadReports(reps)
	if err != nil {
		return nil, err
	}
	rows := reportRows(rs)
	res := &IngestResult{From: imgOrDir, Rejected: []Rejected{}, Pending: []string{}, Enrolled: []string{}}
	if len(ids) > 0 {
		if _, err := enroll(d, ids, path.Join(stick.Dir, stick.IdentitiesFile), res, now); err != nil {
			return res, err
		}
	}
	for _, row := range rows {
		if row.Report == nil {
			res.Rejected = append(res.Rejected, Rejected{Source: row.File, Reason: strings.TrimPrefix(row.Error, row.File+": ")})
			continue
		}
		res.Reports++
		if len(row.Report.Checkin) > 0 {
			if err := ingestSigned(st, d, row, o, res, now, StickRemote+imgOrDir); err != nil {
				return res, err
			}
			continue
		}
		hist, err := d.History(row.Report.DeviceID)
		if err != nil {
			return res, err
		}
		c, err := checkinOf(row.Report, hist)
		if err != nil {
			res.Rejected = append(res.Rejected, Rejected{Source: row.File, Reason: err.Error()})
			continue
		}
		if recorded(hist, c) {
			res.Known++
			continue
		}
		// The mirror heard of the install now, but it happened when the
		// report says (if that is not ahead of the mirror's clock): an
		// old stick must not override what the device said since.
		at := now
		if c.Time.Before(now) {
			at = c.Time
		}
		if err := d.Record(c, at, StickRemote+imgOrDir); err != nil {
			if fe := (*checkin.FieldError)(nil); errors.As(err, &fe) {
				res.Rejected = append(res.Rejected, Rejected{Source: row.File, Reason: fe.Error()})
				continue
			}
			return res, err
		}
		res.New++
	}
	return res, nil
}

// ingestSigned judges the signed check-in a report carries as the mirror
// judges one over the network (signature, mirror id, status, counter:
// docs/fleet.md §4) and records it; the rest of the report, not
// authenticated, is left out. A check-in the mirror took before (its
// counter is not above the last) is known. With o.Enroll, a device whose
// check-in verifies (and is valid) is enrolled first.
func ingestSigned(st Store, d *devices.DB, row ReportRow, o IngestOptions, res *IngestResult, now time.Time, remote string) error {
	inv, err := checkin.OpenSigned(row.Report.Checkin)
	if err == nil {
		var ids []string
		if ids, err = st.MirrorIDs(); err != nil {
			return err
		}
		if !slices.Contains(ids, inv.Mirror) {
			if relayed, err := relay(st, inv, row); relayed || err != nil {
				if relayed {
					res.Relayed++
				}
				return err
			}
			err = &checkin.RefusedError{Reason: checkin.Foreign, Msg: fmt.Sprintf("device %s made its check-in for mirror %s, not this one", inv.Device, inv.Mirror)}
		}
	}
	if err == nil && o.Enroll {
		if err = inv.Validate(); err == nil {
			e := devices.Enrollment{PublicKey: inv.PublicKey, Name: inv.Name, DeviceType: inv.DeviceType}
			var left bool
			if left, err = enroll(d, []devices.Enrollment{e}, row.File, res, now); left || err != nil {
				return err
			}
		}
	}
	out := devices.Recorded
	if err == nil {
		out, err = d.Accept(context.Background(), inv, now, remote)
	}
	var re *checkin.RefusedError
	if errors.As(err, &re) && re.Reason == checkin.Replayed {
		// A report its device made while pending, taken before (a stick
		// ingested again): nothing of it was recorded, the device waits.
		rec, _, serr := d.Show(context.Background(), inv.Device)
		if serr != nil {
			return fmt.Errorf("device %s: %w", inv.Device, serr)
		}
		if rec.Status == devices.Pending {
			out, err = devices.Listed, nil
		}
	}
	var fe *checkin.FieldError
	switch {
	case err == nil && out == devices.Listed:
		res.Rejected = append(res.Rejected, Rejected{Source: row.File, Reason: "device " + inv.Device + " is not enrolled: listed as pending, nothing recorded"})
		if !slices.Contains(res.Pending, inv.Device) {
			res.Pending = append(res.Pending, inv.Device)
		}
	case err == nil:
		res.New++
		res.Signed++
	case errors.As(err, &re) && re.Reason == checkin.Replayed:
		res.Known++
	case errors.As(err, &re), errors.As(err, &fe), errors.Is(err, checkin.ErrTooLarge):
		res.Rejected = append(res.Rejected, Rejected{Source: row.File, Reason: err.Error()})
	default:
		return err
	}
	return nil
}

// checkinOf is a stick report as a check-in of its device, whose stored
// check-ins are hist (newest first).
func checkinOf(r *stick.Report, hist []devices.Device) (*checkin.Report, error) {
	c := &checkin.Report{DeviceID: r.DeviceID, DeviceType: cmp.Or(r.DeviceType, "unknown"), Bundle: r.Bundle, Version: cmp.Or(r.VersionAfter, "0.0.0"),
		Result: string(r.Result), Time: cmp.Or(r.Finished, r.Started).UTC(), Error: r.Error}
	if r.DeviceType == "" && len(hist) > 0 {
		c.DeviceType = hist[0].Type
	}
	if len(c.Error) > checkin.MaxErrorSize {
		n := checkin.MaxErrorSize
		for n > 0 && !utf8.RuneStart(c.Error[n]) {
			n--
		}
		c.Error = c.Error[:n]
	}
	if c.Time.IsZero() {
		return nil, errors.New("the report has no finished or started time")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// recorded reports whether hist holds c: the same device (hist is one
// device's), time (to the millisecond, as stored) and bundle.
func recorded(hist []devices.Device, c *checkin.Report) bool {
	for _, h := range hist {
		if h.ReportedAt.UnixMilli() == c.Time.UnixMilli() && h.Bundle == c.Bundle {
			return true
		}
	}
	return false
}

// relay keeps the report for the upstream mirror the check-in was made
// for, if st relays for that mirror; its signature was verified
// (checkin.OpenSigned), and the upstream judges the rest.
func relay(st Store, inv *checkin.Inventory, row ReportRow) (bool, error) {
	r, ok := st.(Relay)
	if !ok {
		return false, nil
	}
	ups, err := r.RelayUpstreams()
	if err != nil || !slices.Contains(ups, inv.Mirror) {
		return false, err
	}
	b, err := json.Marshal(row.Report)
	if err != nil {
		return false, err
	}
	return true, r.RelayReport(row.File, b)
}

// readIdentities reads the enrollment list a stick may carry in its
// ferry/ directory, fsys: none is no list.
func readIdentities(fsys fs.FS) ([]devices.Enrollment, error) {
	name := path.Join(stick.Dir, stick.IdentitiesFile)
	b, err := stick.ReadFile(fsys, stick.IdentitiesFile, devices.MaxEnrollFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	es, err := devices.ParseEnrollments(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return es, nil
}

// enroll enrolls es (IngestOptions.Enroll), which source on the stick
// names, and notes in res the devices enrolled now and those left
// refused (rejected or revoked: left reports any).
func enroll(d *devices.DB, es []devices.Enrollment, source string, res *IngestResult, now time.Time) (left bool, err error) {
	out, err := d.Enroll(context.Background(), es, EnrolledBy, now)
	if err != nil {
		return false, fmt.Errorf("enroll the devices of %s: %w", source, err)
	}
	for _, r := range out {
		switch {
		case r.After == devices.Rejected || r.After == devices.Revoked:
			left = true
			res.Rejected = append(res.Rejected, Rejected{Source: source, Reason: fmt.Sprintf("device %s is not enrolled (%s): %s", r.ID, r.After, r.Note)})
		case r.Before != devices.Enrolled && r.After == devices.Enrolled:
			res.Enrolled = append(res.Enrolled, r.ID)
		}
	}
	return left, nil
}
