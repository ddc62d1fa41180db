package worker

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// Not parallel: the collector's target is process-wide.
func TestSetGCDefaults(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	_, changed := SetGCDefaults(func(string) string { return "150" })
	require.False(t, changed, "GOGC set by the operator wins")
	require.Equal(t, 100, debug.SetGCPercent(100))

	prev, changed := SetGCDefaults(func(string) string { return "" })
	require.True(t, changed)
	require.Equal(t, 100, prev)
	require.Equal(t, GCPercent, debug.SetGCPercent(100))
}
