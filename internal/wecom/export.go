package wecom

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wecomsync/wecomsync/internal/crypto"
)

// Export kinds (the path after export/).
const (
	ExportSimpleUser = "simple_user"
	ExportUser       = "user"
	ExportDepartment = "department"
	ExportTagUser    = "taguser"
)

// Block size bounds of export jobs (entities per file).
const (
	MinExportBlockSize = 10_000
	MaxExportBlockSize = 1_000_000
)

// ExportJob describes an export. EncodingAESKey (43 characters; crypto.NewKey makes a
// fresh one) encrypts the files; use a new key per job. BlockSize is the entities per file
// in [10^4, 10^6]; 0 = WeCom's default 10^6. TagID is required for ExportTagUser.
type ExportJob struct {
	Kind           string
	EncodingAESKey string
	BlockSize      int
	TagID          int
}

// Export job statuses (export/get_result).
const (
	ExportPending = 0
	ExportRunning = 1
	ExportDone    = 2
	ExportFailed  = 3
)

// ExportBlock is one file of an export: its download URL (valid 2 hours, Range
// supported), ciphertext size and lowercase hex MD5.
type ExportBlock struct {
	URL  string `json:"url"`
	Size int64  `json:"size"`
	MD5  string `json:"md5"`
}

// ExportResult is the answer of export/get_result; DataList is set once Status is
// ExportDone.
type ExportResult struct {
	Status   int           `json:"status"`
	DataList []ExportBlock `json:"data_list"`
}

// ErrExportFailed: export/get_result reported status 3 (the job failed).
var ErrExportFailed = errors.New("wecom: export job failed")

// SubmitExport submits an export job (export/simple_user|user|department|taguser) and
// returns the jobid. A repeated submission only wastes a job, so it is retried like a
// read. Errors: ErrNoPermission (48009 from a new IP for simple_user/user/department),
// ErrNotFound (40068 unknown tag), *Error 40058 (bad key or block size).
func (c *Client) SubmitExport(ctx context.Context, j ExportJob) (string, error) {
	var e *endpoint
	body := map[string]any{"encoding_aeskey": j.EncodingAESKey}
	if j.BlockSize != 0 {
		body["block_size"] = j.BlockSize
	}
	switch j.Kind {
	case ExportSimpleUser:
		e = epExportSimple
	case ExportUser:
		e = epExportUser
	case ExportDepartment:
		e = epExportDept
	case ExportTagUser:
		e = epExportTagUser
		body["tagid"] = j.TagID
	default:
		return "", fmt.Errorf("submitting export: unknown kind %q", j.Kind)
	}
	if j.BlockSize != 0 && (j.BlockSize < MinExportBlockSize || j.BlockSize > MaxExportBlockSize) {
		return "", fmt.Errorf("submitting export: block size must be within [%d, %d], got %d", MinExportBlockSize, MaxExportBlockSize, j.BlockSize)
	}
	var a struct {
		status
		JobID string `json:"jobid"`
	}
	if err := c.do(ctx, &call{ep: e, body: body}, &a); err != nil {
		return "", err
	}
	return a.JobID, nil
}

// ExportGetResult returns an export job's status and, when done, its blocks
// (export/get_result). It does not wait. Errors: ErrNotFound (40088, also for a job
// submitted with another secret), ErrJobCleaned (40089).
func (c *Client) ExportGetResult(ctx context.Context, jobID string) (ExportResult, error) {
	var a struct {
		status
		ExportResult
	}
	if err := c.do(ctx, &call{ep: epExportResult, query: url.Values{"jobid": {jobID}}}, &a); err != nil {
		return ExportResult{}, err
	}
	return a.ExportResult, nil
}

// WaitExport polls export/get_result every interval until the job is done and returns its
// result. It blocks until then or until ctx ends. Errors: ErrExportFailed (status 3), the
// errors of ExportGetResult.
func (c *Client) WaitExport(ctx context.Context, jobID string, interval time.Duration) (ExportResult, error) {
	for {
		r, err := c.ExportGetResult(ctx, jobID)
		if err != nil {
			return ExportResult{}, err
		}
		switch r.Status {
		case ExportDone:
			return r, nil
		case ExportFailed:
			return r, fmt.Errorf("export job %s: %w", jobID, ErrExportFailed)
		}
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ExportResult{}, fmt.Errorf("waiting for export job %s: %w", jobID, ctx.Err())
		}
	}
}

// DownloadExportBlock streams block b into w and verifies its size and MD5. When the
// connection breaks mid-body it resumes with an HTTP Range request from the last byte
// received (at most Config.DownloadAttempts requests without progress); a server that
// ignores Range is handled by skipping what was already written. Each request is
// abandoned when no byte arrives for Config.CallTimeout. It returns the bytes written.
// Errors: ErrURLExpired (HTTP 403/404/410: get fresh URLs with export/get_result),
// ErrChecksum, ErrSize. On error, what was written to w must be discarded.
func (c *Client) DownloadExportBlock(ctx context.Context, b ExportBlock, w io.Writer) (int64, error) {
	h := md5.New()
	n, err := c.download(ctx, b, w, 0, h)
	if err != nil {
		return n, err
	}
	return n, verifyBlock(b, n, h)
}

// DownloadExportBlockToFile downloads block b to path. It writes path+".part" first,
// resuming a .part left by an earlier, interrupted run (its bytes are re-hashed), and
// renames it to path once size and MD5 match. A block failing verification has its .part
// removed. Errors as DownloadExportBlock, and file errors.
func (c *Client) DownloadExportBlockToFile(ctx context.Context, b ExportBlock, path string) error {
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", part, err)
	}
	defer func() {
		if f != nil {
			_ = f.Close()
		}
	}()
	h := md5.New()
	have, err := io.Copy(h, f) // leaves the offset at the end, ready to append
	if err != nil {
		return fmt.Errorf("reading %s: %w", part, err)
	}
	if b.Size > 0 && have > b.Size {
		// Not a prefix of this block: start over.
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("truncating %s: %w", part, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("rewinding %s: %w", part, err)
		}
		h.Reset()
		have = 0
	}
	n, err := c.download(ctx, b, f, have, h)
	if err == nil {
		err = verifyBlock(b, n, h)
	}
	if err != nil {
		if errors.Is(err, ErrChecksum) || errors.Is(err, ErrSize) {
			_ = f.Close()
			f = nil
			_ = os.Remove(part)
		}
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", part, err)
	}
	if err := f.Close(); err != nil {
		f = nil
		return fmt.Errorf("closing %s: %w", part, err)
	}
	f = nil
	if err := os.Rename(part, path); err != nil {
		return fmt.Errorf("renaming %s: %w", part, err)
	}
	return nil
}

func verifyBlock(b ExportBlock, n int64, h hash.Hash) error {
	if b.Size > 0 && n != b.Size {
		return fmt.Errorf("export block: got %d bytes, want %d: %w", n, b.Size, ErrSize)
	}
	if b.MD5 != "" {
		if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, b.MD5) {
			return fmt.Errorf("export block: md5 %s, want %s: %w", got, b.MD5, ErrChecksum)
		}
	}
	return nil
}

// download writes the block's bytes from offset on to w (and h), resuming after broken
// connections; it returns the total offset reached (bytes of the block written, counting
// those before offset).
func (c *Client) download(ctx context.Context, b ExportBlock, w io.Writer, offset int64, h hash.Hash) (int64, error) {
	u, err := url.Parse(b.URL)
	if err != nil {
		return offset, fmt.Errorf("parsing export url: %w", err)
	}
	failures := 0
	var lastErr error
	for {
		if b.Size > 0 && offset == b.Size {
			return offset, nil
		}
		if failures >= c.cfg.DownloadAttempts {
			return offset, fmt.Errorf("downloading export block after %d failed requests: %w", failures, lastErr)
		}
		if failures > 0 {
			c.m.retry(c.cfg.CorpID, "export/download", "resume")
			c.log.InfoContext(ctx, "wecom export download resuming", "offset", offset, "size", b.Size, "err", lastErr)
			if !sleep(ctx, c.backoff(failures)) {
				return offset, fmt.Errorf("downloading export block: %w", errors.Join(ctx.Err(), lastErr))
			}
		}
		got, done, err := c.downloadOnce(ctx, u, w, offset, h)
		if got > 0 {
			failures = 0
		}
		offset += got
		if err == nil && done && (b.Size <= 0 || offset >= b.Size) {
			return offset, nil
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrURLExpired) || errors.Is(err, ErrSize) || errors.Is(err, errWrite) {
				return offset, err
			}
			var se *HTTPStatusError
			if errors.As(err, &se) && !se.Temporary() {
				return offset, err
			}
			lastErr = err
		} else {
			lastErr = io.ErrUnexpectedEOF
		}
		failures++
	}
}

var errWrite = errors.New("writing export block")

// downloadOnce makes one GET from offset. done is true when the body ended cleanly and,
// if the size is known, everything arrived.
func (c *Client) downloadOnce(ctx context.Context, u *url.URL, w io.Writer, offset int64, h hash.Hash) (int64, bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Idle watchdog: a body that stops flowing for CallTimeout is abandoned (and resumed).
	idle := time.AfterFunc(c.cfg.CallTimeout, cancel)
	defer idle.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, false, fmt.Errorf("building export download request: %w", redactURLError(err, u))
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.m.call(c.cfg.CorpID, "export/download", 0, true, time.Since(start))
		return 0, false, fmt.Errorf("downloading export block: %w", redactURLError(err, u))
	}
	defer resp.Body.Close()
	c.m.call(c.cfg.CorpID, "export/download", resp.StatusCode, false, time.Since(start))
	skip := int64(0)
	switch resp.StatusCode {
	case http.StatusOK:
		skip = offset // Range ignored: the body starts at 0
	case http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(offset, 10)+"-") {
			return 0, false, fmt.Errorf("downloading export block: Content-Range %q does not start at %d",
				resp.Header.Get("Content-Range"), offset)
		}
	case http.StatusRequestedRangeNotSatisfiable:
		// Nothing left past offset: the size check decides.
		return 0, true, nil
	case http.StatusForbidden, http.StatusNotFound, http.StatusGone:
		return 0, false, fmt.Errorf("downloading export block: %w: %w", ErrURLExpired,
			&HTTPStatusError{API: "export/download", Status: resp.StatusCode})
	default:
		return 0, false, &HTTPStatusError{API: "export/download", Status: resp.StatusCode}
	}
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, resp.Body, skip); err != nil {
			return 0, false, fmt.Errorf("skipping %d bytes already downloaded: %w", skip, err)
		}
	}
	buf := make([]byte, 256<<10)
	var got int64
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			idle.Reset(c.cfg.CallTimeout)
			if _, err := w.Write(buf[:n]); err != nil {
				return got, false, fmt.Errorf("%w: %w", errWrite, err)
			}
			h.Write(buf[:n])
			got += int64(n)
		}
		if rerr == io.EOF {
			return got, true, nil
		}
		if rerr != nil {
			return got, false, fmt.Errorf("reading export block at byte %d: %w", offset+got, rerr)
		}
	}
}

// NewExportDecrypter returns a reader of the plaintext JSON of one downloaded export block
// encrypted with encodingAESKey (see crypto.NewFileDecrypter: raw or base64 ciphertext,
// AES-256-CBC, PKCS#7 to 32 bytes). Errors: crypto.ErrAESKey for a bad key.
func NewExportDecrypter(r io.Reader, encodingAESKey string) (io.Reader, error) {
	key, err := crypto.DecodeAESKey(encodingAESKey)
	if err != nil {
		return nil, fmt.Errorf("decoding export key: %w", err)
	}
	return crypto.NewFileDecrypter(r, key), nil
}
