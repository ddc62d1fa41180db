package emulator

// The async jobs extension: temporary media (media/upload), import jobs (batch/syncuser,
// batch/replaceuser, batch/replaceparty, batch/getresult) and export jobs (export/*,
// export/get_result, the download URLs). This file holds the shared job machinery: the
// configuration, the job lifecycle paced by the server clock, retention, the background
// ticker and the test hooks. See jobs_import.go, csv_import.go, media.go and export.go.
//
// Job lifecycle. A job of N rows (members/departments in the file, entities exported)
// takes max(JobsConfig.MinDuration, N/JobsConfig.RowsPerSecond) of server-clock time. For
// its first tenth it is "started" (import status 1 / export status 0, percentage 0), then
// "running" (status 2 / 1) with the percentage rising with the clock, and once its time is
// up the job is completed: an import applies the file to the directory, an export's files
// (generated in the background from the submission-time directory) are published. The
// completion happens on the first of: the background ticker (every TickInterval) noticing
// the job is due, a getresult/get_result call for it when it is due, Server.FinishJobs
// (POST /admin/jobs/finish), or at once with JobsConfig.Immediate. Then the
// batch_job_result callback is queued.
//
// Test hooks (no token; the admin endpoints answer JSON, or a plain-text HTTP 4xx):
//
//	POST /admin/jobs/finish                      Server.FinishJobs: complete every open job now
//	GET  /admin/jobs                             Server.Jobs: the known jobs and their progress
//	POST /admin/export/corrupt?jobid=J&index=N   Server.CorruptExportBlock: damage block N (0-based)
//	POST /admin/export/expire[?jobid=J]          Server.ExpireExportURLs: download URLs expire now
//
// Tests that need determinism either set JobsConfig.Immediate, or drive Config.Now and
// call getresult (a due job completes inside that call) or FinishJobs; no sleeps needed.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Defaults of JobsConfig.
const (
	DefaultJobRowsPerSecond = 2000
	DefaultJobMinDuration   = time.Second
	DefaultJobTickInterval  = 100 * time.Millisecond
)

const (
	keptImportJobs = 5              // "系统仅保存最近5次批量任务的结果" (40089)
	keptExportJobs = 20             // ASSUMPTION: not documented; older ones answer 40089
	exportURLTTL   = 2 * time.Hour  // download URLs are valid 2 hours (API-FACTS §5.2)
	mediaTTL       = 72 * time.Hour // media_id valid 3 days (API-FACTS §4.1)
)

// Job error codes (API-FACTS §4, §7).
const (
	CodeInvalidMediaKind   = 40004 // 不合法的媒体文件类型 (file format does not fit type)
	CodeInvalidMediaType   = 40005 // 不合法的type参数
	CodeInvalidFileSize    = 40006 // 不合法的文件大小 (5 bytes or less)
	CodeInvalidMediaID     = 40007 // unknown or expired media_id
	CodeInvalidCallbackURL = 40057 // bad job callback url/token/encodingaeskey
	CodeJobNotFound        = 40088
	CodeJobCleaned         = 40089
	CodeInvalidImportFile  = 40092
	CodeMissingMediaID     = 41006
	CodeEmptyMedia         = 44001
	CodeMediaTooLarge      = 45001
	CodeDeleteProtection   = 45026
	CodeDupUserID          = 302003
	CodeInvalidTree        = 302004
	CodeImportSystemError  = 302005
	CodeDupPartyID         = 302006
	CodeDupSiblingName     = 302007
	CodeImportRunning      = 302008
)

// JobsConfig configures the async import/export jobs. Zero values mean the defaults.
type JobsConfig struct {
	// RowsPerSecond is the simulated processing speed: a job of N rows takes
	// max(MinDuration, N/RowsPerSecond) of server-clock time. Default 2000.
	RowsPerSecond int
	// MinDuration is the shortest job. Default 1s.
	MinDuration time.Duration
	// Immediate completes every job inside the call that submits it (a test mode): the
	// first getresult answers status 3, the first export/get_result status 2.
	Immediate bool
	// Dir holds the export files. Default: a temporary directory, created on the first
	// export and removed by Close.
	Dir string
	// PublicURL is the base of export download URLs, e.g. "https://emu.example:9400".
	// Default: http(s)://<Host of the export/get_result request>.
	PublicURL string
	// TickInterval is how often the background ticker completes due jobs and removes
	// expired media and export files. Default 100ms.
	TickInterval time.Duration
}

func (c JobsConfig) withDefaults() JobsConfig {
	if c.RowsPerSecond == 0 {
		c.RowsPerSecond = DefaultJobRowsPerSecond
	}
	if c.MinDuration == 0 {
		c.MinDuration = DefaultJobMinDuration
	}
	if c.TickInterval == 0 {
		c.TickInterval = DefaultJobTickInterval
	}
	return c
}

func (c JobsConfig) validate() error {
	if c.RowsPerSecond < 0 {
		return fmt.Errorf("job rows per second must be positive, got %d", c.RowsPerSecond)
	}
	if c.MinDuration < 0 || c.TickInterval < 0 {
		return errors.New("job minimum duration and tick interval must not be negative")
	}
	return nil
}

func init() { registerExtension(newJobsExt) }

// jobsExt is the Extension serving media, import and export jobs for one Server.
type jobsExt struct {
	s      *Server
	cfg    JobsConfig
	sigKey []byte // signs download URLs

	mu      sync.Mutex
	jobs    map[string]*job
	imports []string // import job ids, oldest first (retention)
	exports []string // export job ids, oldest first (retention)
	running *job     // the import job in progress (302008)
	media   map[string]*mediaItem
	dir     string // export directory ("" until the first export)
	ownDir  bool

	genSem chan struct{} // one export generation at a time (the machine is small)
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// job is one import or export job. Fields after "mu-guarded" are guarded by jobsExt.mu.
type job struct {
	id     string
	typ    string // sync_user, replace_user, replace_party, export_user, ...
	export bool
	secret SecretKind
	total  int
	start  time.Time
	dur    time.Duration
	target *CallbackTarget // per-job callback (imports), nil = the configured one
	gen    *exportState    // exports: the background generation
	doneCh chan struct{}   // closed once the job is complete

	// work completes the job: it applies an import or waits for an export's files. It
	// runs once, without jobsExt.mu held.
	work func() jobOutcome

	// mu-guarded
	completing bool
	done       bool
	cleaned    bool
	removed    bool // export files deleted (URLs expired or job cleaned)
	finished   time.Time
	outcome    jobOutcome
	urlExpiry  time.Time // exports: finished + 2h, or earlier via ExpireExportURLs
}

// jobOutcome is the result of a completed job: the job-level errcode/errmsg, import
// per-row results, export blocks.
type jobOutcome struct {
	code   int
	msg    string
	result []any
	blocks []*exportBlock
}

func newJobsExt(s *Server) (Extension, error) {
	cfg := s.cfg.Jobs.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("validating jobs config: %w", err)
	}
	x := &jobsExt{s: s, cfg: cfg, sigKey: make([]byte, 32), jobs: map[string]*job{}, media: map[string]*mediaItem{},
		genSem: make(chan struct{}, 1)}
	_, _ = rand.Read(x.sigKey)
	x.ctx, x.cancel = context.WithCancel(context.Background())
	x.wg.Add(1)
	go x.tick()
	return x, nil
}

// Routes implements Extension.
func (x *jobsExt) Routes() []Route {
	return []Route{
		{Path: "/cgi-bin/media/upload", Method: post, Handle: x.mediaUpload},
		{Path: "/cgi-bin/batch/syncuser", Method: post, Allow: writeSecrets, Handle: x.batchSyncUser},
		{Path: "/cgi-bin/batch/replaceuser", Method: post, Allow: writeSecrets, Handle: x.batchReplaceUser},
		{Path: "/cgi-bin/batch/replaceparty", Method: post, Allow: writeSecrets, Handle: x.batchReplaceParty},
		{Path: "/cgi-bin/batch/getresult", Method: get, Handle: x.batchGetResult},
		{Path: "/cgi-bin/export/simple_user", Method: post, Handle: x.exportSimpleUser},
		{Path: "/cgi-bin/export/user", Method: post, Handle: x.exportUser},
		{Path: "/cgi-bin/export/department", Method: post, Handle: x.exportDepartment},
		{Path: "/cgi-bin/export/taguser", Method: post, Handle: x.exportTagUser},
		{Path: "/cgi-bin/export/get_result", Method: get, Handle: x.exportGetResult},
		{Path: exportDownloadPath, Method: get, NoAuth: true, Raw: x.exportDownload},
		{Path: "/admin/jobs", Method: get, NoAuth: true, Raw: x.adminJobs},
		{Path: "/admin/jobs/finish", Method: post, NoAuth: true, Raw: x.adminFinish},
		{Path: "/admin/export/corrupt", Method: post, NoAuth: true, Raw: x.adminCorrupt},
		{Path: "/admin/export/expire", Method: post, NoAuth: true, Raw: x.adminExpire},
	}
}

// Close implements Extension: it stops the ticker and any export generation and removes
// the temporary export directory.
func (x *jobsExt) Close(ctx context.Context) error {
	x.cancel()
	done := make(chan struct{})
	go func() { x.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stopping jobs: %w", ctx.Err())
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.ownDir && x.dir != "" {
		if err := os.RemoveAll(x.dir); err != nil {
			return fmt.Errorf("removing export directory: %w", err)
		}
	}
	return nil
}

func (x *jobsExt) tick() {
	defer x.wg.Done()
	t := time.NewTicker(x.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-x.ctx.Done():
			return
		case <-t.C:
			now := x.s.now()
			x.advance(now)
			x.sweep(now)
		}
	}
}

// newJob registers a job submitted now with total rows. work runs at completion.
func (x *jobsExt) newJob(typ string, export bool, secret SecretKind, total int, work func() jobOutcome) *job {
	dur := x.cfg.MinDuration
	if x.cfg.RowsPerSecond > 0 {
		dur = max(dur, time.Duration(float64(total)/float64(x.cfg.RowsPerSecond)*float64(time.Second)))
	}
	j := &job{id: newJobID(export), typ: typ, export: export, secret: secret, total: total, start: x.s.now(),
		dur: dur, work: work, doneCh: make(chan struct{})}
	x.jobs[j.id] = j
	if export {
		x.exports = x.retain(x.exports, j.id, keptExportJobs)
	} else {
		x.imports = x.retain(x.imports, j.id, keptImportJobs)
	}
	return j
}

// retain appends id and marks the jobs beyond keep as cleaned (results dropped, export
// files removed). Caller holds x.mu.
func (x *jobsExt) retain(ids []string, id string, keep int) []string {
	ids = append(ids, id)
	for len(ids) > keep {
		old := x.jobs[ids[0]]
		if !old.done {
			break // never clean a running job; it is cleaned after a later submission
		}
		old.cleaned = true
		x.removeFiles(old)
		old.outcome = jobOutcome{code: old.outcome.code, msg: old.outcome.msg}
		ids = ids[1:]
	}
	return ids
}

func newJobID(export bool) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b) // 43 characters, like WeCom's
	if export {
		return "jobid_" + id
	}
	return id
}

// lookup returns a job for a getresult call: 40088 unknown (or submitted by another
// secret, for exports), 40089 cleaned.
func (x *jobsExt) lookup(id string, export bool, secret SecretKind) (*job, error) {
	x.mu.Lock()
	j, ok := x.jobs[id]
	cleaned := ok && j.cleaned
	x.mu.Unlock()
	switch {
	case !ok || j.export != export || export && j.secret != secret:
		return nil, apiErr(CodeJobNotFound, "jobid not exist")
	case cleaned:
		return nil, apiErr(CodeJobCleaned, "batch job result has been cleaned")
	}
	return j, nil
}

// phase reports a job's progress at now: 0 started, 1 running, 2 done; and the percentage.
func (x *jobsExt) phase(j *job, now time.Time) (phase, pct int) {
	x.mu.Lock()
	done := j.done
	x.mu.Unlock()
	if done {
		return 2, 100
	}
	el := now.Sub(j.start)
	if el < j.dur/10 || el <= 0 {
		return 0, 0
	}
	pct = int(int64(el) * 100 / int64(j.dur))
	return 1, min(max(pct, 1), 99)
}

func (x *jobsExt) due(j *job, now time.Time) bool { return !now.Before(j.start.Add(j.dur)) }

// complete runs j's work once and records the outcome, then queues the batch_job_result
// callback. If another goroutine is completing j, it waits for it (until ctx ends).
func (x *jobsExt) complete(ctx context.Context, j *job) error {
	x.mu.Lock()
	if j.done || j.completing {
		x.mu.Unlock()
		select {
		case <-j.doneCh:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	j.completing = true
	x.mu.Unlock()

	out := j.work()
	now := x.s.now()
	x.mu.Lock()
	j.outcome, j.done, j.finished, j.work = out, true, now, nil
	j.urlExpiry = now.Add(exportURLTTL)
	if x.running == j {
		x.running = nil
	}
	x.mu.Unlock()
	close(j.doneCh)

	msg := out.msg
	if out.code == 0 {
		msg = "ok"
	}
	xml := BatchJobResultXML(x.s.cfg.CorpID, j.id, j.typ, out.code, msg, now)
	if err := x.s.SendCallback(j.target, xml); err != nil {
		x.s.log.Debug("batch_job_result not sent", "job_id", j.id, "err", err)
	}
	x.s.log.Info("emulator job completed", "job_id", j.id, "type", j.typ, "rows", j.total, "errcode", out.code)
	return nil
}

// advance completes every job due at now whose work would not block (an export still
// generating its files is left for the next tick).
func (x *jobsExt) advance(now time.Time) {
	x.mu.Lock()
	var due []*job
	for _, j := range x.jobs {
		if !j.done && !j.completing && x.due(j, now) {
			due = append(due, j)
		}
	}
	x.mu.Unlock()
	slices.SortFunc(due, func(a, b *job) int { return a.start.Compare(b.start) })
	for _, j := range due {
		if j.export && !j.generated() {
			continue
		}
		_ = x.complete(x.ctx, j)
	}
}

// finishAll completes every unfinished job now, waiting for export generation; it returns
// how many were completed.
func (x *jobsExt) finishAll(ctx context.Context) (int, error) {
	x.mu.Lock()
	var open []*job
	for _, j := range x.jobs {
		if !j.done {
			open = append(open, j)
		}
	}
	x.mu.Unlock()
	slices.SortFunc(open, func(a, b *job) int { return a.start.Compare(b.start) })
	for _, j := range open {
		if err := x.complete(ctx, j); err != nil {
			return 0, err
		}
	}
	return len(open), nil
}

// sweep removes expired media and the files of export jobs whose URLs expired.
func (x *jobsExt) sweep(now time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, m := range x.media {
		if !now.Before(m.created.Add(mediaTTL)) {
			delete(x.media, id)
		}
	}
	for _, id := range x.exports {
		if j := x.jobs[id]; j.done && !j.removed && !now.Before(j.urlExpiry) {
			x.removeFiles(j)
		}
	}
}

// ---- test hooks ----

// jobsExtension returns the jobs extension of s.
func (s *Server) jobsExtension() *jobsExt {
	for _, e := range s.exts {
		if x, ok := e.(*jobsExt); ok {
			return x
		}
	}
	return nil
}

// FinishJobs completes every unfinished import and export job now, whatever the clock
// says, and returns how many it completed. It blocks until each job's work is done (an
// import applied, an export's files written) and its batch_job_result callback queued.
// Also served as POST /admin/jobs/finish.
func (s *Server) FinishJobs() int {
	n, _ := s.jobsExtension().finishAll(context.Background())
	return n
}

// CorruptExportBlock damages block index (0-based, data_list order) of export job jobID:
// it flips the top bit of the last byte of the second-to-last AES block of the file, so
// the served bytes no longer match the md5 in data_list and the final PKCS#7 pad byte
// decrypts to a value > 32 (a padding error). Errors: unknown job, job not finished,
// index out of range, file gone. Also served as POST /admin/export/corrupt.
func (s *Server) CorruptExportBlock(jobID string, index int) error {
	return s.jobsExtension().corrupt(jobID, index)
}

// ExpireExportURLs makes the download URLs of export job jobID, or of every export job
// when jobID is "", expire now (downloads answer HTTP 403); it returns how many jobs it
// changed. Also served as POST /admin/export/expire.
func (s *Server) ExpireExportURLs(jobID string) int {
	return s.jobsExtension().expireURLs(jobID)
}

// JobInfo describes one job for GET /admin/jobs.
type JobInfo struct {
	JobID      string `json:"jobid"`
	Type       string `json:"type"`
	Total      int    `json:"total"`
	Done       bool   `json:"done"`
	Cleaned    bool   `json:"cleaned"`
	ErrCode    int    `json:"errcode"`
	Percentage int    `json:"percentage"`
}

// Jobs lists the jobs the emulator still knows, oldest first.
func (s *Server) Jobs() []JobInfo {
	x := s.jobsExtension()
	now := s.now()
	x.mu.Lock()
	js := make([]*job, 0, len(x.jobs))
	for _, j := range x.jobs {
		js = append(js, j)
	}
	x.mu.Unlock()
	slices.SortFunc(js, func(a, b *job) int { return a.start.Compare(b.start) })
	out := make([]JobInfo, len(js))
	for i, j := range js {
		_, pct := x.phase(j, now)
		x.mu.Lock()
		out[i] = JobInfo{JobID: j.id, Type: j.typ, Total: j.total, Done: j.done, Cleaned: j.cleaned,
			ErrCode: j.outcome.code, Percentage: pct}
		x.mu.Unlock()
	}
	return out
}

func (x *jobsExt) adminJobs(c *Call) {
	if c.R.Method != http.MethodGet {
		http.Error(c.W, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	x.s.writeJSON(c.W, x.s.Jobs())
}

func (x *jobsExt) adminFinish(c *Call) {
	if c.R.Method != http.MethodPost {
		http.Error(c.W, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	n, err := x.finishAll(c.R.Context())
	if err != nil {
		http.Error(c.W, err.Error(), http.StatusServiceUnavailable)
		return
	}
	x.s.writeJSON(c.W, map[string]int{"finished": n})
}

func (x *jobsExt) adminCorrupt(c *Call) {
	if c.R.Method != http.MethodPost {
		http.Error(c.W, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	idx := 0
	if v := c.Query("index"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			http.Error(c.W, "index must be a number", http.StatusBadRequest)
			return
		}
		idx = n
	}
	if err := x.corrupt(c.Query("jobid"), idx); err != nil {
		http.Error(c.W, err.Error(), http.StatusNotFound)
		return
	}
	x.s.writeJSON(c.W, map[string]any{"corrupted": true, "jobid": c.Query("jobid"), "index": idx})
}

func (x *jobsExt) adminExpire(c *Call) {
	if c.R.Method != http.MethodPost {
		http.Error(c.W, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	x.s.writeJSON(c.W, map[string]int{"expired": x.expireURLs(c.Query("jobid"))})
}

// sign returns the download signature of block index of job id.
func (x *jobsExt) sign(id string, index int) string {
	m := hmac.New(sha256.New, x.sigKey)
	m.Write([]byte(id + "|" + strconv.Itoa(index)))
	return hex.EncodeToString(m.Sum(nil))[:32]
}
