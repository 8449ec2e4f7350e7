package wire

import "testing"

func TestRootFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    int64
		ok   bool
	}{
		{"1.root.json", 1, true},
		{"dir/12.root.json", 12, true},
		{RootFile(9007199254740993), 9007199254740993, true},
		{"0.root.json", 0, false},
		{"-1.root.json", -1, false},
		{"root.json", 0, false},
		{"1.root.json.bak", 0, false},
		{"x.root.json", 0, false},
		{"1.json", 0, false},
	} {
		v, ok := RootFileVersion(tc.name)
		if ok != tc.ok || (ok && v != tc.v) {
			t.Errorf("RootFileVersion(%q) = %d, %v; want %d, %v", tc.name, v, ok, tc.v, tc.ok)
		}
	}
	if got := RootFile(3); got != "3.root.json" {
		t.Errorf("RootFile(3) = %q", got)
	}
	if got := TUFVersionFile(3, "root"); got != RootFile(3) {
		t.Errorf("TUFVersionFile(3, root) = %q, want RootFile(3)", got)
	}
	if got := TUFVersionFile(12, "targets"); got != "12.targets.json" {
		t.Errorf("TUFVersionFile(12, targets) = %q", got)
	}
	if got := TUFFile("timestamp"); got != "timestamp.json" {
		t.Errorf("TUFFile(timestamp) = %q", got)
	}
	if got := TUFPath + TUFFile("root"); got != "/tuf/root.json" {
		t.Errorf("TUFPath + TUFFile(root) = %q", got)
	}
}

func FuzzRootFile(f *testing.F) {
	f.Add(int64(1))
	f.Fuzz(func(t *testing.T, v int64) {
		got, ok := RootFileVersion(RootFile(v))
		if ok != (v > 0) || (ok && got != v) {
			t.Fatalf("RootFileVersion(RootFile(%d)) = %d, %v", v, got, ok)
		}
	})
}
