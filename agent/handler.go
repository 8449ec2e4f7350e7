package agent

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/ferry-update/ferry/agent/bootenv"
	"github.com/ferry-update/ferry/bundle"
)

// payloadHandler installs the payloads of one type. The install state
// machine looks a payload's handler up in payloadHandlers by its type and
// never switches on the type itself, so that a new type (a delta, an
// encrypted payload) is one more handler.
type payloadHandler interface {
	// plan decides where payload i of cfg goes and checks it before a
	// byte is written, recording in the journal what the later steps
	// (activate, commit, roll back) need. A payload this device cannot
	// take is a *RefusedError.
	plan(a *Agent, cfg *bundle.Config, j *Journal, i int) (target, error)
	// write streams the payload, whose digests are checked as it is
	// read, to the target plan chose.
	write(ctx context.Context, in *installRun, t target, p *bundle.PayloadReader, r io.Reader) error
}

// payloadHandlers holds the handler of every payload type the agent takes.
var payloadHandlers = map[bundle.PayloadType]payloadHandler{
	bundle.Rootfs: rootfsHandler{},
	bundle.Files:  filesHandler{},
	bundle.Module: moduleHandler{},
}

// target is where one payload goes, decided before a byte is written.
type target struct {
	payload bundle.Payload
	handler payloadHandler
	device  string      // an A/B pair's inactive device
	tree    *TreeSwitch // a files target
	module  int         // a module payload: its index in Journal.Modules
}

// installRun is what the handlers share while one install writes its
// payloads.
type installRun struct {
	a        *Agent
	j        *Journal
	sessions map[int]ModuleSession // of the module payloads, by payload index
	br       *bundle.Reader
	delta    *Delta // nil: every payload streams
}

// slotFor returns the configured slot payload p names, which must be an
// A/B pair when pair is set and a directory otherwise.
func (a *Agent) slotFor(j *Journal, p bundle.Payload, pair bool) (SlotConfig, error) {
	slot, ok := a.cfg.Slots[p.Target]
	if !ok {
		return SlotConfig{}, &RefusedError{Bundle: j.name(), Err: fmt.Errorf("payload %q: %w: %q (configured: %s)", p.Name, ErrUnknownTarget, p.Target, strings.Join(sortedKeys(a.cfg.Slots), ", "))}
	}
	if slot.isPair() != pair {
		kind := "an A/B pair"
		if !slot.isPair() {
			kind = "a directory"
		}
		return SlotConfig{}, &RefusedError{Bundle: j.name(), Err: fmt.Errorf("payload %q of type %s cannot go to target %q, which is %s", p.Name, p.Type, p.Target, kind)}
	}
	return slot, nil
}

// unknownHandler stands for a payload type no handler takes: it fits no
// slot.
type unknownHandler struct{}

func (unknownHandler) plan(a *Agent, cfg *bundle.Config, j *Journal, i int) (target, error) {
	p := cfg.Payloads[i]
	slot, err := a.slotFor(j, p, true)
	if err == nil {
		_, err = a.slotFor(j, p, !slot.isPair())
	}
	return target{}, err
}

func (unknownHandler) write(context.Context, *installRun, target, *bundle.PayloadReader, io.Reader) error {
	panic("agent: write of a payload no handler planned")
}

// rootfsHandler writes an image into the inactive slot of an A/B pair;
// the boot environment switches slots at activation.
type rootfsHandler struct{}

func (rootfsHandler) plan(a *Agent, cfg *bundle.Config, j *Journal, i int) (target, error) {
	p := cfg.Payloads[i]
	slot, err := a.slotFor(j, p, true)
	if err != nil {
		return target{}, err
	}
	j.ToSlot = bootenv.OtherSlot(j.FromSlot)
	j.NeedsReboot = true
	j.Images = append(j.Images, SlotImage{Target: p.Target, Size: p.Size, Digest: p.Digest})
	t := target{payload: p, device: slot.Device(j.ToSlot)}
	return t, checkSlotDevice(p.Target, j.ToSlot, t.device, slot.Device(j.FromSlot), p.Size)
}

func (rootfsHandler) write(_ context.Context, in *installRun, t target, p *bundle.PayloadReader, r io.Reader) error {
	in.a.logf("writing payload %s (%d bytes) to %s", p.Name, p.Size, t.device)
	// The slot's kept chunk index goes before the slot changes, and the
	// new one is kept only once the slot holds the verified content.
	if err := in.a.forgetChunks(p.Target, in.j.ToSlot); err != nil {
		return err
	}
	if err := writeSlot(t.device, r); err != nil {
		return fmt.Errorf("payload %s into %s: %w", p.Name, t.device, err)
	}
	if index := chunkIndexData(in.br, p.Payload); index != nil {
		return in.a.keepChunks(p.Target, in.j.ToSlot, index)
	}
	return nil
}

// filesHandler unpacks a tree beside the one in use in a directory
// target; activation points DIR/current at it.
type filesHandler struct{}

func (filesHandler) plan(a *Agent, cfg *bundle.Config, j *Journal, i int) (target, error) {
	p := cfg.Payloads[i]
	slot, err := a.slotFor(j, p, false)
	if err != nil {
		return target{}, err
	}
	t := target{payload: p, tree: planTree(p.Target, slot.Dir, cfg.Version, p)}
	j.Trees = append(j.Trees, *t.tree)
	return t, nil
}

func (filesHandler) write(_ context.Context, in *installRun, t target, p *bundle.PayloadReader, r io.Reader) error {
	in.a.logf("extracting payload %s to %s/%s/%s", p.Name, t.tree.Dir, releasesDir, t.tree.New)
	if err := extractTree(t.tree, r); err != nil {
		return fmt.Errorf("payload %s into %s: %w", p.Name, t.tree.Dir, err)
	}
	return nil
}

// moduleHandler hands the payload to the update module its target names
// (module.go).
type moduleHandler struct{}

func (moduleHandler) plan(_ *Agent, cfg *bundle.Config, j *Journal, i int) (target, error) {
	p := cfg.Payloads[i]
	if err := checkModuleName(p.Target); err != nil {
		return target{}, &RefusedError{Bundle: j.name(), Err: fmt.Errorf("payload %q: %w", p.Name, err)}
	}
	j.Modules = append(j.Modules, ModuleRun{Payload: p.Name, Module: p.Target, Index: i})
	return target{payload: p, module: len(j.Modules) - 1}, nil
}

func (moduleHandler) write(ctx context.Context, in *installRun, t target, p *bundle.PayloadReader, r io.Reader) error {
	m := &in.j.Modules[t.module]
	in.a.logf("handing payload %s (%d bytes) to update module %s", p.Name, p.Size, m.Module)
	if err := in.a.downloadModule(ctx, in.sessions[m.Index], r); err != nil {
		return fmt.Errorf("payload %s: %w", p.Name, err)
	}
	return nil
}
