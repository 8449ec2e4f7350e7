package cliexit

import (
	"slices"
	"testing"
)

func TestLevenshtein(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"", "abc", 3}, {"json", "json", 0}, {"jsn", "json", 1}, {"colour", "color", 1},
		{"kitten", "sitting", 3}, {"bundel", "bundle", 2}, {"über", "uber", 1}, {"threshhold", "threshold", 1},
	} {
		if d := levenshtein(tc.a, tc.b); d != tc.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
		if d := levenshtein(tc.b, tc.a); d != tc.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.b, tc.a, d, tc.d)
		}
	}
}

func TestSuggest(t *testing.T) {
	flags := []string{"json", "key", "keys", "threshold", "trust", "device-type", "deep", "help", "out"}
	for _, tc := range []struct {
		typed string
		want  []string
	}{
		{"jsn", []string{"json"}},
		{"JSON", []string{"json"}},
		{"thresh", []string{"threshold"}},
		{"devicetype", []string{"device-type"}},
		{"kye", []string{"key", "keys"}},
		{"ke", []string{"key"}},
		{"keyz", []string{"key", "keys"}},
		{"trsut", []string{"trust"}},
		{"colour", nil},
		{"x", nil},
		{"", nil},
		{"o", nil},
	} {
		if got := suggest(tc.typed, flags); !slices.Equal(got, tc.want) {
			t.Errorf("suggest(%q) = %q, want %q", tc.typed, got, tc.want)
		}
	}
	if got := didYouMean([]string{"--a", "--b", "--c"}); got != "did you mean --a, --b or --c?" {
		t.Errorf("didYouMean = %q", got)
	}
}
