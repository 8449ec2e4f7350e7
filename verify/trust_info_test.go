package verify_test

import (
	"reflect"
	"testing"

	"github.com/ferry-update/ferry/verify"
)

func TestRootInfo(t *testing.T) {
	k := newTrustKeys(t)
	v1 := k.firstRoot(t)
	v2 := next(t, v1, func(s *verify.RootSigned) {
		must(t, s.Revoke(k.b.pub.ID))
	}, k.a, k.b)
	info := v2.Info(now)
	if info.Version != 2 || info.Expired || !info.Valid || info.Error != "" || !info.Expires.Equal(v2.Expires()) {
		t.Errorf("info %+v", info)
	}
	want := verify.RoleInfo{Threshold: 1, Keys: []verify.KeyInfo{
		{ID: k.a.pub.ID, Algorithm: k.a.pub.Algorithm},
		{ID: k.b.pub.ID, Algorithm: k.b.pub.Algorithm, Revoked: true},
	}}
	got := info.Roles[verify.RoleRoot]
	if !reflect.DeepEqual(got, want) && !reflect.DeepEqual(got, verify.RoleInfo{Threshold: 1, Keys: []verify.KeyInfo{want.Keys[1], want.Keys[0]}}) {
		t.Errorf("root role %+v, want %+v", got, want)
	}
	if len(info.Roles) != 3 || !reflect.DeepEqual(info.Revoked, []string{k.b.pub.ID}) || len(info.Signatures) != 2 {
		t.Errorf("roles %d, revoked %v, signatures %v", len(info.Roles), info.Revoked, info.Signatures)
	}
	late := v1.Info(now.Add(2 * year))
	if !late.Expired || late.Valid || late.Error == "" {
		t.Errorf("a year after its expiry: %+v", late)
	}
}

func TestCheckChain(t *testing.T) {
	k := newTrustKeys(t)
	v1 := k.firstRoot(t)
	v2 := next(t, v1, nil, k.a)
	v3 := next(t, v2, nil, k.a)
	stranger := next(t, v2, nil, k.stranger) // v3 signed by nobody trusted
	v4 := next(t, v3, nil, k.a)
	st := func(s ...verify.ChainStatus) []verify.ChainStatus { return s }
	const (
		tr = verify.ChainTrusted
		ok = verify.ChainAccepted
		no = verify.ChainRefused
		nc = verify.ChainNotChecked
	)
	for _, tc := range []struct {
		name  string
		chain [][]byte
		want  []verify.ChainStatus
		final int64 // 0: refused
	}{
		{"one step", [][]byte{v2.Bytes()}, st(tr, ok), 2},
		{"three steps", [][]byte{v2.Bytes(), v3.Bytes(), v4.Bytes()}, st(tr, ok, ok, ok), 4},
		{"a stranger's root in the middle", [][]byte{v2.Bytes(), stranger.Bytes(), v4.Bytes()}, st(tr, ok, no, nc), 0},
		{"a skipped version", [][]byte{v3.Bytes(), v4.Bytes()}, st(tr, no, nc), 0},
		{"not a root", [][]byte{v2.Bytes(), []byte("{}")}, st(tr, ok, no), 0},
	} {
		final, steps, err := verify.CheckChain(v1, tc.chain, now)
		var got []verify.ChainStatus
		for _, s := range steps {
			got = append(got, s.Status)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: statuses %v, want %v", tc.name, got, tc.want)
		}
		if tc.final == 0 && (err == nil || final != nil) {
			t.Errorf("%s: accepted (%v)", tc.name, err)
		}
		if tc.final != 0 && (err != nil || final.Version() != tc.final) {
			t.Errorf("%s: %v, want v%d", tc.name, err, tc.final)
		}
		if steps[0].Version != 1 || (len(steps) > 1 && tc.name == "not a root" && steps[2].Version != 0) {
			t.Errorf("%s: versions %+v", tc.name, steps)
		}
	}
}
