package main

import (
	"os"
	"testing"
)

// TestGraphCommand: ov graph prints the graph package's output for the
// project or one image, and a user mistake exits 1.
func TestGraphCommand(t *testing.T) {
	want, err := os.ReadFile("../../graph/testdata/hello-child.dot.golden")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := ov(t, "-C", "../../examples/hello", "graph", "--image", "hello-child", "--format", "dot")
	if code != 0 || out != string(want) {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	if out, _, code := ov(t, "-C", "../../examples/hello", "graph"); code != 0 || out == "" || out[:len("flowchart TD\n")] != "flowchart TD\n" {
		t.Fatalf("default format: exit %d, stdout:\n%s", code, out)
	}
	for _, args := range [][]string{
		{"graph", "--image", "nope"},
		{"graph", "--format", "svg"},
	} {
		if _, errOut, code := ov(t, append([]string{"-C", "../../examples/hello"}, args...)...); code != 1 || errOut == "" {
			t.Errorf("ov %v: exit %d (want 1), stderr %q", args, code, errOut)
		}
	}
}
