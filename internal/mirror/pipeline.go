package mirror

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// pipe runs the statements of a pgx.Batch as one pipeline whose results are read one at a
// time. Unlike conn.SendBatch, which encodes the whole batch before sending any of it, it
// sends what it has encoded whenever that reaches flushBytes, so Postgres executes one
// statement while the next is encoded (an apply batch's writes are tens of thousands of
// array elements: encoding them first kept Postgres idle for about a tenth of the batch's
// time); a small batch still goes in one write. And the caller may work on the results
// read so far while Postgres runs the statements after them: the server sends the
// results up to statement earlyResults as soon as it has them.
//
// Each statement is prepared on the connection once (pgx caches the description by SQL
// text; the first use costs a round trip). A connection configured for another query exec
// mode (exec or simple protocol, as behind PgBouncer in transaction mode) gets a plain
// conn.SendBatch instead, read the same way. The callbacks set with QueuedQuery.Query,
// QueryRow or Exec run in order as next reads the results. A pipe must be finished
// (finish) before the connection is used again.
type pipe struct {
	conn *pgx.Conn
	p    *pgconn.Pipeline
	br   pgx.BatchResults // instead of p, for the other query exec modes
	qs   []*pgx.QueuedQuery
	sent int   // statements sent
	read int   // results read
	err  error // the first error; no more callbacks run after it
	done bool
}

// flushBytes is how much encoded input a pipe holds back before sending it.
const flushBytes = 64 << 10

// startPipe sends b's statements on conn, followed by a sync point. The results of the
// first earlyResults statements are sent by the server as soon as they are ready (0: all
// results come with the sync point, as in one round trip).
func startPipe(ctx context.Context, conn *pgx.Conn, b *pgx.Batch, earlyResults int) (*pipe, error) {
	qs := b.QueuedQueries
	switch conn.Config().DefaultQueryExecMode {
	case pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe:
	default:
		return &pipe{conn: conn, br: conn.SendBatch(ctx, b), qs: qs, sent: len(qs)}, nil
	}
	sds := make([]*pgconn.StatementDescription, len(qs))
	for i, q := range qs {
		sd, err := conn.Prepare(ctx, q.SQL, q.SQL)
		if err != nil {
			return nil, fmt.Errorf("preparing statement %d of the batch: %w", i+1, err)
		}
		sds[i] = sd
	}
	x := &pipe{conn: conn, p: conn.PgConn().StartPipeline(ctx), qs: qs}
	var eqb pgx.ExtendedQueryBuilder
	held := 0 // bytes encoded and not sent yet
	for i, q := range qs {
		if err := eqb.Build(conn.TypeMap(), sds[i], q.Arguments); err != nil {
			// What was sent runs in the transaction; the caller rolls it back (whatever
			// COMMIT the batch held was not sent).
			x.err = fmt.Errorf("encoding the arguments of statement %d of the batch: %w", i+1, err)
			break
		}
		// The pipeline keeps the result formats until the result is read; the builder
		// reuses its slices for the next statement.
		x.p.SendQueryStatement(sds[i], eqb.ParamValues, eqb.ParamFormats, slices.Clone(eqb.ResultFormats))
		x.sent++
		for _, v := range eqb.ParamValues {
			held += len(v)
		}
		flush := held >= flushBytes
		if i+1 == earlyResults {
			// In a pipeline the server holds results back until the sync point: ask
			// for these now, or the caller would wait for the statements after them.
			x.p.SendFlushRequest()
			flush = true
		}
		if flush {
			held = 0
			if err := x.p.Flush(); err != nil {
				x.done = true
				_ = x.p.Close() // the connection is closed; Close reports the same error
				return nil, err
			}
		}
	}
	if err := x.p.Sync(); err != nil {
		x.done = true
		_ = x.p.Close()
		return nil, errors.Join(x.err, err)
	}
	return x, nil
}

// next reads the next statement's result and runs its callback. It returns the first
// error of the pipe (a failed statement makes the server skip the rest).
func (x *pipe) next() error {
	if x.err != nil {
		return x.err
	}
	if x.read >= x.sent {
		return errors.New("pipeline: no statement left to read")
	}
	i := x.read
	x.read++
	if x.br != nil {
		if fn := x.qs[i].Fn; fn != nil {
			x.err = fn(x.br)
		} else {
			_, x.err = x.br.Exec()
		}
		return x.err
	}
	res, err := x.p.GetResults()
	if err != nil {
		x.err = err
		return err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		x.err = fmt.Errorf("pipeline: statement %d of the batch gave %T instead of a result", i+1, res)
		return x.err
	}
	if fn := x.qs[i].Fn; fn != nil {
		x.err = fn(&pipeResult{typeMap: x.conn.TypeMap(), rr: rr})
	}
	if _, err := rr.Close(); err != nil && x.err == nil {
		x.err = err
	}
	return x.err
}

// finish reads the remaining results (running their callbacks until an error) and the
// sync point, and ends the pipeline. It returns the pipe's first error; after a failed
// statement it still leaves the connection usable (for a ROLLBACK) where it can.
func (x *pipe) finish() error {
	if x.done {
		return x.err
	}
	x.done = true
	for x.err == nil && x.read < x.sent {
		_ = x.next()
	}
	if x.br != nil {
		if err := x.br.Close(); err != nil && x.err == nil {
			x.err = err
		}
		return x.err
	}
	if x.err == nil {
		res, err := x.p.GetResults()
		switch {
		case err != nil:
			x.err = err
		default:
			if _, ok := res.(*pgconn.PipelineSync); !ok {
				x.err = fmt.Errorf("pipeline: expected the sync point, got %T", res)
			}
		}
	}
	// Close reads whatever is left up to the sync point (after an error, the server
	// skipped the rest).
	if err := x.p.Close(); err != nil && x.err == nil {
		x.err = err
	}
	var pgErr *pgconn.PgError
	if errors.As(x.err, &pgErr) && (pgErr.Code == "0A000" || pgErr.Code == "26000") {
		// A prepared statement went stale (a schema change altered its result type) or
		// is gone (DEALLOCATE, DISCARD): pgx's cache of them is per connection and this
		// pipe does not drop entries, so retire the connection; the pool makes a new one.
		_ = x.conn.Close(context.Background())
	}
	return x.err
}

// sendPipelined runs b on conn like conn.SendBatch(ctx, b).Close(), sending each statement
// as soon as it is encoded (see pipe).
func sendPipelined(ctx context.Context, conn *pgx.Conn, b *pgx.Batch) error {
	x, err := startPipe(ctx, conn, b, 0)
	if err != nil {
		return err
	}
	return x.finish()
}

// pipeResult is the pgx.BatchResults a QueuedQuery callback reads one pipeline result
// through.
type pipeResult struct {
	typeMap *pgtype.Map
	rr      *pgconn.ResultReader
}

func (r *pipeResult) Exec() (pgconn.CommandTag, error) { return r.rr.Close() }

func (r *pipeResult) Query() (pgx.Rows, error) {
	return pgx.RowsFromResultReader(r.typeMap, r.rr), nil
}

func (r *pipeResult) QueryRow() pgx.Row {
	return pipeRow{rows: pgx.RowsFromResultReader(r.typeMap, r.rr)}
}

func (r *pipeResult) Close() error {
	_, err := r.rr.Close()
	return err
}

func (r *pipeResult) Tx() pgx.Tx { return nil }

// pipeRow is the pgx.Row of QueryRow: the first row, pgx.ErrNoRows if there is none.
type pipeRow struct{ rows pgx.Rows }

func (r pipeRow) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
