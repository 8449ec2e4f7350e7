package agent

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
)

// TestPlanLooksUpHandlers: each payload type is planned by its handler,
// which records in the journal what the later steps need; a payload that
// fits no configured slot is refused before anything is written.
func TestPlanLooksUpHandlers(t *testing.T) {
	dgst := digest.FromString("tree")
	for _, tc := range []struct {
		name    string
		typ     bundle.PayloadType
		target  string
		handler payloadHandler
		refused string // part of the *RefusedError; "": planned
		check   func(*testing.T, target, *Journal)
	}{
		{name: "rootfs to a pair", typ: bundle.Rootfs, target: "rootfs", handler: rootfsHandler{}, check: func(t *testing.T, tg target, j *Journal) {
			if j.ToSlot != "b" || !j.NeedsReboot || !strings.HasSuffix(tg.device, "slot-b.img") {
				t.Errorf("rootfs planned to %q, journal slot %q reboot %v", tg.device, j.ToSlot, j.NeedsReboot)
			}
		}},
		{name: "files to a directory", typ: bundle.Files, target: "app", handler: filesHandler{}, check: func(t *testing.T, tg target, j *Journal) {
			if tg.tree == nil || len(j.Trees) != 1 || j.Trees[0].New != "2.0.0-"+dgst.Encoded()[:12] || j.NeedsReboot {
				t.Errorf("files planned to %+v, journal trees %+v", tg.tree, j.Trees)
			}
		}},
		{name: "module", typ: bundle.Module, target: "script", handler: moduleHandler{}, check: func(t *testing.T, tg target, j *Journal) {
			if len(j.Modules) != 1 || j.Modules[tg.module].Module != "script" || j.Modules[tg.module].Index != 0 {
				t.Errorf("module planned as %d, journal modules %+v", tg.module, j.Modules)
			}
		}},
		{name: "module with a path", typ: bundle.Module, target: "../sh", refused: "names an update module"},
		{name: "rootfs to a directory", typ: bundle.Rootfs, target: "app", refused: `cannot go to target "app", which is a directory`},
		{name: "files to a pair", typ: bundle.Files, target: "rootfs", refused: `cannot go to target "rootfs", which is an A/B pair`},
		{name: "unknown target", typ: bundle.Rootfs, target: "nowhere", refused: ErrUnknownTarget.Error()},
		{name: "unknown type", typ: "delta", target: "rootfs", refused: `of type delta cannot go to target "rootfs", which is an A/B pair`},
		{name: "unknown type to a directory", typ: "delta", target: "app", refused: `of type delta cannot go to target "app", which is a directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			d.write("slot-a.img", "factory")
			d.write("slot-b.img", "")
			a := d.open()
			cfg := &bundle.Config{Name: "os", Version: "2.0.0", Payloads: []bundle.Payload{{Name: "p", Type: tc.typ, Target: tc.target, Size: 4, Digest: dgst}}}
			j := &Journal{Bundle: "os", Version: "2.0.0", FromSlot: "a"}
			ts, err := a.plan(cfg, j)
			var re *RefusedError
			if tc.refused != "" {
				if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("plan: %v, want refused with %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != 1 || ts[0].handler != tc.handler || ts[0].payload.Name != "p" {
				t.Fatalf("plan: %+v, want one target with handler %T", ts, tc.handler)
			}
			tc.check(t, ts[0], j)
		})
	}
}

// recordingHandler is a payload type of the test's own.
type recordingHandler struct{ planned *[]string }

func (h recordingHandler) plan(_ *Agent, cfg *bundle.Config, _ *Journal, i int) (target, error) {
	*h.planned = append(*h.planned, cfg.Payloads[i].Name)
	return target{payload: cfg.Payloads[i]}, nil
}

func (recordingHandler) write(context.Context, *installRun, target, *bundle.PayloadReader, io.Reader) error {
	return nil
}

// TestNewPayloadTypePlugsIn: a payload type is one entry in
// payloadHandlers; plan hands it its payloads beside the built-in types.
func TestNewPayloadTypePlugsIn(t *testing.T) {
	var planned []string
	payloadHandlers["test-delta"] = recordingHandler{&planned}
	t.Cleanup(func() { delete(payloadHandlers, "test-delta") })
	d := newDevice(t)
	a := d.open()
	cfg := &bundle.Config{Name: "os", Version: "2.0.0", Payloads: []bundle.Payload{
		{Name: "d1", Type: "test-delta", Target: "anything"},
		{Name: "app", Type: bundle.Files, Target: "app", Digest: digest.FromString("x")},
		{Name: "d2", Type: "test-delta", Target: "anything"},
	}}
	ts, err := a.plan(cfg, &Journal{Bundle: "os", Version: "2.0.0", FromSlot: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(planned, ",") != "d1,d2" || len(ts) != 3 {
		t.Fatalf("planned %v, %d targets", planned, len(ts))
	}
	if _, ok := ts[1].handler.(filesHandler); !ok {
		t.Errorf("payload app planned by %T", ts[1].handler)
	}
}
