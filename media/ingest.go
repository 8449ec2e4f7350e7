package media

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/stick"
)

// SyncInto adds every bundle on the stick image or device img to the
// mirror store st, as Store.Sync does for its sources: bundles the store
// holds already are listed as not new, and a bundle that cannot be read
// or added is listed in Failed (the error is then a *mirror.SyncError).
// Each bundle is streamed from the image, its payload parts checked
// against their digests, into a temporary file in the store's directory,
// and added from there with Store.Add (which checks it again and
// publishes the mirror's TUF metadata).
func SyncInto(ctx context.Context, st *mirror.Store, img string) (*mirror.SyncResult, error) {
	res := &mirror.SyncResult{From: img, Bundles: []*mirror.AddResult{}, Skipped: []mirror.Skipped{}, Failed: []mirror.Skipped{}}
	if err := syncInto(ctx, st, img, res); err != nil {
		return res, fmt.Errorf("mirror sync from %s: %w", img, err)
	}
	return res, nil
}

func syncInto(ctx context.Context, st *mirror.Store, img string, res *mirror.SyncResult) error {
	m, err := OpenImage(img)
	if err != nil {
		return err
	}
	defer m.Close()
	bs, err := m.Bundles()
	if err != nil {
		return err
	}
	var first error
	// One batch: the mirror's TUF metadata is signed once for the stick.
	err = st.Batch(func(add func(string) (*mirror.AddResult, error)) error {
		for _, b := range bs {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := addFromImage(ctx, st.Dir(), add, m, b)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res.Failed = append(res.Failed, mirror.Skipped{Source: img + ":" + orUnknown(b.Name) + ":" + orUnknown(b.Version), Reason: err.Error()})
				first = cmp.Or(first, err)
				continue
			}
			res.Bundles = append(res.Bundles, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(res.Failed) > 0 {
		return &mirror.SyncError{Failed: len(res.Failed), Total: len(bs), First: first}
	}
	return nil
}

func orUnknown(s string) string { return cmp.Or(s, "(unknown)") }

// addFromImage copies bundle b out of the image into a temporary file and
// adds that to the store.
func addFromImage(ctx context.Context, dir string, add func(string) (*mirror.AddResult, error), m *Image, b stick.Bundle) (*mirror.AddResult, error) {
	rc, err := m.Open(b)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	defer stop()
	f, err := os.CreateTemp(dir, ".stick-*.ferry.tmp")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("copy %s %s off the stick: %w", b.Name, b.Version, err)
	}
	return add(f.Name())
}

// IngestResult says what IngestReports did.
type IngestResult struct {
	From    string `json:"from"`
	Reports int    `json:"reports"` // valid reports on the stick
	New     int    `json:"new"`     // recorded now
	Known   int    `json:"known"`   // recorded before: same device, time and bundle
	// Rejected lists report files that are not valid reports, or whose
	// report a check-in cannot hold, and why.
	Rejected []mirror.Skipped `json:"rejected"`
}

// StickRemote prefixes the remote address IngestReports records, the
// path of the stick after it: where the check-in came from.
const StickRemote = "stick:"

// IngestReports records the reports on a stick (an image, a device or a
// directory, as Reports reads them) in the device records of the mirror
// store st, each as a check-in (devices.DB.Record) of its device:
// bundle, version after the install (0.0.0 if none, as the agent checks
// in), result, finished time (else started) and error. The device type is
// the report's; reports from agents that did not record it get the type
// the device last checked in with, else "unknown". A report already recorded (the same device id,
// time and bundle) is not recorded again, so ingesting a stick twice adds
// nothing.
func IngestReports(st *mirror.Store, imgOrDir string) (*IngestResult, error) {
	res, err := ingestReports(st, imgOrDir, time.Now())
	if err != nil {
		return nil, fmt.Errorf("ingest reports of %s into %s: %w", imgOrDir, st.Dir(), err)
	}
	return res, nil
}

func ingestReports(st *mirror.Store, imgOrDir string, now time.Time) (*IngestResult, error) {
	rows, err := reports(imgOrDir)
	if err != nil {
		return nil, err
	}
	d, err := devices.OpenDir(st.Dir())
	if err != nil {
		return nil, err
	}
	defer d.Close()
	res := &IngestResult{From: imgOrDir, Rejected: []mirror.Skipped{}}
	for _, row := range rows {
		if row.Report == nil {
			res.Rejected = append(res.Rejected, mirror.Skipped{Source: row.File, Reason: strings.TrimPrefix(row.Error, row.File+": ")})
			continue
		}
		res.Reports++
		hist, err := d.History(row.Report.DeviceID)
		if err != nil {
			return res, err
		}
		c, err := checkinOf(row.Report, hist)
		if err != nil {
			res.Rejected = append(res.Rejected, mirror.Skipped{Source: row.File, Reason: err.Error()})
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
				res.Rejected = append(res.Rejected, mirror.Skipped{Source: row.File, Reason: fe.Error()})
				continue
			}
			return res, err
		}
		res.New++
	}
	return res, nil
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
