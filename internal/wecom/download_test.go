package wecom_test

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/wecom"
)

// blockServer serves one block. Its first `cuts` GETs send the headers for the whole
// remaining body, then only half of it, and cut the connection; later ones are served
// with http.ServeContent (Range supported) unless ignoreRange. stall makes the cut
// requests hang (until the client gives up) instead of closing.
type blockServer struct {
	data        []byte
	cuts        int
	ignoreRange bool
	stall       bool

	mu     sync.Mutex
	ranges []string
}

func (s *blockServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	cut := s.cuts > 0
	if cut {
		s.cuts--
	}
	s.mu.Unlock()
	if s.ignoreRange {
		r.Header.Del("Range")
	}
	if !cut {
		http.ServeContent(w, r, "block", time.Time{}, bytes.NewReader(s.data))
		return
	}
	start := 0
	if v := r.Header.Get("Range"); v != "" {
		// "bytes=N-"
		n, err := strconv.Atoi(v[len("bytes=") : len(v)-1])
		if err != nil {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		start = n
		w.Header().Set("Content-Range", "bytes "+strconv.Itoa(n)+"-"+strconv.Itoa(len(s.data)-1)+"/"+strconv.Itoa(len(s.data)))
	}
	rest := s.data[start:]
	w.Header().Set("Content-Length", strconv.Itoa(len(rest)))
	if start > 0 {
		w.WriteHeader(http.StatusPartialContent)
	}
	_, _ = w.Write(rest[:len(rest)/2])
	w.(http.Flusher).Flush()
	if s.stall {
		<-r.Context().Done()
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func (s *blockServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func newBlock(t *testing.T, size int, s *blockServer) (wecom.ExportBlock, *blockServer) {
	t.Helper()
	s.data = make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range s.data {
		s.data[i] = byte(r.IntN(256))
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	sum := md5.Sum(s.data)
	return wecom.ExportBlock{URL: srv.URL + "/download?sig=abc", Size: int64(size), MD5: hex.EncodeToString(sum[:])}, s
}

func downloadClient(t *testing.T, mod func(*wecom.Config)) *wecom.Client {
	t.Helper()
	cfg := testClientConfig("http://127.0.0.1:1")
	if mod != nil {
		mod(&cfg)
	}
	c, err := wecom.New(cfg)
	require.NoError(t, err)
	return c
}

func TestDownloadExportBlock(t *testing.T) {
	t.Parallel()

	t.Run("ResumesWithRangeAfterBrokenConnection", func(t *testing.T) {
		t.Parallel()
		b, s := newBlock(t, 1<<20, &blockServer{cuts: 2})
		var buf bytes.Buffer
		n, err := downloadClient(t, nil).DownloadExportBlock(ctxT(t), b, &buf)
		require.NoError(t, err)
		require.Equal(t, b.Size, n)
		require.Equal(t, s.data, buf.Bytes())
		ranges := s.seen()
		require.Len(t, ranges, 3)
		require.Equal(t, "", ranges[0])
		require.Equal(t, "bytes=524288-", ranges[1], "resumes where the first body broke")
		require.Equal(t, "bytes=786432-", ranges[2])
	})

	t.Run("ServerIgnoringRangeIsSkipped", func(t *testing.T) {
		t.Parallel()
		b, s := newBlock(t, 300_000, &blockServer{cuts: 1, ignoreRange: true})
		var buf bytes.Buffer
		_, err := downloadClient(t, nil).DownloadExportBlock(ctxT(t), b, &buf)
		require.NoError(t, err)
		require.Equal(t, s.data, buf.Bytes())
	})

	t.Run("StalledBodyIsAbandonedAndResumed", func(t *testing.T) {
		t.Parallel()
		b, s := newBlock(t, 200_000, &blockServer{cuts: 1, stall: true})
		c := downloadClient(t, func(cfg *wecom.Config) { cfg.CallTimeout = 200 * time.Millisecond })
		var buf bytes.Buffer
		_, err := c.DownloadExportBlock(ctxT(t), b, &buf)
		require.NoError(t, err)
		require.Equal(t, s.data, buf.Bytes())
		require.Equal(t, "bytes=100000-", s.seen()[1])
	})

	t.Run("MD5MismatchDetected", func(t *testing.T) {
		t.Parallel()
		b, _ := newBlock(t, 50_000, &blockServer{cuts: 1})
		b.MD5 = "00000000000000000000000000000000"
		_, err := downloadClient(t, nil).DownloadExportBlock(ctxT(t), b, &bytes.Buffer{})
		require.ErrorIs(t, err, wecom.ErrChecksum)
	})

	t.Run("SizeMismatchDetected", func(t *testing.T) {
		t.Parallel()
		b, _ := newBlock(t, 50_000, &blockServer{})
		b.Size = 40_000
		_, err := downloadClient(t, nil).DownloadExportBlock(ctxT(t), b, &bytes.Buffer{})
		require.ErrorIs(t, err, wecom.ErrSize)
	})

	t.Run("GivesUpAfterAttempts", func(t *testing.T) {
		t.Parallel()
		b, s := newBlock(t, 64, &blockServer{cuts: 100})
		// 64 bytes: each cut delivers half of what is left, so progress stops at 63 bytes
		// (a 1-byte body cut in half delivers nothing).
		c := downloadClient(t, func(cfg *wecom.Config) { cfg.DownloadAttempts = 3 })
		_, err := c.DownloadExportBlock(ctxT(t), b, &bytes.Buffer{})
		require.Error(t, err)
		require.Less(t, len(s.seen()), 20)
	})

	t.Run("FileResumesAPartFromAnEarlierRun", func(t *testing.T) {
		t.Parallel()
		b, s := newBlock(t, 120_000, &blockServer{})
		path := filepath.Join(t.TempDir(), "block")
		require.NoError(t, os.WriteFile(path+".part", s.data[:70_000], 0o600))
		require.NoError(t, downloadClient(t, nil).DownloadExportBlockToFile(ctxT(t), b, path))
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, s.data, got)
		require.Equal(t, []string{"bytes=70000-"}, s.seen())
	})
}
