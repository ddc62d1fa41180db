package wecom

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// Media is the answer of media/upload. MediaID is valid 3 days. CreatedAt is a string in
// the documented sample and a number elsewhere; both decode.
type Media struct {
	Type      string     `json:"type"`
	MediaID   string     `json:"media_id"`
	CreatedAt FlexString `json:"created_at"`
}

// Media types of media/upload.
const (
	MediaFile  = "file"
	MediaImage = "image"
	MediaVoice = "voice"
	MediaVideo = "video"
)

// MaxMediaBytes is the largest upload (a "file"; images and videos 10 MB, voice 2 MB).
const MaxMediaBytes = 20 << 20

var (
	epMediaUpload   = &endpoint{api: "media/upload", method: http.MethodPost, mode: retryIdempotent, maxBytes: 64 << 10}
	epSyncUser      = ep("batch/syncuser", http.MethodPost, retryResolve)
	epReplaceUser   = ep("batch/replaceuser", http.MethodPost, retryResolve)
	epReplaceParty  = ep("batch/replaceparty", http.MethodPost, retryResolve)
	epBatchResult   = ep("batch/getresult", http.MethodGet, retryIdempotent)
	epExportSimple  = ep("export/simple_user", http.MethodPost, retryIdempotent)
	epExportUser    = ep("export/user", http.MethodPost, retryIdempotent)
	epExportDept    = ep("export/department", http.MethodPost, retryIdempotent)
	epExportTagUser = ep("export/taguser", http.MethodPost, retryIdempotent)
	epExportResult  = ep("export/get_result", http.MethodGet, retryIdempotent)
)

// UploadMedia uploads a temporary media file (media/upload?type=) as the multipart part
// "media" with filename; typ is MediaFile for import CSVs. The content is read fully
// (at most MaxMediaBytes) so that a failed attempt can be repeated; a repeated upload
// only leaves an unused media_id behind, so it is retried like a read. Errors: *Error
// 44001 (empty), 40006 (≤5 bytes), 45001 (too large), 40004/40005 (type).
func (c *Client) UploadMedia(ctx context.Context, typ, filename string, content io.Reader) (Media, error) {
	data, err := io.ReadAll(io.LimitReader(content, MaxMediaBytes+1))
	if err != nil {
		return Media{}, fmt.Errorf("reading media %s: %w", filename, err)
	}
	if len(data) > MaxMediaBytes {
		return Media{}, fmt.Errorf("media %s is larger than %d bytes", filename, MaxMediaBytes)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	// WeCom's documented header also carries filelength.
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="media"; filename="%s"; filelength=%d`,
		escapeQuotes(filename), len(data)))
	h.Set("Content-Type", "application/octet-stream")
	pw, err := mw.CreatePart(h)
	if err != nil {
		return Media{}, fmt.Errorf("building media upload: %w", err)
	}
	_, _ = pw.Write(data)
	if err := mw.Close(); err != nil {
		return Media{}, fmt.Errorf("building media upload: %w", err)
	}
	var a struct {
		status
		Media
	}
	cl := &call{ep: epMediaUpload, query: url.Values{"type": {typ}}, raw: buf.Bytes(), rawType: mw.FormDataContentType()}
	if err := c.do(ctx, cl, &a); err != nil {
		return Media{}, err
	}
	return a.Media, nil
}

var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"")

func escapeQuotes(s string) string { return quoteEscaper.Replace(s) }

// JobCallback is the optional per-job callback of an import: the batch_job_result event
// goes there, encrypted with Token and EncodingAESKey.
type JobCallback struct {
	URL            string `json:"url"`
	Token          string `json:"token"`
	EncodingAESKey string `json:"encodingaeskey"`
}

// ImportJob describes an import: the media_id of the uploaded CSV, whether new members are
// invited (nil = WeCom's default, true; ignored by replaceparty) and an optional callback.
type ImportJob struct {
	MediaID  string       `json:"media_id"`
	ToInvite *bool        `json:"to_invite,omitempty"`
	Callback *JobCallback `json:"callback,omitempty"`
}

// Import job kinds.
const (
	JobSyncUser     = "sync_user"
	JobReplaceUser  = "replace_user"
	JobReplaceParty = "replace_party"
)

func (c *Client) submitImport(ctx context.Context, e *endpoint, j ImportJob) (string, error) {
	if e == epReplaceParty {
		j.ToInvite = nil
	}
	var a struct {
		status
		JobID string `json:"jobid"`
	}
	// No resolver: WeCom offers no way to find a job by its file, and a second submission
	// would run the import twice (or answer 302008). A lost answer is ErrUnknownOutcome;
	// the batch_job_result callback or a later reconciliation settles it.
	if err := c.do(ctx, &call{ep: e, body: j}, &a); err != nil {
		return "", err
	}
	return a.JobID, nil
}

// SyncUsers submits an incremental member import (batch/syncuser) and returns the jobid.
// Only one import runs at a time per corp: ErrImportRunning (302008). Not repeated once
// sent: a lost answer is ErrUnknownOutcome.
func (c *Client) SyncUsers(ctx context.Context, j ImportJob) (string, error) {
	return c.submitImport(ctx, epSyncUser, j)
}

// ReplaceUsers submits a full member import (batch/replaceuser): members not in the file
// are deleted (the job fails with 45026 when that would delete too many). Same rules as
// SyncUsers.
func (c *Client) ReplaceUsers(ctx context.Context, j ImportJob) (string, error) {
	return c.submitImport(ctx, epReplaceUser, j)
}

// ReplaceParties submits a full department import (batch/replaceparty). Same rules as
// SyncUsers.
func (c *Client) ReplaceParties(ctx context.Context, j ImportJob) (string, error) {
	return c.submitImport(ctx, epReplaceParty, j)
}

// Import job statuses (batch/getresult).
const (
	JobStarted = 1
	JobRunning = 2
	JobDone    = 3
)

// BatchResult is the answer of batch/getresult. Result is set once Status is JobDone:
// UserResults for sync_user/replace_user, PartyResults for replace_party.
type BatchResult struct {
	Status       int           `json:"status"`
	Type         string        `json:"type"`
	Total        int           `json:"total"`
	Percentage   int           `json:"percentage"`
	UserResults  []UserResult  `json:"-"`
	PartyResults []PartyResult `json:"-"`
}

// UserResult is one member row's outcome in an import.
type UserResult struct {
	UserID  string `json:"userid"`
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// PartyResult is one department row's outcome; Action is a bitmask: 1 created, 2
// renamed, 4 moved, 8 reordered.
type PartyResult struct {
	Action  int    `json:"action"`
	PartyID int    `json:"partyid"`
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// Done reports whether the job has finished.
func (r BatchResult) Done() bool { return r.Status == JobDone }

type batchResultAnswer struct {
	status
	Status     int    `json:"status"`
	Type       string `json:"type"`
	Total      int    `json:"total"`
	Percentage int    `json:"percentage"`
	// The result items differ by type; both shapes decode from the same objects.
	Result []struct {
		UserID  string `json:"userid"`
		Action  int    `json:"action"`
		PartyID int    `json:"partyid"`
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	} `json:"result"`
}

// BatchGetResult returns an import job's progress and, once done, its per-row results
// (batch/getresult). It does not wait; poll it (or wait for the batch_job_result callback).
// Errors: ErrNotFound (40088), ErrJobCleaned (40089: only the last 5 are kept).
func (c *Client) BatchGetResult(ctx context.Context, jobID string) (BatchResult, error) {
	var a batchResultAnswer
	if err := c.do(ctx, &call{ep: epBatchResult, query: url.Values{"jobid": {jobID}}}, &a); err != nil {
		return BatchResult{}, err
	}
	r := BatchResult{Status: a.Status, Type: a.Type, Total: a.Total, Percentage: a.Percentage}
	for _, it := range a.Result {
		if r.Type == JobReplaceParty {
			r.PartyResults = append(r.PartyResults, PartyResult{it.Action, it.PartyID, it.ErrCode, it.ErrMsg})
		} else {
			r.UserResults = append(r.UserResults, UserResult{it.UserID, it.ErrCode, it.ErrMsg})
		}
	}
	return r, nil
}

// WaitBatch polls batch/getresult every interval until the import job is done and returns
// its result. It blocks until then or until ctx ends.
func (c *Client) WaitBatch(ctx context.Context, jobID string, interval time.Duration) (BatchResult, error) {
	for {
		r, err := c.BatchGetResult(ctx, jobID)
		if err != nil {
			return BatchResult{}, err
		}
		if r.Done() {
			return r, nil
		}
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return BatchResult{}, fmt.Errorf("waiting for import job %s: %w", jobID, ctx.Err())
		}
	}
}
