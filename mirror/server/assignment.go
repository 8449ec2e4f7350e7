package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/checkin"
)

// answerFunc answers a signed check-in the mirror recorded.
type answerFunc func(ctx context.Context, w http.ResponseWriter, inv *checkin.Inventory, now time.Time)

// serveAssignment answers a device's signed check-in at assign.Path with
// its assignment (docs/fleet.md, "Assignments"): 200 and the envelope
// signed with the mirror's assignment key, or 204 when the device is
// assigned nothing. The check-in was judged and recorded first, so only
// an enrolled device, whose counter rose, gets here.
func (h *Handler) serveAssignment(ctx context.Context, w http.ResponseWriter, inv *checkin.Inventory, now time.Time) {
	a, err := h.devices.AssignmentFor(ctx, inv.Device, now)
	if err != nil {
		h.limited.printf(now, "store", "assignment of %s (503): %v", inv.Device, err)
		w.Header().Set("Retry-After", "60")
		jsonError(w, http.StatusServiceUnavailable, "the mirror cannot read assignments now; retry later")
		return
	}
	if a == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	key, err := h.akey.get()
	if err != nil {
		h.limited.printf(now, "assign-key", "assignment of %s (503): %v ('ferry fleet deploy' makes the key)", inv.Device, err)
		jsonError(w, http.StatusServiceUnavailable, "the mirror cannot sign assignments: it has no assignment key")
		return
	}
	env, err := assign.Sign(&assign.Assignment{Mirror: inv.Mirror, Device: inv.Device, Deployment: a.Deployment,
		Bundle: a.Bundle, Version: a.Version, Digest: a.Digest, Counter: a.Counter,
		Issued: now.UTC().Truncate(time.Second), Expires: now.UTC().Truncate(time.Second).Add(h.ttl)}, key)
	if err != nil {
		h.limited.printf(now, "assign-key", "assignment of %s (500): %v", inv.Device, err)
		jsonError(w, http.StatusInternalServerError, "sign the assignment: "+err.Error())
		return
	}
	writeEnvelope(w, env)
}

// assignKey caches the store's assignment key until its file changes
// (a rotation).
type assignKey struct {
	store *mirror.Store
	mu    sync.Mutex
	stamp fileStamp
	key   ed25519.PrivateKey
}

func (k *assignKey) get() (ed25519.PrivateKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, err := os.Stat(k.store.AssignmentKeyPath())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			k.key = nil
		}
		return nil, err
	}
	if s := stampOf(st); k.key == nil || s != k.stamp {
		key, err := k.store.AssignmentKey()
		if err != nil {
			return nil, err
		}
		k.key, k.stamp = key, s
	}
	return k.key, nil
}
