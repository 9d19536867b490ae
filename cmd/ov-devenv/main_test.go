package main

import "testing"

// The command sees a live buildkitd socket, the buildx builder and the task
// archive checksums; its exit code is passed through.
func TestRunPassesEnvironmentAndExitCode(t *testing.T) {
	ok := `test -S "${BUILDKIT_HOST#unix://}" && test -n "$OV_TASK_SHA256_ARM64" && test -n "$BUILDX_CONFIG" && test -S "${DOCKER_HOST#unix://}"`
	if code := run(true, []string{"sh", "-c", ok}); code != 0 {
		t.Errorf("environment check exited %d", code)
	}
	if code := run(false, []string{"sh", "-c", "exit 3"}); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
}
