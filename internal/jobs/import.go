package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/wecomsync/wecomsync/internal/wecom"
)

// Import targets.
const (
	TargetUsers       = "users"
	TargetDepartments = "departments"
)

// ImportArgs is the River job of one import. The CSV to upload is in wecom.import_files
// (stored when the job is enqueued), or, for a scheduled import, fetched from Source when
// the job runs. The same file for the same corp and mode is not queued twice at once.
type ImportArgs struct {
	CorpID string `json:"corp_id" river:"unique"`
	Target string `json:"target" river:"unique"`
	Mode   string `json:"mode" river:"unique"`
	SHA256 string `json:"sha256,omitempty" river:"unique"`
	// Source is a file path or http(s) URL read at run time (scheduled imports).
	Source string `json:"source,omitempty" river:"unique"`
	// MaxDeleteShare and AllowDeletes are the deletion guard of a scheduled replace.
	MaxDeleteShare float64 `json:"max_delete_share,omitempty"`
	AllowDeletes   int     `json:"allow_deletes,omitempty"`
}

// Kind is the River job kind.
func (ImportArgs) Kind() string { return "wecom_import" }

// InsertOpts queues imports in Queue, unique while active.
func (ImportArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: uniqueActive}}
}

func (a ImportArgs) runKind() string { return "import_" + a.Target }

// importState is an import's resumable state in wecom.job_runs.state.
type importState struct {
	MediaID    string    `json:"media_id,omitempty"`
	UploadedAt time.Time `json:"uploaded_at,omitzero"`
	WeComJobID string    `json:"wecom_job_id,omitempty"`
	Waits      int       `json:"waits,omitempty"`
	Polls      int       `json:"polls,omitempty"`
}

// ImportSummary is the summary of a finished import.
type ImportSummary struct {
	WeComJobID string `json:"wecom_job_id"`
	Total      int    `json:"total"`
	OK         int    `json:"ok"`
	Failed     int    `json:"failed"`
	// ResultsLost is set when WeCom had already cleaned the job's results (40089).
	ResultsLost bool `json:"results_lost,omitempty"`
	// ReconcileJobID is the reconciliation queued to bring the mirror up to date.
	ReconcileJobID int64 `json:"reconcile_job_id,omitempty"`
}

// ImportOptions tune an import enqueued by a program.
type ImportOptions struct {
	// Mode is ModeSync or ModeReplace (members only).
	Mode string
	// Columns are the columns to write (sync imports update only these); nil = all.
	Columns []string
	// Guard is the deletion guard of a replace; the zero value means
	// DefaultMaxDeleteShare and no --allow-deletes.
	Guard *DeletionGuard
	// ExtraDepartments, see UserCheckOptions.
	ExtraDepartments []int64
}

// ImportUsers validates rows (see ValidateUsers; a *ValidationError lists every problem),
// applies the deletion guard of a replace, and queues the import: the returned id is the
// River job id (follow it with Runner.Wait or `worker jobs show`). Programs that generate
// rows use it instead of a CSV; it does not block on WeCom.
func (r *Runner) ImportUsers(ctx context.Context, corpID string, rows []UserRow, opts ImportOptions) (int64, error) {
	f := &UserFile{Columns: opts.Columns, Rows: rows}
	if f.Columns == nil {
		f.Columns = UserColumns
	}
	for i := range f.Rows {
		if f.Rows[i].Line == 0 {
			f.Rows[i].Line = i + 2 // as if in a CSV under a header line
		}
	}
	if err := r.CheckUsers(ctx, corpID, f, opts); err != nil {
		return 0, err
	}
	return r.EnqueueUsers(ctx, corpID, opts.Mode, f)
}

// CheckUsers validates f and, for a replace, applies the deletion guard. Errors: a
// *ValidationError, or the guard's refusal.
func (r *Runner) CheckUsers(ctx context.Context, corpID string, f *UserFile, opts ImportOptions) error {
	if opts.Mode != ModeSync && opts.Mode != ModeReplace {
		return fmt.Errorf("import mode must be sync or replace, got %q", opts.Mode)
	}
	probs, err := ValidateUsers(ctx, r.view, corpID, f, UserCheckOptions{ExtraDepartments: opts.ExtraDepartments})
	if err != nil {
		return err
	}
	if len(probs) > 0 {
		return &ValidationError{Problems: probs}
	}
	if opts.Mode == ModeReplace {
		g := DeletionGuard{MaxShare: DefaultMaxDeleteShare, AllowDeletes: -1}
		if opts.Guard != nil {
			g = *opts.Guard
		}
		p, err := PlanUsers(ctx, r.view, corpID, opts.Mode, f, 0)
		if err != nil {
			return err
		}
		if err := g.Check(p); err != nil {
			return err
		}
	}
	return nil
}

// EnqueueUsers queues an already validated member import. It returns the River job id
// (of the queued twin when the same file is already queued for the corp).
func (r *Runner) EnqueueUsers(ctx context.Context, corpID, mode string, f *UserFile) (int64, error) {
	var buf bytes.Buffer
	if err := WriteUsersCSV(&buf, f.Columns, f.Rows); err != nil {
		return 0, err
	}
	return r.enqueueImport(ctx, ImportArgs{CorpID: corpID, Target: TargetUsers, Mode: mode}, buf.Bytes(), len(f.Rows))
}

// EnqueueDepartments queues an already validated department import (replaceparty).
func (r *Runner) EnqueueDepartments(ctx context.Context, corpID string, rows []DepartmentRow) (int64, error) {
	var buf bytes.Buffer
	if err := WriteDepartmentsCSV(&buf, rows); err != nil {
		return 0, err
	}
	return r.enqueueImport(ctx, ImportArgs{CorpID: corpID, Target: TargetDepartments, Mode: ModeReplace}, buf.Bytes(), len(rows))
}

// enqueueImport inserts the River job, its job_runs row and its file in one transaction.
func (r *Runner) enqueueImport(ctx context.Context, a ImportArgs, csv []byte, rows int) (int64, error) {
	sum := sha256.Sum256(csv)
	a.SHA256 = hex.EncodeToString(sum[:])
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("queueing import: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	res, err := r.river.InsertTx(ctx, tx, a, nil)
	if err != nil {
		return 0, fmt.Errorf("queueing import: %w", err)
	}
	id := res.Job.ID
	if res.UniqueSkippedAsDuplicate {
		return id, tx.Commit(ctx)
	}
	if err := insertImportFile(ctx, tx, id, a, csv, rows); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("queueing import: %w", err)
	}
	return id, nil
}

func insertImportFile(ctx context.Context, tx pgx.Tx, id int64, a ImportArgs, csv []byte, rows int) error {
	sum := sha256.Sum256(csv)
	if _, err := tx.Exec(ctx, `INSERT INTO wecom.job_runs (river_job_id, corp_id, kind, total) VALUES ($1, $2, $3, $4)
		ON CONFLICT (river_job_id) DO NOTHING`, id, a.CorpID, a.runKind(), rows); err != nil {
		return fmt.Errorf("recording import: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO wecom.import_files (river_job_id, sha256, rows, csv) VALUES ($1, $2, $3, $4)
		ON CONFLICT (river_job_id) DO NOTHING`, id, hex.EncodeToString(sum[:]), rows, csv); err != nil {
		return fmt.Errorf("storing import file: %w", err)
	}
	return nil
}

type importWorker struct {
	river.WorkerDefaults[ImportArgs]
	r *Runner
}

// Work runs one step of an import: fetch/validate (scheduled), upload, submit (snoozing
// behind another running import on 302008), poll (snoozing with backoff, woken by the
// batch_job_result event), then store the per-row results, queue a reconciliation and
// complete the job in one transaction.
func (w *importWorker) Work(ctx context.Context, job *river.Job[ImportArgs]) error {
	r, a := w.r, job.Args
	kind := a.runKind()
	rn, err := r.ensureRun(ctx, job.ID, a.CorpID, kind)
	if err != nil {
		return err
	}
	var st importState
	if err := unmarshalState(rn.State, &st); err != nil {
		return r.fail(ctx, job.ID, kind, err)
	}
	cl, err := r.client(a.CorpID)
	if err != nil {
		return r.fail(ctx, job.ID, kind, err)
	}
	var csv []byte
	var rows int
	err = r.pool.QueryRow(ctx, `SELECT csv, rows FROM wecom.import_files WHERE river_job_id = $1`, job.ID).Scan(&csv, &rows)
	switch {
	case errors.Is(err, pgx.ErrNoRows) && a.Source != "":
		if csv, rows, err = r.prepareScheduled(ctx, job.ID, a); err != nil {
			if errors.Is(err, ErrInvalidFile) || errors.Is(err, errGuard) {
				return r.fail(ctx, job.ID, kind, err)
			}
			return r.noteError(ctx, job.ID, err)
		}
	case err != nil:
		return r.fail(ctx, job.ID, kind, fmt.Errorf("reading import file: %w", err))
	}

	// Upload (again, if the media_id may have expired: they last 3 days).
	if st.MediaID == "" || time.Since(st.UploadedAt) > 48*time.Hour && st.WeComJobID == "" {
		m, err := cl.UploadMedia(ctx, wecom.MediaFile, a.Target+".csv", bytes.NewReader(csv))
		if err != nil {
			return r.wecomErr(ctx, job.ID, kind, "uploading import file", err)
		}
		st.MediaID, st.UploadedAt = m.MediaID, time.Now()
		if err := r.save(ctx, job.ID, "uploaded", 0, int64(rows), st); err != nil {
			return err
		}
	}

	// Submit; one import runs at a time per corp, so queue behind a running one.
	if st.WeComJobID == "" {
		ij := wecom.ImportJob{MediaID: st.MediaID}
		submit := cl.SyncUsers
		switch {
		case a.Target == TargetDepartments:
			submit = cl.ReplaceParties
		case a.Mode == ModeReplace:
			submit = cl.ReplaceUsers
		}
		id, err := submit(ctx, ij)
		if errors.Is(err, wecom.ErrImportRunning) {
			st.Waits++
			if err := r.save(ctx, job.ID, "waiting for another import", 0, int64(rows), st); err != nil {
				return err
			}
			r.log.InfoContext(ctx, "another import is running; waiting", slog.Int64("job_id", job.ID), slog.String("corp_id", a.CorpID))
			return river.JobSnooze(r.backoff(st.Waits - 1))
		}
		if hasCode(err, 40007) { // invalid media_id
			st.MediaID = "" // expired or unknown: upload again next attempt
			_ = r.save(ctx, job.ID, "queued", 0, int64(rows), st)
			return r.noteError(ctx, job.ID, err)
		}
		if err != nil {
			return r.wecomErr(ctx, job.ID, kind, "submitting import", err)
		}
		st.WeComJobID = id
		if err := r.save(ctx, job.ID, "submitted", 0, int64(rows), st); err != nil {
			return err
		}
		r.log.InfoContext(ctx, "import submitted", slog.Int64("job_id", job.ID), slog.String("corp_id", a.CorpID),
			slog.String("wecom_job_id", id), slog.String("mode", a.Mode), slog.String("target", a.Target))
	}

	// Poll.
	res, err := cl.BatchGetResult(ctx, st.WeComJobID)
	lost := errors.Is(err, wecom.ErrJobCleaned)
	if err != nil && !lost {
		return r.wecomErr(ctx, job.ID, kind, "reading import result", err)
	}
	if !lost && !res.Done() {
		st.Polls++
		if err := r.save(ctx, job.ID, "running", int64(res.Percentage), 100, st); err != nil {
			return err
		}
		return river.JobSnooze(r.backoff(st.Polls - 1))
	}

	// Done: results, reconciliation and completion commit together.
	sum := ImportSummary{WeComJobID: st.WeComJobID, ResultsLost: lost}
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("finishing import: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	var results [][]any
	for i, u := range res.UserResults {
		results = append(results, []any{job.ID, i, u.UserID, nil, nil, u.ErrCode, u.ErrMsg})
	}
	for i, p := range res.PartyResults {
		results = append(results, []any{job.ID, i, nil, int64(p.PartyID), p.Action, p.ErrCode, p.ErrMsg})
	}
	for _, x := range results {
		sum.Total++
		if x[5].(int) == 0 {
			sum.OK++
		} else {
			sum.Failed++
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM wecom.import_results WHERE river_job_id = $1`, job.ID); err != nil {
		return fmt.Errorf("storing import results: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"wecom", "import_results"},
		[]string{"river_job_id", "seq", "userid", "partyid", "action", "errcode", "errmsg"}, pgx.CopyFromRows(results)); err != nil {
		return fmt.Errorf("storing import results: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM wecom.import_files WHERE river_job_id = $1`, job.ID); err != nil {
		return fmt.Errorf("dropping import file: %w", err)
	}
	rec, err := r.river.InsertTx(ctx, tx, ReconcileArgs{CorpID: a.CorpID}, nil)
	if err != nil {
		return fmt.Errorf("queueing reconcile after import: %w", err)
	}
	sum.ReconcileJobID = rec.Job.ID
	if _, err := tx.Exec(ctx, `INSERT INTO wecom.job_runs (river_job_id, corp_id, kind) VALUES ($1, $2, 'reconcile')
		ON CONFLICT (river_job_id) DO NOTHING`, rec.Job.ID, a.CorpID); err != nil {
		return fmt.Errorf("recording reconcile after import: %w", err)
	}
	if err := finish(ctx, tx, job, sum); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("finishing import: %w", err)
	}
	r.metrics.Jobs.WithLabelValues(kind, "done").Inc()
	r.log.InfoContext(ctx, "import done", slog.Int64("job_id", job.ID), slog.String("corp_id", a.CorpID),
		slog.String("wecom_job_id", st.WeComJobID), slog.Int("ok", sum.OK), slog.Int("failed", sum.Failed),
		slog.Bool("results_lost", lost), slog.Int64("reconcile_job_id", sum.ReconcileJobID))
	return nil
}

// wecomErr fails the job for a permanent WeCom error and returns a transient one for
// River to retry with backoff.
func (r *Runner) wecomErr(ctx context.Context, id int64, kind, doing string, err error) error {
	err = fmt.Errorf("%s: %w", doing, err)
	if permanent(err) {
		return r.fail(ctx, id, kind, err)
	}
	return r.noteError(ctx, id, err)
}

var errGuard = errors.New("deletion guard")

// prepareScheduled fetches, validates and stores the file of a scheduled import.
func (r *Runner) prepareScheduled(ctx context.Context, id int64, a ImportArgs) ([]byte, int, error) {
	data, err := fetchSource(ctx, a.Source)
	if err != nil {
		return nil, 0, err
	}
	var csv []byte
	var rows int
	var buf bytes.Buffer
	switch a.Target {
	case TargetDepartments:
		ds, probs, err := ParseDepartmentsCSV(data)
		if err != nil {
			return nil, 0, &ValidationError{Problems: []Problem{{Message: err.Error()}}}
		}
		probs = append(probs, ValidateDepartments(ds)...)
		if len(probs) > 0 {
			return nil, 0, &ValidationError{Problems: probs}
		}
		if err := WriteDepartmentsCSV(&buf, ds); err != nil {
			return nil, 0, err
		}
		rows = len(ds)
	default:
		f, probs, err := ParseUsersCSV(data)
		if err != nil {
			return nil, 0, &ValidationError{Problems: []Problem{{Message: err.Error()}}}
		}
		if len(probs) > 0 {
			return nil, 0, &ValidationError{Problems: probs}
		}
		g := DeletionGuard{MaxShare: a.MaxDeleteShare, AllowDeletes: -1}
		if g.MaxShare == 0 {
			g.MaxShare = DefaultMaxDeleteShare
		}
		if a.AllowDeletes > 0 {
			g.AllowDeletes = a.AllowDeletes
		}
		if err := r.CheckUsers(ctx, a.CorpID, f, ImportOptions{Mode: a.Mode, Guard: &g}); err != nil {
			if !errors.Is(err, ErrInvalidFile) {
				err = fmt.Errorf("%w: %w", errGuard, err)
			}
			return nil, 0, err
		}
		if err := WriteUsersCSV(&buf, f.Columns, f.Rows); err != nil {
			return nil, 0, err
		}
		rows = len(f.Rows)
	}
	csv = buf.Bytes()
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if err := insertImportFile(ctx, tx, id, a, csv, rows); err != nil {
		return nil, 0, err
	}
	return csv, rows, tx.Commit(ctx)
}

// fetchSource reads a scheduled import's file from a path or an http(s) URL (at most
// 20 MB, WeCom's upload limit).
func fetchSource(ctx context.Context, src string) ([]byte, error) {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, fmt.Errorf("fetching import file: %w", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetching import file: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetching import file: HTTP %d", resp.StatusCode)
		}
		return io.ReadAll(io.LimitReader(resp.Body, wecom.MaxMediaBytes))
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("reading import file: %w", err)
	}
	return data, nil
}

// hasCode reports whether err is a *wecom.Error with errcode code.
func hasCode(err error, code int) bool {
	var we *wecom.Error
	return errors.As(err, &we) && we.Code == code
}

func unmarshalState(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding job state: %w", err)
	}
	return nil
}
