package mirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeadLetter is an item that could not be applied, kept for inspection and replay.
type DeadLetter struct {
	ID        int64
	CorpID    string
	StreamSeq uint64
	EventID   string
	Subject   string
	Reason    string
	// Payload is the message body as received.
	Payload    []byte
	At         time.Time
	ReplayedAt *time.Time
}

const deadLetterColumns = `id, corp_id, stream_seq, event_id, subject, reason, payload, at, replayed_at`

func scanDeadLetter(row pgx.Row) (DeadLetter, error) {
	var d DeadLetter
	var seq int64
	err := row.Scan(&d.ID, &d.CorpID, &seq, &d.EventID, &d.Subject, &d.Reason, &d.Payload, &d.At, &d.ReplayedAt)
	d.StreamSeq = uint64(seq)
	return d, err
}

// DeadLetters returns up to limit dead letters of corpID not yet replayed, oldest first.
func (s *Store) DeadLetters(ctx context.Context, corpID string, limit int) ([]DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deadLetterColumns+` FROM wecom.dead_letters
		WHERE corp_id = $1 AND replayed_at IS NULL ORDER BY id LIMIT $2`, corpID, limit)
	if err != nil {
		return nil, fmt.Errorf("listing dead letters of %s: %w", corpID, err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		d, err := scanDeadLetter(rows)
		if err != nil {
			return nil, fmt.Errorf("reading dead letters of %s: %w", corpID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing dead letters of %s: %w", corpID, err)
	}
	return out, nil
}

// DeadLetter returns the dead letter id, or an error wrapping ErrNotFound.
func (s *Store) DeadLetter(ctx context.Context, id int64) (DeadLetter, error) {
	d, err := scanDeadLetter(s.pool.QueryRow(ctx, `SELECT `+deadLetterColumns+` FROM wecom.dead_letters WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return DeadLetter{}, fmt.Errorf("reading dead letter %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("reading dead letter %d: %w", id, err)
	}
	return d, nil
}

// MarkReplayed records that dead letter id was replayed (re-applied through ApplyBatch
// with StreamSeq 0), so DeadLetters no longer lists it. It returns an error wrapping
// ErrNotFound for an unknown id; marking twice keeps the first time.
func (s *Store) MarkReplayed(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE wecom.dead_letters SET replayed_at = coalesce(replayed_at, now()) WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("marking dead letter %d replayed: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("marking dead letter %d replayed: %w", id, ErrNotFound)
	}
	return nil
}

// JobEvent is a batch_job_result event recorded for the job runner.
type JobEvent struct {
	CorpID    string
	JobID     string
	JobType   string
	ErrCode   int
	ErrMsg    string
	EventID   string
	StreamSeq uint64
	// At is when WeCom created the event (CreateTime).
	At time.Time
}

// JobEvent returns the latest recorded batch_job_result event for jobID of corpID, or an
// error wrapping ErrNotFound when none arrived (yet).
func (s *Store) JobEvent(ctx context.Context, corpID, jobID string) (JobEvent, error) {
	var j JobEvent
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT corp_id, job_id, job_type, err_code, err_msg, event_id, stream_seq, at
		FROM wecom.job_events WHERE corp_id = $1 AND job_id = $2 ORDER BY recorded_at DESC LIMIT 1`, corpID, jobID).
		Scan(&j.CorpID, &j.JobID, &j.JobType, &j.ErrCode, &j.ErrMsg, &j.EventID, &seq, &j.At)
	j.StreamSeq = uint64(seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return JobEvent{}, fmt.Errorf("reading job event %s of %s: %w", jobID, corpID, ErrNotFound)
	}
	if err != nil {
		return JobEvent{}, fmt.Errorf("reading job event %s of %s: %w", jobID, corpID, err)
	}
	return j, nil
}
