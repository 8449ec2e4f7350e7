package checkin

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: no input makes Parse panic, and what it accepts is valid and
// survives a marshal/parse round trip unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"deviceId":"gw-0001","deviceType":"board-a","bundle":"gateway","version":"1.4.2","result":"committed","time":"2026-05-01T12:00:00Z"}`,
		`{"deviceId":"gw-0002","deviceType":"board-b","version":"0.9.0","result":"failed","error":"bundle refused","time":"2026-05-01T12:05:00+02:00","extra":[1,2]}`,
		`{"deviceId":"x","deviceType":"y","version":"1","result":"idle","time":"0001-01-01T00:00:00Z"}`,
		`{"deviceId":"gw","deviceType":"t","version":"1.0.0","result":"ok","time":"2026-05-01T12:00:00Z"} {}`,
		`{"deviceId":null}`, `[]`, `"s"`, ``, `{`, `{"time":"bogus"}`,
		`{"deviceId":"a","deviceType":"b","version":"1","result":"c","time":"2026-05-01T12:00:00Z","error":"` + strings.Repeat("é", 3000) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseBytes(data)
		if err != nil {
			if r != nil {
				t.Fatal("a report with an error")
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted an invalid report: %v", err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseBytes(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !r.Time.Equal(r2.Time) {
			t.Fatalf("time %v became %v", r.Time, r2.Time)
		}
		r2.Time = r.Time
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed %+v into %+v", r, r2)
		}
	})
}

func TestParseErrors(t *testing.T) {
	if _, err := ParseBytes([]byte(`{"deviceId":"gw"}`)); err == nil || !strings.Contains(err.Error(), "deviceType: missing") {
		t.Errorf("missing fields: %v", err)
	}
	big := `{"deviceId":"` + strings.Repeat("a", MaxSize) + `"}`
	if _, err := Parse(strings.NewReader(big)); err != ErrTooLarge {
		t.Errorf("huge body: %v", err)
	}
	var fe *FieldError
	_, err := ParseBytes([]byte(`{"deviceId":"gw","deviceType":"b","version":"1.0.0","result":"Committed!","time":"2026-05-01T12:00:00Z"}`))
	if !errors.As(err, &fe) || fe.Field != "result" {
		t.Errorf("bad result: %v", err)
	}
}
