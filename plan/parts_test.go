package plan_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/overthink/ov/plan"
)

// partsLog records the calls Walk makes.
type partsLog struct {
	calls []string
	fail  string // the call that returns an error
}

func (l *partsLog) call(name string) error {
	l.calls = append(l.calls, name)
	if name == l.fail {
		return errors.New("fail at " + name)
	}
	return nil
}

func (l *partsLog) Bootstrap(s plan.Step) error { return l.call("bootstrap " + s.Desc) }
func (l *partsLog) Config(c plan.Config) error  { return l.call("config " + c.Workdir) }
func (l *partsLog) Steps(s []plan.Step) error   { return l.call("steps " + s[0].Desc) }
func (l *partsLog) Lint(s plan.Step) error      { return l.call("lint " + s.Desc) }
func (l *partsLog) User(uid string) error       { return l.call("user " + uid) }

func TestWalkOrder(t *testing.T) {
	img := &plan.Image{
		Bootstrap: []plan.Step{{Desc: "task"}, {Desc: "user"}},
		Workdir:   "/home/u",
		Steps:     []plan.Step{{Desc: "root.yml"}},
		Lint:      &plan.Step{Desc: "lint"},
		FinalUser: "1000",
	}
	want := []string{"bootstrap task", "bootstrap user", "config /home/u", "steps root.yml", "lint lint", "user 1000"}
	var l partsLog
	if err := img.Walk(&l); err != nil || !slices.Equal(l.calls, want) {
		t.Fatalf("Walk = %v, %v; want %v", l.calls, err, want)
	}

	// No lint and no final user: neither is called.
	img.Lint, img.FinalUser = nil, ""
	l = partsLog{}
	if err := img.Walk(&l); err != nil || !slices.Equal(l.calls, want[:4]) {
		t.Fatalf("Walk without lint and user = %v, %v; want %v", l.calls, err, want[:4])
	}

	// An error stops the walk.
	l = partsLog{fail: "config /home/u"}
	if err := img.Walk(&l); err == nil || !slices.Equal(l.calls, want[:3]) {
		t.Fatalf("Walk failing at config = %v, %v; want %v and an error", l.calls, err, want[:3])
	}
}
