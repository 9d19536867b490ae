package testenv

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"
)

// SolvesSince counts the solves c's buildkitd holds in its build history
// that started at or after since, whoever asked for them: a build that
// must do nothing is proved to by none.
func SolvesSince(tb testing.TB, c *client.Client, since time.Time) int {
	tb.Helper()
	cl, err := c.ControlClient().ListenBuildHistory(context.Background(), &controlapi.BuildHistoryRequest{EarlyExit: true})
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for {
		ev, err := cl.Recv()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			tb.Fatal(err)
		}
		if ev.Record != nil && !ev.Record.CreatedAt.AsTime().Before(since) {
			n++
		}
	}
}
