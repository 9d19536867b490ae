package pod

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDetectStdin(t *testing.T) {
	if got := DetectStdin(nil); got != StdinNone {
		t.Errorf("nil: %v", got)
	}
	if got := DetectStdin(strings.NewReader("x")); got != StdinData {
		t.Errorf("reader: %v", got)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	if got := DetectStdin(devnull); got != StdinNone {
		t.Errorf("/dev/null: %v", got)
	}
	pr, pw, _ := os.Pipe()
	defer pw.Close()
	defer pr.Close()
	if got := DetectStdin(pr); got != StdinData {
		t.Errorf("pipe: %v", got)
	}
	file := filepath.Join(t.TempDir(), "in")
	os.WriteFile(file, []byte("x"), 0o644)
	f, _ := os.Open(file)
	if got := DetectStdin(f); got != StdinData {
		t.Errorf("file: %v", got)
	}
	f.Close()
	if got := DetectStdin(f); got != StdinNone {
		t.Errorf("closed: %v", got)
	}
}
