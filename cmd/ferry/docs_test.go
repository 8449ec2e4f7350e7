package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsSignBundles: every 'ferry bundle create' shown to users (the
// README, examples/, scripts/) says how the bundle is signed, --key or
// --unsigned, since a bundle is not made unsigned without being asked.
func TestDocsSignBundles(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../../*.md", "../../examples/*/*.md", "../../examples/*/*.sh", "../../scripts/*.sh"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	signed := regexp.MustCompile(`\s(--key|-k|--unsigned)(\s|=|$)`)
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "\\\n", " ")
		for line := range strings.Lines(text) {
			i := strings.Index(line, "bundle create ")
			if i < 0 || !strings.Contains(line[:i], "ferry") || strings.Contains(line, "`") || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			found++
			if !signed.MatchString(line[i:]) {
				t.Errorf("%s: %q has neither --key nor --unsigned", f, strings.TrimSpace(line))
			}
		}
	}
	if found == 0 {
		t.Fatal("no 'ferry bundle create' command found in the docs")
	}
}
