package mirror

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// pipe runs the statements of pgx.Batches as one pipeline whose results are read one at
// a time. Unlike conn.SendBatch, which encodes the whole batch before sending any of it,
// it sends what it has encoded whenever that reaches flushBytes, so Postgres executes one
// statement while the next is encoded (an apply batch's writes are tens of thousands of
// array elements: encoding them first kept Postgres idle for about a tenth of the batch's
// time); a small batch still goes in one write. The caller may work on the results read
// so far while Postgres runs the statements after them (the server sends the results of
// the first earlyResults statements as soon as it has each), and may send more
// statements (send) before reading the results of earlier ones.
//
// Each statement is prepared on the connection once (pgx caches the description by SQL
// text; the first use costs a round trip), before the pipeline starts: send takes only
// statements prepared then (ready). A connection configured for another query exec mode
// (exec or simple protocol, as behind PgBouncer in transaction mode) gets a plain
// conn.SendBatch instead, read the same way, and nothing more can be sent on it. The
// callbacks set with QueuedQuery.Query, QueryRow or Exec run in order as next reads the
// results. A pipe must be finished (finish) before the connection is used again.
type pipe struct {
	conn  *pgx.Conn
	p     *pgconn.Pipeline
	br    pgx.BatchResults // instead of p, for the other query exec modes
	stmts map[string]*pgconn.StatementDescription
	qs    []*pgx.QueuedQuery
	enc   paramEncoder
	sent  int   // statements sent
	asked int   // statements whose results the server was asked to send now
	read  int   // results read
	err   error // the first error; no more callbacks run after it
	done  bool
}

// flushBytes is how much encoded input a pipe holds back before sending it.
const flushBytes = 64 << 10

// startPipe prepares b's statements and the statements also lists on conn, and sends b's
// statements; if that fails, the pipe is finished and the error returned. The server
// sends the result of each of the first earlyResults statements as soon as it is ready;
// the rest come when they are read (next) or at the sync point (finish).
func startPipe(ctx context.Context, conn *pgx.Conn, b *pgx.Batch, earlyResults int, also ...string) (*pipe, error) {
	switch conn.Config().DefaultQueryExecMode {
	case pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe:
	default:
		return &pipe{conn: conn, br: conn.SendBatch(ctx, b), qs: b.QueuedQueries, sent: b.Len()}, nil
	}
	x := &pipe{conn: conn, stmts: make(map[string]*pgconn.StatementDescription, b.Len()+len(also))}
	for i, q := range b.QueuedQueries {
		if err := x.prepare(ctx, q.SQL); err != nil {
			return nil, fmt.Errorf("preparing statement %d of the batch: %w", i+1, err)
		}
	}
	for _, sql := range also {
		if err := x.prepare(ctx, sql); err != nil {
			return nil, err
		}
	}
	x.p = conn.PgConn().StartPipeline(ctx)
	if err := x.sendQueued(b.QueuedQueries, earlyResults); err != nil {
		_ = x.finish() // what was sent runs; the caller rolls back
		return nil, err
	}
	return x, nil
}

func (x *pipe) prepare(ctx context.Context, sql string) error {
	if x.stmts[sql] != nil {
		return nil
	}
	sd, err := x.conn.Prepare(ctx, sql, sql)
	if err != nil {
		return err
	}
	x.stmts[sql] = sd
	return nil
}

// ready reports whether send can take b: every statement of b was prepared when the pipe
// started, and the pipe is a pipeline.
func (x *pipe) ready(b *pgx.Batch) bool {
	if x.p == nil || x.done {
		return false
	}
	for _, q := range b.QueuedQueries {
		if x.stmts[q.SQL] == nil {
			return false
		}
	}
	return true
}

// send sends b's statements after those sent before; their results come after theirs.
// b must be ready. It returns the pipe's first error.
func (x *pipe) send(b *pgx.Batch) error {
	if !x.ready(b) {
		return errors.New("pipeline: the statements were not prepared when it started")
	}
	return x.sendQueued(b.QueuedQueries, 0)
}

func (x *pipe) sendQueued(qs []*pgx.QueuedQuery, earlyResults int) error {
	if x.err != nil {
		return x.err
	}
	held := 0 // bytes encoded and not sent yet
	for i, q := range qs {
		sd := x.stmts[q.SQL]
		if err := x.enc.build(x.conn.TypeMap(), sd, q.Arguments); err != nil {
			// What was sent runs in the transaction; the caller rolls it back (whatever
			// COMMIT the batch held was not sent).
			x.err = fmt.Errorf("encoding the arguments of statement %d of the batch: %w", len(x.qs)+1, err)
			break
		}
		// The Bind message copies the values; the pipeline keeps the result formats until
		// the result is read.
		x.p.SendQueryStatement(sd, x.enc.values, x.enc.formats, slices.Clone(x.enc.results))
		x.qs = append(x.qs, q)
		x.sent++
		held += len(x.enc.buf)
		flush := held >= flushBytes || i+1 == len(qs)
		if i < earlyResults {
			// In a pipeline the server holds results back until the sync point: ask
			// for this one as soon as it is ready.
			x.p.SendFlushRequest()
			x.asked = x.sent
			flush = flush || i+1 == earlyResults
		}
		if flush {
			held = 0
			if err := x.p.Flush(); err != nil {
				return x.broken(err)
			}
		}
	}
	return x.err
}

// broken ends a pipe whose connection failed (pgconn closed it).
func (x *pipe) broken(err error) error {
	x.done = true
	x.enc.release()
	_ = x.p.Close() // the connection is closed; Close reports the same error
	if x.err == nil {
		x.err = err
	}
	return x.err
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
	if x.asked <= i {
		// Not asked for yet: without this the server would hold it until the sync point.
		x.p.SendFlushRequest()
		x.asked = x.sent
		if err := x.p.Flush(); err != nil {
			return x.broken(err)
		}
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

// finish sends the sync point, reads the remaining results (running their callbacks until
// an error) and the sync point, and ends the pipeline. It returns the pipe's first error;
// after a failed statement it still leaves the connection usable (for a ROLLBACK) where
// it can.
func (x *pipe) finish() error {
	if x.done {
		return x.err
	}
	x.done = true
	x.enc.release()
	if x.br != nil {
		for x.err == nil && x.read < x.sent {
			_ = x.next()
		}
		if err := x.br.Close(); err != nil && x.err == nil {
			x.err = err
		}
		return x.err
	}
	if err := x.p.Sync(); err != nil {
		return x.broken(err)
	}
	x.asked = x.sent
	for x.err == nil && x.read < x.sent {
		_ = x.next()
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

// sendPipelined runs b on conn like conn.SendBatch(ctx, b).Close(), sending the statements
// as they are encoded (see pipe).
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

// paramEncoder encodes a statement's arguments as pgx.ExtendedQueryBuilder does (text for
// strings, otherwise the type's preferred format, the other one if that fails), into a
// buffer kept from statement to statement and, through encodeBufs, from batch to batch:
// the builder starts each statement with a new buffer and grows it by appending, which
// for a batch's writes (megabytes of array parameters) was 40% of what an apply
// allocated, and so of the garbage collector's work.
type paramEncoder struct {
	buf     []byte
	values  [][]byte
	formats []int16
	results []int16
}

// encodeBufs holds encode buffers between pipes.
var encodeBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxKeptEncodeBuf bounds the buffers kept in encodeBufs.
const maxKeptEncodeBuf = 16 << 20

func (e *paramEncoder) build(m *pgtype.Map, sd *pgconn.StatementDescription, args []any) error {
	if e.buf == nil {
		e.buf = (*encodeBufs.Get().(*[]byte))[:0]
		if e.buf == nil {
			// Never nil: an empty value appended to a nil buffer would read as NULL.
			e.buf = make([]byte, 0, 4096)
		}
	}
	e.buf, e.values, e.formats, e.results = e.buf[:0], e.values[:0], e.formats[:0], e.results[:0]
	if len(sd.ParamOIDs) != len(args) {
		return fmt.Errorf("%d arguments for %d parameters", len(args), len(sd.ParamOIDs))
	}
	for i, arg := range args {
		oid := sd.ParamOIDs[i]
		format := m.FormatCodeForOID(oid)
		switch arg.(type) {
		case string, *string:
			format = pgtype.TextFormatCode
		}
		pos := len(e.buf)
		buf, err := m.Encode(oid, format, arg, e.buf)
		if err != nil {
			if format == pgtype.TextFormatCode {
				format = pgtype.BinaryFormatCode
			} else {
				format = pgtype.TextFormatCode
			}
			var err2 error
			if buf, err2 = m.Encode(oid, format, arg, e.buf); err2 != nil {
				return fmt.Errorf("failed to encode args[%d]: %w", i, err)
			}
		}
		// Values point into the buffer; a later argument may move it (append), leaving
		// them in the old array, which stays as it was.
		if buf == nil {
			e.values = append(e.values, nil)
		} else {
			e.buf = buf
			e.values = append(e.values, buf[pos:len(buf):len(buf)])
		}
		e.formats = append(e.formats, format)
	}
	for _, f := range sd.Fields {
		e.results = append(e.results, m.FormatCodeForOID(f.DataTypeOID))
	}
	return nil
}

// release returns the buffer to encodeBufs.
func (e *paramEncoder) release() {
	if e.buf != nil && cap(e.buf) <= maxKeptEncodeBuf {
		b := e.buf[:0]
		encodeBufs.Put(&b)
	}
	e.buf, e.values = nil, nil
}
