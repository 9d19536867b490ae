package builddir

import (
	"os"
	"path/filepath"
	"testing"
)

// A project directory that does not exist yet is made (bench writes
// .build/ under a fresh one); paths not under .build/ are refused.
func TestWriteFileMakesProjectDir(t *testing.T) {
	project := filepath.Join(t.TempDir(), "a", "b")
	if err := WriteFile(project, ".build/x/Containerfile", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(project, ".build/x/Containerfile"); err != nil || string(b) != "x" {
		t.Errorf("%q %v", b, err)
	}
	for _, rel := range []string{"x", ".build/../x", ".build//x", "layers/x"} {
		if err := WriteFile(project, rel, nil); err == nil {
			t.Errorf("%s accepted", rel)
		}
	}
	if _, err := os.Stat(filepath.Join(project, "x")); err == nil {
		t.Error("wrote outside .build")
	}
}

// WriteFile leaves a file holding the same bytes alone and replaces one
// that differs, even in content only, or that is a link (not followed).
func TestWriteFileReplacesOnlyWhatDiffers(t *testing.T) {
	project := t.TempDir()
	rel := ".build/x/Containerfile"
	file := filepath.Join(project, ".build", "x", "Containerfile")
	write := func(data string) os.FileInfo {
		t.Helper()
		if err := WriteFile(project, rel, []byte(data)); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(file)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(file); string(b) != data || !fi.Mode().IsRegular() {
			t.Fatalf("%s holds %q (%v), want %q", rel, b, fi.Mode(), data)
		}
		return fi
	}
	first := write("abc")
	if !os.SameFile(first, write("abc")) {
		t.Error("identical file replaced")
	}
	if os.SameFile(first, write("abd")) {
		t.Error("file of the same size, other bytes, kept")
	}
	write("")
	write("longer")
	outside := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(outside, []byte("linked"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, file); err != nil {
		t.Fatal(err)
	}
	write("linked")
	if b, _ := os.ReadFile(outside); string(b) != "linked" {
		t.Errorf("link target changed: %q", b)
	}
}
