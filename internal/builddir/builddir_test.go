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
