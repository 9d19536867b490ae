package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestRemoveAll removes a tree of many files, read-only directories and
// symbolic links, and follows none of the links out of it.
func TestRemoveAll(t *testing.T) {
	outside := t.TempDir()
	keep := filepath.Join(outside, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tree")
	for i := range 40 {
		d := filepath.Join(dir, fmt.Sprint(i%3), fmt.Sprint(i%7), fmt.Sprint(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range 30 {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprint(j)), []byte("data"), 0o444); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(outside, filepath.Join(d, "out-dir")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(keep, filepath.Join(d, "out-file")); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			os.Chmod(d, 0o555)
		}
	}
	if err := removeAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there: %v", dir, err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("a link was followed out of the tree: %v", err)
	}
	if err := removeAll(dir); err != nil {
		t.Fatalf("removing what is gone: %v", err)
	}
}
