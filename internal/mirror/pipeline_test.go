package mirror

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
)

func TestPipe(t *testing.T) {
	t.Parallel()
	_, bd := setup(t)
	ctx := context.Background()
	acquire := func(t *testing.T) *pgx.Conn {
		c, err := bd.pool.Acquire(ctx)
		require.NoError(t, err)
		t.Cleanup(c.Release)
		return c.Conn()
	}
	usable := func(t *testing.T, conn *pgx.Conn) {
		t.Helper()
		var one int
		require.NoError(t, conn.QueryRow(ctx, `SELECT 1`).Scan(&one))
		require.Equal(t, 1, one)
	}

	t.Run("CallbacksRunInOrderWithTheirResults", func(t *testing.T) {
		conn := acquire(t)
		var got []string
		b := &pgx.Batch{}
		b.Queue(`SELECT $1::int8 + 1`, int64(41)).QueryRow(func(row pgx.Row) error {
			var n int64
			require.NoError(t, row.Scan(&n))
			require.Equal(t, int64(42), n)
			got = append(got, "row")
			return nil
		})
		b.Queue(`SELECT x FROM generate_series(1, $1::int) x`, 3).Query(func(rows pgx.Rows) error {
			xs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
			require.NoError(t, err)
			require.Equal(t, []int32{1, 2, 3}, xs)
			got = append(got, "rows")
			return nil
		})
		b.Queue(`SELECT 1 WHERE false`).QueryRow(func(row pgx.Row) error {
			var n int
			require.ErrorIs(t, row.Scan(&n), pgx.ErrNoRows)
			got = append(got, "norow")
			return nil
		})
		b.Queue(`SELECT unnest($1::text[])`, flat([]*string{ptr("a"), nil})).Exec(func(ct pgconn.CommandTag) error {
			require.Equal(t, int64(2), ct.RowsAffected())
			got = append(got, "exec")
			return nil
		})
		b.Queue(`SELECT 1`) // no callback
		b.Queue(`SELECT $1::text IS NULL, $2::text IS NULL, $3::text, $4::text[]`, "", nil, "x", []string{""}).QueryRow(func(row pgx.Row) error {
			var emptyNull, nilNull bool
			var x string
			var arr []string
			require.NoError(t, row.Scan(&emptyNull, &nilNull, &x, &arr))
			require.False(t, emptyNull, "an empty string is not NULL")
			require.True(t, nilNull)
			require.Equal(t, "x", x)
			require.Equal(t, []string{""}, arr)
			got = append(got, "values")
			return nil
		})
		require.NoError(t, sendPipelined(ctx, conn, b))
		require.Equal(t, []string{"row", "rows", "norow", "exec", "values"}, got)
		usable(t, conn)
	})

	t.Run("StatementsLargerThanAFlushArriveWhole", func(t *testing.T) {
		conn := acquire(t)
		big := make([]string, 30000) // about 300 KB of parameters per statement
		for i := range big {
			big[i] = fmt.Sprintf("member%05d", i)
		}
		var sums []int64
		b := &pgx.Batch{}
		for range 3 {
			b.Queue(`SELECT count(*), sum(length(x)) FROM unnest($1::text[]) x`, big).QueryRow(func(row pgx.Row) error {
				var n, l int64
				if err := row.Scan(&n, &l); err != nil {
					return err
				}
				sums = append(sums, n, l)
				return nil
			})
		}
		require.NoError(t, sendPipelined(ctx, conn, b))
		require.Equal(t, []int64{30000, 330000, 30000, 330000, 30000, 330000}, sums)
		usable(t, conn)
	})

	t.Run("AFailedStatementStopsTheRestAndLeavesTheConnectionUsable", func(t *testing.T) {
		conn := acquire(t)
		_, err := conn.Exec(ctx, `CREATE TEMP TABLE pipe_t (n int)`)
		require.NoError(t, err)
		later := false
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(`INSERT INTO pipe_t VALUES (1)`)
		b.Queue(`SELECT 1 / $1::int`, 0)
		b.Queue(`INSERT INTO pipe_t VALUES (2)`).Exec(func(pgconn.CommandTag) error { later = true; return nil })
		b.Queue("COMMIT")
		err = sendPipelined(ctx, conn, b)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "%v", err)
		require.Equal(t, "22012", pgErr.Code) // division_by_zero
		require.False(t, later, "no callback after the failed statement")
		_, err = conn.Exec(ctx, "ROLLBACK")
		require.NoError(t, err)
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pipe_t`).Scan(&n))
		require.Zero(t, n, "the transaction was rolled back")
	})

	t.Run("AnArgumentThatCannotBeEncodedIsAnErrorAndNothingCommits", func(t *testing.T) {
		conn := acquire(t)
		_, err := conn.Exec(ctx, `CREATE TEMP TABLE pipe_u (n int)`)
		require.NoError(t, err)
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(`INSERT INTO pipe_u VALUES (1)`)
		b.Queue(`INSERT INTO pipe_u VALUES ($1::int)`, struct{ X int }{1})
		b.Queue("COMMIT")
		err = sendPipelined(ctx, conn, b)
		require.ErrorContains(t, err, "encoding the arguments of statement 3")
		_, err = conn.Exec(ctx, "ROLLBACK")
		require.NoError(t, err)
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pipe_u`).Scan(&n))
		require.Zero(t, n)
	})

	t.Run("ResultsReadSoFarAreAvailableBeforeTheRestFinish", func(t *testing.T) {
		conn := acquire(t)
		var first int
		var second bool
		b := &pgx.Batch{}
		b.Queue(`SELECT 7`).QueryRow(func(row pgx.Row) error { return row.Scan(&first) })
		b.Queue(`SELECT true`).QueryRow(func(row pgx.Row) error { return row.Scan(&second) })
		x, err := startPipe(ctx, conn, b, 1)
		require.NoError(t, err)
		require.NoError(t, x.next())
		require.Equal(t, 7, first)
		require.False(t, second, "the second result is not read yet")
		require.NoError(t, x.finish())
		require.True(t, second)
		require.NoError(t, x.finish(), "finish is idempotent")
		usable(t, conn)
	})

	t.Run("MoreStatementsFollowBeforeTheEarlierResultsAreRead", func(t *testing.T) {
		conn := acquire(t)
		_, err := conn.Exec(ctx, `CREATE TEMP TABLE pipe_m (n int)`)
		require.NoError(t, err)
		var got []int64
		scan := func(row pgx.Row) error {
			var n int64
			if err := row.Scan(&n); err != nil {
				return err
			}
			got = append(got, n)
			return nil
		}
		insert := `INSERT INTO pipe_m VALUES ($1::int)`
		commit := "COMMIT"
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(`SELECT 1::int8`).QueryRow(scan)
		b.Queue(`SELECT count(*) FROM pipe_m`).QueryRow(scan) // never asked for early
		x, err := startPipe(ctx, conn, b, 2, insert, commit)
		require.NoError(t, err)
		require.NoError(t, x.next())
		require.NoError(t, x.next())
		require.Equal(t, []int64{1}, got)

		more := &pgx.Batch{}
		more.Queue(insert, 5)
		more.Queue(`SELECT 2::int8`).QueryRow(scan)
		require.False(t, x.ready(more), "SELECT 2 was not prepared when the pipe started")
		more = &pgx.Batch{}
		more.Queue(insert, 5)
		require.True(t, x.ready(more))
		require.NoError(t, x.send(more))
		// The count was sent before the insert: its result is asked for as it is read.
		require.NoError(t, x.next())
		require.Equal(t, []int64{1, 0}, got)
		end := &pgx.Batch{}
		end.Queue(commit)
		require.NoError(t, x.send(end))
		require.NoError(t, x.finish())
		require.False(t, x.ready(end), "a finished pipe takes nothing more")
		require.Error(t, x.send(end))
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT sum(n) FROM pipe_m`).Scan(&n))
		require.Equal(t, 5, n, "the statements sent later ran in the same transaction, committed")
	})

	t.Run("AStaleStatementRetiresTheConnection", func(t *testing.T) {
		conn := acquire(t)
		_, err := conn.Exec(ctx, `CREATE TEMP TABLE pipe_s (n int)`)
		require.NoError(t, err)
		b := &pgx.Batch{}
		b.Queue(`SELECT * FROM pipe_s`)
		require.NoError(t, sendPipelined(ctx, conn, b))
		_, err = conn.Exec(ctx, `ALTER TABLE pipe_s ADD COLUMN m int`) // the result type changes
		require.NoError(t, err)
		b = &pgx.Batch{}
		b.Queue(`SELECT * FROM pipe_s`)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(sendPipelined(ctx, conn, b), &pgErr))
		require.Equal(t, "0A000", pgErr.Code) // cached plan must not change result type
		require.True(t, conn.IsClosed(), "the pool replaces the connection")
	})

	t.Run("OtherQueryExecModesUseAPlainBatch", func(t *testing.T) {
		for _, mode := range []string{"exec", "simple_protocol"} {
			cfg, err := pgx.ParseConfig(pgtest.URL(t))
			require.NoError(t, err)
			cfg.Database = bd.pool.Config().ConnConfig.Database
			cfg.DefaultQueryExecMode, _ = map[string]pgx.QueryExecMode{"exec": pgx.QueryExecModeExec,
				"simple_protocol": pgx.QueryExecModeSimpleProtocol}[mode]
			conn, err := pgx.ConnectConfig(ctx, cfg)
			require.NoError(t, err)
			var n int64
			b := &pgx.Batch{}
			b.Queue(`SELECT $1::int8 * 2`, int64(21)).QueryRow(func(row pgx.Row) error { return row.Scan(&n) })
			b.Queue(`SELECT 1`)
			x, err := startPipe(ctx, conn, b, 1)
			require.NoError(t, err)
			require.Nil(t, x.p, mode)
			require.False(t, x.ready(b), "nothing more can be sent on a plain batch")
			require.NoError(t, x.next())
			require.Equal(t, int64(42), n, mode)
			require.NoError(t, x.finish())
			usable(t, conn)
			require.NoError(t, conn.Close(ctx))
		}
	})

	t.Run("ACallbackErrorIsReturned", func(t *testing.T) {
		conn := acquire(t)
		boom := errors.New("boom")
		b := &pgx.Batch{}
		b.Queue(`SELECT 1`).QueryRow(func(pgx.Row) error { return boom })
		b.Queue(`SELECT 2`)
		require.ErrorIs(t, sendPipelined(ctx, conn, b), boom)
		usable(t, conn)
	})
}

func TestParamEncoderKeepsEmptyApartFromNull(t *testing.T) {
	t.Parallel()
	sd := &pgconn.StatementDescription{ParamOIDs: []uint32{pgtype.TextOID, pgtype.TextOID, pgtype.Int8OID}}
	var e paramEncoder
	e.buf = []byte(nil) // as a new buffer from encodeBufs is
	require.NoError(t, e.build(pgtype.NewMap(), sd, []any{"", nil, int64(7)}))
	require.NotNil(t, e.values[0], "the empty string")
	require.Empty(t, e.values[0])
	require.Nil(t, e.values[1], "NULL")
	require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 7}, e.values[2])
	require.Equal(t, []int16{pgtype.TextFormatCode, pgtype.TextFormatCode, pgtype.BinaryFormatCode}, e.formats)
	e.release()
	require.ErrorContains(t, e.build(pgtype.NewMap(), sd, []any{"x"}), "1 arguments for 3 parameters")
	e.release()
}
