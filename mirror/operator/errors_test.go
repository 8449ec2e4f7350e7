package operator

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
)

// TestTypedErrors: every typed error the API names crosses it whole: the
// client rebuilds the same value (so the same message, hint and exit
// code), even when the server's error wrapped it.
func TestTypedErrors(t *testing.T) {
	examples := []error{
		&devices.NotFoundError{ID: "0123456789abcdef"},
		&devices.AmbiguousError{Prefix: "01234567", IDs: []string{"0123456789abcdef", "01234567aaaaaaaa"}},
		&devices.StatusError{ID: "0123456789abcdef", From: devices.Revoked, To: devices.Enrolled, Msg: "a revoked key stays revoked"},
		&devices.LabelError{Key: "Site", Msg: "a key is a lower-case letter"},
		&devices.GroupNotFoundError{Name: "line-1"},
		&devices.FilterError{Pos: 6, Msg: "want a value after ="},
		&devices.SpecError{Field: "group", Msg: "give a group or a filter"},
		&fleet.BundleNotFoundError{Ref: "gw:9", Versions: []string{"1", "2"}},
		&fleet.BundleNotFoundError{Ref: "gw:9"},
		&devices.DeploymentNotFoundError{ID: 7},
		&devices.StateError{ID: 7, State: devices.Paused, Action: "approved"},
		&devices.ApprovalError{ID: 7, Operator: "ana", Msg: "the operator who made a deployment cannot approve it"},
	}
	seen := map[string]bool{}
	for _, want := range examples {
		kind, detail := errorKind(fmt.Errorf("doing it: %w", want))
		if kind == "" {
			t.Errorf("%T: no kind", want)
			continue
		}
		seen[kind] = true
		b, err := json.Marshal(detail)
		if err != nil {
			t.Fatal(err)
		}
		got := rebuildError(kind, b)
		if !reflect.DeepEqual(got, want) || got.Error() != want.Error() {
			t.Errorf("%s %s: rebuilt %#v, want %#v", kind, b, got, want)
		}
	}
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, k := range doc.Components.Schemas["Error"].Value.Properties["kind"].Value.Enum {
		documented = append(documented, k.(string))
	}
	var kinds []string
	for _, te := range typedErrors {
		if !seen[te.kind] {
			t.Errorf("kind %s: no example", te.kind)
		}
		kinds = append(kinds, te.kind)
	}
	if !slices.Equal(kinds, documented) {
		t.Errorf("openapi.yaml documents the kinds %v, the API sends %v", documented, kinds)
	}
	for _, bad := range [][2]string{{"no-such-kind", `{}`}, {"deployment-state", `{"id": "seven"}`}, {"filter", `{"pos": 1, "extra": 2}`}, {"spec", `[]`}} {
		if err := rebuildError(bad[0], []byte(bad[1])); err != nil {
			t.Errorf("rebuildError(%s, %s) = %#v, want nil", bad[0], bad[1], err)
		}
	}
	if kind, _ := errorKind(fmt.Errorf("disk full")); kind != "" {
		t.Errorf("an untyped error has kind %q", kind)
	}
}
