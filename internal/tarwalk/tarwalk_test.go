package tarwalk

import (
	"archive/tar"
	"errors"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
)

// Layer visits every entry in order with its content, and stops at fn's
// first error.
func TestLayer(t *testing.T) {
	l, err := crane.Layer(map[string][]byte{"a": []byte("1"), "b/c": []byte("22")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = Layer(l, func(h *tar.Header, r io.Reader) error {
		b, err := io.ReadAll(r)
		got = append(got, h.Name+"="+string(b))
		return err
	})
	if err != nil || len(got) != 2 || got[0] != "a=1" || got[1] != "b/c=22" {
		t.Errorf("entries %q, err %v", got, err)
	}
	stop := errors.New("stop")
	n := 0
	if err := Layer(l, func(*tar.Header, io.Reader) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("after fn's error: err %v, %d calls", err, n)
	}
}
