package verify

import (
	"errors"
	"slices"
	"time"
)

// RootInfo describes a trust root for people and scripts ('ferry trust
// show'): what it says, and whether it is valid now.
type RootInfo struct {
	Version     int64               `json:"version"`
	SpecVersion string              `json:"specVersion"`
	Expires     time.Time           `json:"expires"`
	Expired     bool                `json:"expired"`
	Roles       map[string]RoleInfo `json:"roles"`
	Revoked     []string            `json:"revoked"`
	Signatures  []string            `json:"signatures"` // key ids
	Valid       bool                `json:"valid"`      // Verify(now) passes
	Error       string              `json:"error,omitempty"`
}

// RoleInfo is one role of a RootInfo.
type RoleInfo struct {
	Threshold int       `json:"threshold"`
	Keys      []KeyInfo `json:"keys"`
}

// KeyInfo is one key of a role in a RootInfo.
type KeyInfo struct {
	ID        string    `json:"id"`
	Algorithm Algorithm `json:"algorithm"`
	Owner     string    `json:"owner,omitempty"`
	Purpose   string    `json:"purpose,omitempty"`
	Revoked   bool      `json:"revoked"`
}

// Info describes r as of now.
func (r *Root) Info(now time.Time) RootInfo {
	signed := r.Signed()
	info := RootInfo{
		Version: r.Version(), SpecVersion: signed.SpecVersion, Expires: r.Expires(),
		Expired: !now.Before(r.Expires()), Roles: map[string]RoleInfo{},
		Revoked: signed.Revoked, Signatures: r.Signatures(), Valid: true,
	}
	for name, role := range signed.Roles {
		ri := RoleInfo{Threshold: role.Threshold}
		for _, id := range role.KeyIDs {
			k := signed.Keys[id]
			ri.Keys = append(ri.Keys, KeyInfo{ID: id, Algorithm: k.Algorithm, Owner: k.Owner, Purpose: k.Purpose, Revoked: r.IsRevoked(id)})
		}
		info.Roles[name] = ri
	}
	if err := r.Verify(now); err != nil {
		info.Valid, info.Error = false, err.Error()
	}
	return info
}

// RoleSignatures says how far a root is from being accepted by one root
// role: the root role of the root itself, or of the version before it
// (TRUST.md §5.2 steps 5 and 6), for people collecting signatures one at
// a time ('ferry trust sign --partial').
type RoleSignatures struct {
	// Of is the version of the root whose root role this is.
	Of        int64 `json:"of"`
	Threshold int   `json:"threshold"`
	// Signed are the role's keys that made a valid signature; they count.
	Signed []KeyInfo `json:"signed"`
	// Unsigned are the role's other keys that may still sign (revoked
	// keys are left out: they never count).
	Unsigned []KeyInfo `json:"unsigned"`
}

// Met reports whether the role's threshold is met.
func (rs RoleSignatures) Met() bool { return len(rs.Signed) >= rs.Threshold }

// RootSignatures says which root-role keys have signed r: of prev's root
// role first when prev is not nil (a device holding prev accepts r only
// with both), then of r's own. Keys that r revokes do not count in
// either, as in UpdateRoot.
func (r *Root) RootSignatures(prev *Root) []RoleSignatures {
	var out []RoleSignatures
	for _, by := range []*Root{prev, r} {
		if by == nil {
			continue
		}
		valid, _ := r.rootSigners(by, r.revoked)
		rs := RoleSignatures{Of: by.Version(), Threshold: by.signed.Roles[RoleRoot].Threshold, Signed: []KeyInfo{}, Unsigned: []KeyInfo{}}
		for _, id := range by.signed.Roles[RoleRoot].KeyIDs {
			k := by.signed.Keys[id]
			ki := KeyInfo{ID: id, Algorithm: k.Algorithm, Owner: k.Owner, Purpose: k.Purpose}
			switch {
			case slices.Contains(valid, id):
				rs.Signed = append(rs.Signed, ki)
			case !r.revoked[id]:
				rs.Unsigned = append(rs.Unsigned, ki)
			}
		}
		out = append(out, rs)
	}
	return out
}

// ChainStatus is what CheckChain says of one root of a chain.
type ChainStatus string

// The statuses of CheckChain.
const (
	ChainTrusted    ChainStatus = "trusted"     // the root the device holds
	ChainAccepted   ChainStatus = "accepted"    // follows the one before it
	ChainRefused    ChainStatus = "refused"     // the first root refused
	ChainNotChecked ChainStatus = "not-checked" // after a refused one
)

// ChainStep is one root of a chain checked by CheckChain.
type ChainStep struct {
	Version int64     // 0 when the document is not a readable root
	Expires time.Time // zero when the document is not a readable root
	Status  ChainStatus
}

// CheckChain judges chain as a device holding trusted would
// (UpdateRootChain) and says so root by root: steps[0] is trusted, steps[i]
// chain[i-1]. On error, the root that failed is ChainRefused (the last one
// when the error names none), those after it ChainNotChecked, and the
// error is UpdateRootChain's.
func CheckChain(trusted *Root, chain [][]byte, now time.Time) (final *Root, steps []ChainStep, err error) {
	steps = []ChainStep{{Version: trusted.Version(), Expires: trusted.Expires(), Status: ChainTrusted}}
	for _, b := range chain {
		st := ChainStep{Status: ChainAccepted}
		if r, err := ParseRoot(b); err == nil {
			st.Version, st.Expires = r.Version(), r.Expires()
		}
		steps = append(steps, st)
	}
	final, err = UpdateRootChain(trusted, chain, now)
	if err != nil {
		failed := len(chain)
		var re *RootError
		if errors.As(err, &re) && re.Step > 0 {
			failed = re.Step
		}
		steps[failed].Status = ChainRefused
		for i := failed + 1; i < len(steps); i++ {
			steps[i].Status = ChainNotChecked
		}
	}
	return final, steps, err
}
