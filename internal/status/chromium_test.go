package status_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// chromiumPath is Debian's chromium package binary.
const chromiumPath = "/usr/bin/chromium"

// chromium runs headless Chromium with args and url and returns its stdout. Chromium
// prints noise on stderr (GPU, D-Bus, crash reporter); it is ignored unless the run fails.
func chromium(t *testing.T, url string, args ...string) []byte {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: this test loads the status page in headless Chromium. "+
			"Run scripts/ensure-chromium.sh (as root it installs Debian's chromium package) and test again.", chromiumPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A fresh profile per run, outside t.TempDir(): Chromium's helper processes may still
	// be writing to it for a moment after the browser exits, which would fail TempDir's
	// cleanup; it is removed here, best effort.
	profile, err := os.MkdirTemp("", "status-chromium-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(profile) })
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-breakpad", "--disable-crash-reporter", "--hide-scrollbars", "--user-data-dir=" + profile}
	cmd := exec.CommandContext(ctx, chromiumPath, append(append(base, args...), url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second // helper processes holding the pipes open must not hang the test
	if err := cmd.Run(); err != nil {
		t.Fatalf("running chromium %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

func TestPageInHeadlessChromium(t *testing.T) {
	t.Parallel()
	b := setup(t, corpC)
	ids := b.seed(t)

	t.Run("DOMFiguresMatchTheDatabase", func(t *testing.T) {
		dom := chromium(t, b.srv.URL+"/", "--dump-dom")
		require.Contains(t, string(dom), "wecomsync worker")
		requirePageMatches(t, b, string(dom), ids)
	})

	t.Run("ScreenshotIsAFullSizePNG", func(t *testing.T) {
		shot := filepath.Join(t.TempDir(), "status.png")
		chromium(t, b.srv.URL+"/", "--screenshot="+shot, "--window-size=1280,900")
		data, err := os.ReadFile(shot)
		require.NoError(t, err, "chromium wrote no screenshot")
		// A copy outlives the test's temp dir when asked for (docs/status-page.png is made
		// this way), made before the checks so a bad screenshot can be looked at.
		if dst := os.Getenv("STATUS_SCREENSHOT"); dst != "" {
			require.NoError(t, os.WriteFile(dst, data, 0o644))
		}
		require.Greater(t, len(data), 20_000, "a screenshot of the page is more than a blank image")
		require.Equal(t, []byte("\x89PNG\r\n\x1a\n"), data[:8])
		img, err := png.Decode(bytes.NewReader(data))
		require.NoError(t, err)
		require.Equal(t, 1280, img.Bounds().Dx())
		require.Equal(t, 900, img.Bounds().Dy())
		t.Logf("screenshot: %s (%d bytes)", shot, len(data))
	})
}
