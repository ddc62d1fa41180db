package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDemoRunsThePipeline builds the component binaries, runs the demo for a few seconds
// on a small org (its own embedded NATS and throwaway Postgres, as `make demo` does) and
// checks that console edits came out of the pipeline as mirror changes with latencies.
func TestDemoRunsThePipeline(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "../callback", "../wecom-emulator", "../worker")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building the components: %s", out)

	var stdout bytes.Buffer
	err = run(context.Background(), []string{"-bin", bin, "-data", t.TempDir(), "-seed-users", "50", "-rate", "20", "-duration", "6s"},
		func(string) string { return "" }, &stdout, &bytes.Buffer{})
	require.NoError(t, err, stdout.String())
	text := stdout.String()
	require.Contains(t, text, "NATS JetStream (embedded)")
	require.Contains(t, text, "Postgres (throwaway)")
	require.Regexp(t, `worker ready after [0-9.]+ s of initial sync; status page http://127\.0\.0\.1:\d+/`, text)
	require.Contains(t, text, "stopping:")
	// Change lines carry both latencies: "1.3 ms  12.5 ms  user updated  u000001 ...".
	changes := regexp.MustCompile(`(?m)\d+\.\d ms\s+\d+\.\d ms\s+(user|tag) (created|updated|deleted)\s`).FindAllString(text, -1)
	require.GreaterOrEqual(t, len(changes), 10, "expected a steady flow of mirror changes, got:\n%s", text)
	require.NotContains(t, text, "edit failed")
	require.NotContains(t, text, "undecodable")
}
