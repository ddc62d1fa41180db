package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/wecomsync/wecomsync/internal/crypto"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

// What an export job exports (the `worker export` argument).
const (
	ExportUsers       = "users"        // export/user + export/department: members and departments
	ExportSimpleUsers = "simple-users" // export/simple_user + export/department
	ExportDepartments = "departments"  // export/department; members kept as they are
	ExportTag         = "tag"          // export/taguser of one tag; the rest kept as is
)

// Change-log sources of the merges.
const (
	SourceExport    = "export"
	SourceReconcile = "reconcile"
)

// ExportArgs is the River job of one export merged into the mirror.
type ExportArgs struct {
	CorpID string `json:"corp_id"`
	What   string `json:"what"`
	TagID  int    `json:"tag_id,omitempty"`
}

// Kind is the River job kind.
func (ExportArgs) Kind() string { return "wecom_export" }

// InsertOpts queues exports in Queue.
func (ExportArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: Queue} }

// ReconcileArgs is the River job of one reconciliation of a corp: one at a time per corp
// (a duplicate enqueued while one is queued or running is skipped).
type ReconcileArgs struct {
	CorpID string `json:"corp_id" river:"unique"`
}

// Kind is the River job kind.
func (ReconcileArgs) Kind() string { return "wecom_reconcile" }

// InsertOpts queues reconciliations in Queue, unique per corp while active.
func (ReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: uniqueActive}}
}

// exportPart is one WeCom export job of a wecomsync job.
type exportPart struct {
	Kind   string              `json:"kind"`
	JobID  string              `json:"jobid,omitempty"`
	Key    string              `json:"key,omitempty"`
	Blocks []wecom.ExportBlock `json:"blocks,omitempty"`
	// Done marks blocks downloaded and verified (files in the work dir).
	Done []bool `json:"done,omitempty"`
}

// exportState is an export's resumable state in wecom.job_runs.state.
type exportState struct {
	Parts     []*exportPart `json:"parts,omitempty"`
	Polls     int           `json:"polls,omitempty"`
	Resubmits int           `json:"resubmits,omitempty"`
	// Fallback is set when WeCom refused exports and a reconciliation reads the list
	// APIs instead.
	Fallback bool `json:"fallback,omitempty"`
	// Watermark is the mirror's change-log position recorded before the first export was
	// submitted: the snapshot is at least that new, so the merge leaves alone entities
	// that callbacks changed after it instead of putting back older values.
	Watermark     int64 `json:"watermark,omitempty"`
	HaveWatermark bool  `json:"have_watermark,omitempty"`
}

// ExportSummary is the summary of a finished export or reconciliation.
type ExportSummary struct {
	Source      string `json:"source"`
	Users       Counts `json:"users"`
	Departments Counts `json:"departments"`
	Tags        Counts `json:"tags"`
	// Fallback: the list APIs were read because WeCom refused the exports.
	Fallback bool    `json:"fallback,omitempty"`
	Seconds  float64 `json:"seconds"`
}

// Counts are the changes a merge made to one entity.
type Counts struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Deleted   int `json:"deleted"`
	Unchanged int `json:"unchanged"`
}

func countsOf(c mirror.Counts) Counts { return Counts(c) }

// EnqueueExport queues an export of what (ExportUsers, ...; tagID for ExportTag) merged
// into corpID's mirror, and returns the River job id.
func (r *Runner) EnqueueExport(ctx context.Context, corpID, what string, tagID int) (int64, error) {
	switch what {
	case ExportUsers, ExportSimpleUsers, ExportDepartments:
	case ExportTag:
		if tagID <= 0 {
			return 0, errors.New("a tag export needs a tag id")
		}
	default:
		return 0, fmt.Errorf("unknown export %q (want users, simple-users, departments or tag)", what)
	}
	return r.insert(ctx, ExportArgs{CorpID: corpID, What: what, TagID: tagID}, corpID, "export_"+what)
}

// EnqueueReconcile queues a reconciliation of corpID (or returns the one already queued
// or running).
func (r *Runner) EnqueueReconcile(ctx context.Context, corpID string) (int64, error) {
	return r.insert(ctx, ReconcileArgs{CorpID: corpID}, corpID, "reconcile")
}

func (r *Runner) insert(ctx context.Context, args river.JobArgs, corpID, kind string) (int64, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("queueing %s: %w", kind, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	res, err := r.river.InsertTx(ctx, tx, args, nil)
	if err != nil {
		return 0, fmt.Errorf("queueing %s: %w", kind, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO wecom.job_runs (river_job_id, corp_id, kind) VALUES ($1, $2, $3)
		ON CONFLICT (river_job_id) DO NOTHING`, res.Job.ID, corpID, kind); err != nil {
		return 0, fmt.Errorf("recording %s: %w", kind, err)
	}
	return res.Job.ID, tx.Commit(ctx)
}

type exportWorker struct {
	river.WorkerDefaults[ExportArgs]
	r *Runner
}

// Work runs an export job (see exportJob.step).
func (w *exportWorker) Work(ctx context.Context, job *river.Job[ExportArgs]) error {
	a := job.Args
	return stepExport(ctx, w.r, job, a.CorpID, "export_"+a.What, a.What, a.TagID, SourceExport)
}

type reconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	r *Runner
}

// Work runs a reconciliation: a user and a department export (or the list APIs when
// exports are refused) and tag/list + tag/get, merged into the mirror; what changed is
// drift, counted and logged.
func (w *reconcileWorker) Work(ctx context.Context, job *river.Job[ReconcileArgs]) error {
	return stepExport(ctx, w.r, job, job.Args.CorpID, "reconcile", ExportUsers, 0, SourceReconcile)
}

// partsFor lists the WeCom exports of what.
func partsFor(what string) []string {
	switch what {
	case ExportSimpleUsers:
		return []string{wecom.ExportSimpleUser, wecom.ExportDepartment}
	case ExportDepartments:
		return []string{wecom.ExportDepartment}
	case ExportTag:
		return []string{wecom.ExportTagUser}
	default:
		return []string{wecom.ExportUser, wecom.ExportDepartment}
	}
}

// stepExport runs one attempt of an export or reconciliation: submit each export with a
// fresh key, poll (snoozing), download every block to the work dir (resuming .part
// files; fresh URLs or a new export when they expired), then merge the files into the
// mirror in one transaction (mirror.Store.Sync) and complete the job. A corrupt block
// fails the job; nothing reaches the mirror.
func stepExport[T river.JobArgs](ctx context.Context, r *Runner, job *river.Job[T], corpID, kind, what string, tagID int, source string) error {
	start := time.Now()
	rn, err := r.ensureRun(ctx, job.ID, corpID, kind)
	if err != nil {
		return err
	}
	var st exportState
	if err := unmarshalState(rn.State, &st); err != nil {
		return r.fail(ctx, job.ID, kind, err)
	}
	cl, err := r.client(corpID)
	if err != nil {
		return r.fail(ctx, job.ID, kind, err)
	}
	dir := filepath.Join(r.cfg.WorkDir, fmt.Sprintf("job-%d", job.ID))
	if len(st.Parts) == 0 && !st.Fallback {
		for _, k := range partsFor(what) {
			st.Parts = append(st.Parts, &exportPart{Kind: k})
		}
	}
	save := func(phase string, done, total int64) error { return r.save(ctx, job.ID, phase, done, total, st) }

	if !st.Fallback && !st.HaveWatermark {
		if st.Watermark, err = r.cfg.Mirror.ChangeWatermark(ctx, corpID); err != nil {
			return r.noteError(ctx, job.ID, err)
		}
		st.HaveWatermark = true
		if err := save("starting", 0, 0); err != nil {
			return err
		}
	}
	if !st.Fallback {
		// Submit.
		for _, p := range st.Parts {
			if p.JobID != "" {
				continue
			}
			p.Key = crypto.NewKey()
			id, err := cl.SubmitExport(ctx, wecom.ExportJob{Kind: p.Kind, EncodingAESKey: p.Key, BlockSize: r.cfg.ExportBlockSize, TagID: tagID})
			switch {
			case errors.Is(err, wecom.ErrNoPermission) && source == SourceReconcile && r.cfg.Fallback != nil:
				r.log.WarnContext(ctx, "export refused; reconciling through the list APIs", slog.Int64("job_id", job.ID),
					slog.String("corp_id", corpID), slog.String("error", err.Error()))
				st = exportState{Fallback: true}
			case errors.Is(err, wecom.ErrNotFound) && p.Kind == wecom.ExportTagUser:
				// The tag is gone: merge its deletion.
				p.JobID = "-"
			case err != nil:
				return r.wecomErr(ctx, job.ID, kind, "submitting "+p.Kind+" export", err)
			default:
				p.JobID = id
			}
			if st.Fallback {
				break
			}
			if err := save("submitted", 0, 0); err != nil {
				return err
			}
		}
	}
	if !st.Fallback {
		// Poll.
		for _, p := range st.Parts {
			if p.Blocks != nil || p.JobID == "-" {
				continue
			}
			res, err := cl.ExportGetResult(ctx, p.JobID)
			if err != nil {
				if errors.Is(err, wecom.ErrJobCleaned) || errors.Is(err, wecom.ErrNotFound) {
					return r.resubmit(ctx, job.ID, kind, &st, p, err)
				}
				return r.wecomErr(ctx, job.ID, kind, "reading "+p.Kind+" export result", err)
			}
			switch res.Status {
			case wecom.ExportDone:
				p.Blocks = res.DataList
				if p.Blocks == nil {
					p.Blocks = []wecom.ExportBlock{}
				}
				p.Done = make([]bool, len(p.Blocks))
			case wecom.ExportFailed:
				return r.resubmit(ctx, job.ID, kind, &st, p, wecom.ErrExportFailed)
			default:
				st.Polls++
				if err := save("waiting for export", 0, 0); err != nil {
					return err
				}
				return river.JobSnooze(r.backoff(st.Polls - 1))
			}
			if err := save("exported", 0, 0); err != nil {
				return err
			}
		}
		// Download.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return r.noteError(ctx, job.ID, fmt.Errorf("creating %s: %w", dir, err))
		}
		var total, done int64
		for _, p := range st.Parts {
			for i, b := range p.Blocks {
				total += b.Size
				if p.Done[i] {
					done += b.Size
				}
			}
		}
		for _, p := range st.Parts {
			for i := range p.Blocks {
				if p.Done[i] {
					if _, err := os.Stat(blockPath(dir, p, i)); err == nil {
						continue
					}
					p.Done[i] = false // another machine downloaded it: fetch again here
					done -= p.Blocks[i].Size
				}
				err := cl.DownloadExportBlockToFile(ctx, p.Blocks[i], blockPath(dir, p, i))
				if errors.Is(err, wecom.ErrChecksum) || errors.Is(err, wecom.ErrSize) {
					// The .part is gone; one more try before calling the block corrupt.
					err = cl.DownloadExportBlockToFile(ctx, p.Blocks[i], blockPath(dir, p, i))
					if errors.Is(err, wecom.ErrChecksum) || errors.Is(err, wecom.ErrSize) {
						_ = os.RemoveAll(dir)
						return r.fail(ctx, job.ID, kind, fmt.Errorf("export block %d of %s export %s is corrupt: %w", i, p.Kind, p.JobID, err))
					}
				}
				if errors.Is(err, wecom.ErrURLExpired) {
					return r.refreshURLs(ctx, job.ID, kind, cl, &st, p)
				}
				if err != nil {
					return r.wecomErr(ctx, job.ID, kind, fmt.Sprintf("downloading block %d of %s export", i, p.Kind), err)
				}
				p.Done[i] = true
				done += p.Blocks[i].Size
				if err := save("downloading", done, total); err != nil {
					return err
				}
				if err := r.hook(ctx, job.ID, fmt.Sprintf("downloaded %s %d", p.Kind, i)); err != nil {
					return err
				}
			}
		}
	}

	// Merge.
	if err := save("merging", 0, 0); err != nil {
		return err
	}
	if err := r.hook(ctx, job.ID, "merging"); err != nil {
		return err
	}
	var src mirror.SyncSource
	if st.Fallback {
		s, err := r.cfg.Fallback(corpID)
		if err != nil {
			return r.fail(ctx, job.ID, kind, fmt.Errorf("reading the directory through the list APIs: %w", err))
		}
		src = &namedSource{SyncSource: s, name: source, tags: tagsFromAPI(cl)}
	} else {
		fs := r.fileSource(corpID, dir, what, tagID, source, st.Parts, cl)
		fs.watermark, fs.haveWatermark = st.Watermark, st.HaveWatermark
		src = fs
	}
	var seqBefore int64
	if source == SourceReconcile {
		if err := r.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM wecom.changes WHERE corp_id = $1`, corpID).Scan(&seqBefore); err != nil {
			return r.noteError(ctx, job.ID, fmt.Errorf("reading change log position: %w", err))
		}
	}
	rep, err := r.cfg.Mirror.Sync(ctx, corpID, src)
	if err != nil {
		if isCorrupt(err) {
			_ = os.RemoveAll(dir)
			return r.fail(ctx, job.ID, kind, fmt.Errorf("export file of %s cannot be decrypted or parsed (the mirror is unchanged): %w", corpID, err))
		}
		if errors.Is(err, mirror.ErrEmptySnapshot) {
			return r.fail(ctx, job.ID, kind, err)
		}
		return r.noteError(ctx, job.ID, fmt.Errorf("merging into the mirror: %w", err))
	}
	sum := ExportSummary{Source: source, Users: countsOf(rep.Users), Departments: countsOf(rep.Departments), Tags: countsOf(rep.Tags),
		Fallback: st.Fallback, Seconds: time.Since(start).Seconds()}
	// The merge committed on its own transaction (mirror.Store.Sync owns it); completing
	// the job afterwards is safe because a re-run merges the same snapshot again and
	// finds nothing to change, so the change log gets no duplicates.
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("finishing %s: %w", kind, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if err := finish(ctx, tx, job, sum); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("finishing %s: %w", kind, err)
	}
	_ = os.RemoveAll(dir)
	r.metrics.Jobs.WithLabelValues(kind, "done").Inc()
	if source == SourceReconcile {
		r.reportDrift(ctx, corpID, seqBefore, rep)
	}
	r.log.InfoContext(ctx, kind+" merged", slog.Int64("job_id", job.ID), slog.String("corp_id", corpID),
		slog.Any("users", rep.Users), slog.Any("departments", rep.Departments), slog.Any("tags", rep.Tags),
		slog.Bool("fallback", st.Fallback), slog.Duration("took", time.Since(start)))
	return nil
}

func blockPath(dir string, p *exportPart, i int) string {
	return filepath.Join(dir, p.Kind+"-"+strconv.Itoa(i)+".enc")
}

// resubmit starts part p over with a new export (at most 3 times per job).
func (r *Runner) resubmit(ctx context.Context, id int64, kind string, st *exportState, p *exportPart, cause error) error {
	st.Resubmits++
	if st.Resubmits > 3 {
		return r.fail(ctx, id, kind, fmt.Errorf("%s export kept failing: %w", p.Kind, cause))
	}
	r.log.WarnContext(ctx, "exporting again", slog.Int64("job_id", id), slog.String("kind", p.Kind), slog.String("cause", cause.Error()))
	*p = exportPart{Kind: p.Kind}
	if err := r.save(ctx, id, "exporting again", 0, 0, st); err != nil {
		return err
	}
	return river.JobSnooze(0)
}

// refreshURLs gets fresh download URLs of p from export/get_result; when they are
// expired too (or the job is gone), the export starts over.
func (r *Runner) refreshURLs(ctx context.Context, id int64, kind string, cl WeCom, st *exportState, p *exportPart) error {
	res, err := cl.ExportGetResult(ctx, p.JobID)
	if err != nil || res.Status != wecom.ExportDone || len(res.DataList) != len(p.Blocks) || sameURLs(res.DataList, p.Blocks) {
		if err == nil {
			err = wecom.ErrURLExpired
		}
		return r.resubmit(ctx, id, kind, st, p, err)
	}
	for i := range p.Blocks {
		p.Blocks[i].URL = res.DataList[i].URL
	}
	r.log.InfoContext(ctx, "export urls refreshed", slog.Int64("job_id", id), slog.String("kind", p.Kind))
	if err := r.save(ctx, id, "downloading", 0, 0, st); err != nil {
		return err
	}
	return river.JobSnooze(0)
}

func sameURLs(a, b []wecom.ExportBlock) bool {
	for i := range a {
		if a[i].URL != b[i].URL {
			return false
		}
	}
	return true
}

// isCorrupt reports whether err comes from undecryptable or unparsable export data.
func isCorrupt(err error) bool {
	var se *json.SyntaxError
	return errors.Is(err, crypto.ErrPadding) || errors.Is(err, crypto.ErrShortBuffer) ||
		errors.As(err, &se) || errors.Is(err, errExportFormat)
}

// reportDrift counts and logs what a reconciliation healed.
func (r *Runner) reportDrift(ctx context.Context, corpID string, seqBefore int64, rep mirror.SyncReport) {
	for entity, c := range map[string]mirror.Counts{"user": rep.Users, "department": rep.Departments, "tag": rep.Tags} {
		for op, n := range map[string]int{"created": c.Created, "updated": c.Updated, "deleted": c.Deleted} {
			if n > 0 {
				r.metrics.Drift.WithLabelValues(corpID, entity, op).Add(float64(n))
			}
		}
	}
	rows, err := r.pool.Query(ctx, `SELECT entity, key, op FROM wecom.changes WHERE corp_id = $1 AND seq > $2
		AND source = $3 ORDER BY seq LIMIT 1000`, corpID, seqBefore, SourceReconcile)
	if err != nil {
		r.log.WarnContext(ctx, "reading healed entities", slog.String("error", err.Error()))
		return
	}
	var entity, key, op string
	_, _ = pgx.ForEachRow(rows, []any{&entity, &key, &op}, func() error {
		r.log.InfoContext(ctx, "reconcile healed drift", slog.String("corp_id", corpID), slog.String("entity", entity),
			slog.String("key", key), slog.String("op", op))
		return nil
	})
}

// namedSource renames a SyncSource in the change log and supplies tags.
type namedSource struct {
	mirror.SyncSource
	name string
	tags func(ctx context.Context) iter.Seq2[*mirror.Tag, error]
}

func (s *namedSource) SourceName() string { return s.name }

func (s *namedSource) Tags(ctx context.Context) iter.Seq2[*mirror.Tag, error] {
	if s.tags != nil {
		return s.tags(ctx)
	}
	return s.SyncSource.Tags(ctx)
}

// tagsFromAPI reads every tag with tag/list + tag/get.
func tagsFromAPI(cl WeCom) func(ctx context.Context) iter.Seq2[*mirror.Tag, error] {
	return func(ctx context.Context) iter.Seq2[*mirror.Tag, error] {
		return func(yield func(*mirror.Tag, error) bool) {
			list, err := cl.ListTags(ctx)
			if err != nil {
				yield(nil, fmt.Errorf("listing tags: %w", err))
				return
			}
			for _, t := range list {
				g, err := cl.GetTag(ctx, t.TagID)
				if errors.Is(err, wecom.ErrNotFound) {
					continue // deleted meanwhile
				}
				if err != nil {
					yield(nil, fmt.Errorf("reading tag %d: %w", t.TagID, err))
					return
				}
				mt := &mirror.Tag{ID: int64(t.TagID), Name: t.TagName}
				for _, u := range g.UserList {
					mt.UserIDs = append(mt.UserIDs, u.UserID)
				}
				for _, d := range g.PartyList {
					mt.Departments = append(mt.Departments, int64(d))
				}
				if !yield(mt, nil) {
					return
				}
			}
		}
	}
}
