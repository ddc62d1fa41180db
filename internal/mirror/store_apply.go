package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wecomsync/wecomsync/internal/event"
)

// SourceCallback is the change-log source of changes applied from callbacks.
const SourceCallback = "callback"

// unparsedEvent is the event name internal/callback gives authentic callbacks whose XML
// was malformed (callback.UnparsedEvent; not imported to keep the dependency one-way).
const unparsedEvent = "unparsed"

// prepared is an item decoded before the transaction.
type prepared struct {
	kind    string // metrics label
	eventID string
	poison  string // reason, when the item can never apply
	ignored string // reason, when the item is not for the mirror
	user    *event.UserChange
	party   *event.PartyChange
	tag     *event.TagChange
	job     *event.BatchJob
}

func prepare(corpID string, it Item) prepared {
	m := it.Msg
	if m == nil {
		return prepared{kind: "undecodable", poison: "undecodable message body"}
	}
	p := prepared{eventID: m.ID, kind: m.Event}
	if m.ChangeType != "" {
		p.kind = m.ChangeType
	}
	if m.CorpID != corpID {
		p.poison = fmt.Sprintf("message of corp %q in the lane of corp %q", m.CorpID, corpID)
		return p
	}
	var invalid map[string]string
	var err error
	switch m.Event {
	case event.EventChangeContact:
		switch m.ChangeType {
		case event.ChangeCreateUser, event.ChangeUpdateUser, event.ChangeDeleteUser:
			p.user, err = m.User()
			if p.user != nil {
				invalid = p.user.Invalid
			}
		case event.ChangeCreateParty, event.ChangeUpdateParty, event.ChangeDeleteParty:
			p.party, err = m.Party()
			if p.party != nil {
				invalid = p.party.Invalid
			}
		case event.ChangeUpdateTag:
			p.tag, err = m.Tag()
			if p.tag != nil {
				invalid = p.tag.Invalid
			}
		default:
			p.kind = "other"
			p.poison = fmt.Sprintf("unknown contact change type %q", m.ChangeType)
			return p
		}
	case event.EventBatchJobResult:
		p.job, err = m.BatchJob()
	case unparsedEvent:
		p.poison = "callback XML could not be parsed"
		return p
	default:
		p.kind = "other"
		p.ignored = fmt.Sprintf("event %q is not for the mirror", m.Event)
		return p
	}
	if err != nil {
		p.poison = err.Error()
		return p
	}
	if len(invalid) > 0 {
		// Applying the rest would silently drop a change; keep it for a fixed replay.
		keys := make([]string, 0, len(invalid))
		for k := range invalid {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		p.poison = "invalid field values: " + strings.Join(keys, ", ")
	}
	return p
}

// eventKey is an event id as wecom.applied_events stores it: the 32 bytes its 64 hex
// digits spell, or the SHA-256 of any other id.
func eventKey(id string) []byte {
	if len(id) == 64 {
		if b, err := hex.DecodeString(id); err == nil {
			return b
		}
	}
	sum := sha256.Sum256([]byte(id))
	return sum[:]
}

// prepareAll decodes the items, in parallel for big batches (decoding is most of the
// CPU an apply costs the worker, and Postgres is idle meanwhile). Items prepared ahead
// (Item.Prep, for this corp) are taken as they are.
func prepareAll(corpID string, items []Item) []prepared {
	preps := make([]prepared, len(items))
	var todo []int
	for i, it := range items {
		if it.Prep != nil && it.Prep.corpID == corpID {
			preps[i] = it.Prep.p
		} else {
			todo = append(todo, i)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(todo)/128)
	if workers <= 1 {
		for _, i := range todo {
			preps[i] = prepare(corpID, items[i])
		}
		return preps
	}
	var wg sync.WaitGroup
	per := (len(todo) + workers - 1) / workers
	for lo := 0; lo < len(todo); lo += per {
		part := todo[lo:min(lo+per, len(todo))]
		wg.Go(func() {
			for _, i := range part {
				preps[i] = prepare(corpID, items[i])
			}
		})
	}
	wg.Wait()
	return preps
}

// ApplyBatch applies items of one corp, in order, in one transaction, after taking the
// corp's advisory lock. It returns one Result per item, in order. Items whose StreamSeq
// is not above the corp's last applied sequence (or above an earlier item's), or whose
// event id was already applied, are Duplicate and change nothing. Poison items are
// recorded in wecom.dead_letters in the same transaction and the rest still applies.
// Lookups needed by minimal or unseen events are made before the transaction: a first
// pass under the lock finds which are needed, then (if any) the transaction is rolled
// back, the lookups are made and the batch is applied again with their results. A
// returned error means nothing was committed; the caller retries the whole batch later.
// Calls for one corp must not overlap (a lane is sequential: a later batch committing
// first would make the earlier one Duplicate); calls for different corps may run
// concurrently. It blocks until the transaction ends or ctx is done.
func (s *Store) ApplyBatch(ctx context.Context, corpID string, items []Item) ([]Result, error) {
	if len(items) == 0 {
		return []Result{}, nil
	}
	start := time.Now()
	preps := prepareAll(corpID, items)
	var look *lookups
	speculate := true
	for {
		out, err := s.applyOnce(ctx, corpID, items, preps, look, look == nil && s.lookup != nil, speculate)
		if errors.Is(err, errApplyAgain) {
			s.appliedAgain.Add(1)
			speculate = false
			continue
		}
		if err != nil {
			return nil, err
		}
		if out.need != nil {
			if look, err = s.doLookups(ctx, corpID, out.need); err != nil {
				return nil, err
			}
			continue
		}
		for i, r := range out.results {
			s.metrics.Applied.WithLabelValues(preps[i].kind, string(r.Status)).Inc()
			if r.Status == Poison {
				s.metrics.DeadLetters.WithLabelValues(corpID).Inc()
				s.log.WarnContext(ctx, "dead-lettered an event", slog.String("corp_id", corpID),
					slog.Uint64("stream_seq", r.StreamSeq), slog.String("event_id", preps[i].eventID),
					slog.String("reason", r.Reason), slog.Int64("dead_letter_id", r.DeadLetterID))
			}
		}
		for _, c := range out.changes {
			s.metrics.Changes.WithLabelValues(c.entity, c.op, SourceCallback).Inc()
		}
		s.metrics.BatchSize.Observe(float64(len(items)))
		s.metrics.ApplyDuration.Observe(time.Since(start).Seconds())
		if s.opts.OnJobEvent != nil {
			for _, j := range out.jobs {
				s.opts.OnJobEvent(j)
			}
		}
		return out.results, nil
	}
}

// doLookups makes the lookups n lists, at most LookupConcurrency at a time.
func (s *Store) doLookups(ctx context.Context, corpID string, n *need) (*lookups, error) {
	look := &lookups{users: map[string]lookupOutcome{}, depts: map[int64]lookupOutcome{}}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, s.opts.LookupConcurrency)
	var wg sync.WaitGroup
	record := func(entity string, err error) (lookupOutcome, bool) {
		switch {
		case err == nil:
			s.metrics.Lookups.WithLabelValues(entity, "ok").Inc()
			return lookupOutcome{}, true
		case errors.Is(err, ErrNotFound):
			s.metrics.Lookups.WithLabelValues(entity, "not_found").Inc()
			return lookupOutcome{notFound: true}, true
		case errors.Is(err, ErrLookupNotPermitted):
			s.metrics.Lookups.WithLabelValues(entity, "not_permitted").Inc()
			return lookupOutcome{}, true
		}
		s.metrics.Lookups.WithLabelValues(entity, "error").Inc()
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		return lookupOutcome{}, false
	}
	for id := range n.users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			u, err := s.lookup.User(ctx, corpID, id)
			o, ok := record("user", err)
			if err == nil {
				if u == nil {
					o.notFound = true
				}
				o.user = u
			}
			if ok {
				mu.Lock()
				look.users[id] = o
				mu.Unlock()
			}
		}()
	}
	for id := range n.depts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := s.lookup.Department(ctx, corpID, id)
			o, ok := record("department", err)
			if err == nil {
				o.dept = d
			}
			if ok {
				mu.Lock()
				look.depts[id] = o
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("looking up records for corp %s: %w", corpID, firstErr)
	}
	return look, nil
}

// applyOutcome is what one attempt produced.
type applyOutcome struct {
	results []Result
	need    *need // lookups to make before applying again; nil when committed
	changes []changeRec
	jobs    []JobEvent
}

// lockKey is the advisory-lock key text of a corp's mirror; every writer of the corp's
// mirror tables (ApplyBatch, Sync) takes pg_advisory_xact_lock(hashtextextended(key, 0)).
func lockKey(corpID string) string { return "wecom.mirror:" + corpID }

func (s *Store) applyOnce(ctx context.Context, corpID string, items []Item, preps []prepared, look *lookups, wantMore, speculate bool) (applyOutcome, error) {
	var out applyOutcome
	// BEGIN travels with the reads and COMMIT with the writes (two round trips per batch
	// instead of four); a connection left in a transaction is rolled back here, or closed
	// by the pool on release if even that fails.
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return out, fmt.Errorf("acquiring a connection to apply %s: %w", corpID, err)
	}
	defer conn.Release()
	committed := false
	defer func() {
		if !committed {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()

	// What the batch touches, loaded under the lock.
	var userIDs []string
	var deptIDs, delDeptIDs, tagIDs []int64
	// The event ids the batch would apply: not poison, and a stream sequence above every
	// earlier one in the batch (the lane position is checked in SQL). Recording them is
	// how the load finds which were applied before (see below).
	var eventIDs [][]byte
	var eventSeqs []int64
	prefixMax := uint64(0)
	for i, p := range preps {
		seqOK := true
		if sq := items[i].StreamSeq; sq != 0 {
			seqOK = sq > prefixMax
			prefixMax = max(prefixMax, sq)
		}
		if seqOK && p.poison == "" && p.eventID != "" {
			eventIDs = append(eventIDs, eventKey(p.eventID))
			eventSeqs = append(eventSeqs, int64(items[i].StreamSeq))
		}
		switch {
		case p.poison != "":
		case p.user != nil:
			userIDs = append(userIDs, p.user.UserID)
			if v, ok := p.user.NewUserID.Get(); ok && v != "" {
				userIDs = append(userIDs, v)
			}
		case p.party != nil:
			deptIDs = append(deptIDs, p.party.ID)
			if p.kind == event.ChangeDeleteParty {
				delDeptIDs = append(delDeptIDs, p.party.ID)
			}
		case p.tag != nil:
			tagIDs = append(tagIDs, p.tag.TagID)
		}
	}
	a := newApplier(look, wantMore)
	// About two rows of ~600 bytes per item; growing the arena would copy it repeatedly.
	a.arena = make([]byte, 0, 1200*len(items))
	var lastSeq int64
	fresh := map[string]bool{} // ids recorded by this transaction: never applied before
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	// Plan each statement for its actual arrays: a cached generic plan guesses their size
	// and picks sequential scans of tables that only grow (applied_events, users).
	b.Queue("SET LOCAL plan_cache_mode = force_custom_plan")
	b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, lockKey(corpID))
	b.Queue(`SELECT last_stream_seq FROM wecom.lanes WHERE corp_id = $1`, corpID).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&lastSeq); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return nil
	})
	if len(userIDs) > 0 || len(delDeptIDs) > 0 {
		queueLoadUsers(b, a, corpID, userIDs, delDeptIDs)
	}
	if len(deptIDs) > 0 {
		queueLoadDepts(b, a, corpID, deptIDs)
	}
	if len(tagIDs) > 0 {
		queueLoadTags(b, a, corpID, tagIDs)
	}
	loads := b.Len()
	// Record the event ids, last: the ones inserted are those never applied before (the
	// first of several copies within the batch wins); the rest are duplicates. One
	// statement instead of a lookup now and an insert with the writes. The ids of events
	// that turn out not to apply are rolled back with the transaction (a failed batch, or
	// the first attempt of one that needs lookups).
	b.Queue(`INSERT INTO wecom.applied_events (corp_id, event_id, stream_seq)
		SELECT $1, e, s FROM unnest($2::bytea[], $3::int8[]) WITH ORDINALITY AS x(e, s, n)
		WHERE s = 0 OR s > coalesce((SELECT last_stream_seq FROM wecom.lanes WHERE corp_id = $1), 0)
		ORDER BY n
		ON CONFLICT DO NOTHING RETURNING event_id`, corpID, eventIDs, eventSeqs).
		Query(func(rows pgx.Rows) error {
			var id []byte
			_, err := pgx.ForEachRow(rows, []any{&id}, func() error { fresh[string(id)] = true; return nil })
			return err
		})
	// The server sends each load's result, and the ids recorded, as soon as it has them.
	commit := &pgx.Batch{}
	commit.Queue("COMMIT")
	lp, err := startPipe(ctx, conn.Conn(), b, loads+1, append([]string{"COMMIT"}, s.writeSQL.all()...)...)
	if err != nil {
		return out, fmt.Errorf("loading mirror state of %s: %w", corpID, err)
	}
	defer func() { _ = lp.finish() }() // before the ROLLBACK (deferred earlier)
	for range loads {
		if lp.next() != nil {
			break
		}
	}
	if err := lp.err; err != nil {
		return out, fmt.Errorf("loading mirror state of %s: %w", corpID, err)
	}
	// While Postgres records the event ids, apply in memory as if every one were new (an
	// event id applied before under another stream sequence is rare: a copy published
	// again after JetStream's duplicate window).
	assumed := make(map[string]bool, len(eventIDs))
	for j, id := range eventIDs {
		if eventSeqs[j] == 0 || eventSeqs[j] > lastSeq {
			assumed[string(id)] = true
		}
	}
	a.start()
	ap := a.applyItems(corpID, items, preps, lastSeq, maps.Clone(assumed))
	// And send the writes that gives at once (unless lookups come first), so Postgres
	// runs them right after recording the ids instead of waiting for this side to read
	// those, then build and encode the writes. If some id was applied before after all,
	// the transaction is rolled back and the batch applied again (errApplyAgain).
	var w *pgx.Batch
	created, early := 0, false
	if speculate && (!wantMore || a.need.empty()) {
		w, created = s.queueBatchWrites(corpID, a, &ap, items, preps)
		if lp.ready(w) {
			if err := lp.send(w); err != nil {
				return out, fmt.Errorf("writing mirror changes of %s: %w", corpID, err)
			}
			early = true
		}
	}
	if err := lp.next(); err != nil {
		return out, fmt.Errorf("recording the event ids of %s: %w", corpID, err)
	}
	if !sameKeys(assumed, fresh) {
		if early {
			return out, errApplyAgain
		}
		a = a.restart()
		ap = a.applyItems(corpID, items, preps, lastSeq, fresh)
		w = nil
	}
	out.results, out.jobs = ap.results, ap.jobs
	if wantMore && !a.need.empty() {
		out.need = &a.need
		return out, nil
	}
	if a.missed > 0 {
		s.log.WarnContext(ctx, "applied events without lookups the mirror state raced", slog.String("corp_id", corpID), slog.Int("count", a.missed))
	}

	// Write.
	if w == nil {
		w, created = s.queueBatchWrites(corpID, a, &ap, items, preps)
	}
	if early {
		err = lp.send(commit)
		if ferr := lp.finish(); err == nil {
			err = ferr
		}
	} else {
		if err := lp.finish(); err != nil {
			return out, fmt.Errorf("recording the event ids of %s: %w", corpID, err)
		}
		w.QueuedQueries = append(w.QueuedQueries, commit.QueuedQueries...)
		err = sendPipelined(ctx, conn.Conn(), w)
	}
	if err != nil {
		return applyOutcome{}, fmt.Errorf("writing mirror changes of %s: %w", corpID, err)
	}
	committed = true
	s.writeSQL.add(w)
	s.noteCreated(created)
	out.changes = a.changes
	return out, nil
}

// errApplyAgain is applyOnce's answer when the writes it sent assumed that events were
// new which had been applied before: the transaction is rolled back, and ApplyBatch
// applies the batch again without sending writes before it knows.
var errApplyAgain = errors.New("mirror: apply the batch again")

// queueBatchWrites returns the statements that write an applied batch (before COMMIT):
// the mirror rows, the change log, job events, dead letters (whose ids go to ap's
// results) and the lane position; and how many member rows it inserts.
func (s *Store) queueBatchWrites(corpID string, a *applier, ap *applied, items []Item, preps []prepared) (*pgx.Batch, int) {
	w := &pgx.Batch{}
	created := queueWrites(w, a, corpID)
	if len(a.changes) > 0 {
		queueChanges(w, corpID, SourceCallback, a.changes)
	}
	for _, j := range ap.jobs {
		w.Queue(`INSERT INTO wecom.job_events (corp_id, event_id, job_id, job_type, err_code, err_msg, stream_seq, at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
			corpID, j.EventID, j.JobID, j.JobType, j.ErrCode, j.ErrMsg, int64(j.StreamSeq), j.At)
	}
	for _, i := range ap.dead {
		it := items[i]
		payload := it.Raw
		if payload == nil && it.Msg != nil {
			payload = it.Msg.AppendJSON(nil)
		}
		if payload == nil {
			payload = []byte{}
		}
		subject := it.Subject
		if subject == "" && it.Msg != nil {
			subject = it.Msg.Subject()
		}
		r := &ap.results[i]
		w.Queue(`INSERT INTO wecom.dead_letters (corp_id, stream_seq, event_id, subject, reason, payload)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			corpID, int64(it.StreamSeq), preps[i].eventID, subject, preps[i].poison, payload).
			QueryRow(func(row pgx.Row) error { return row.Scan(&r.DeadLetterID) })
	}
	if ap.maxSeq > ap.lastSeq {
		w.Queue(`INSERT INTO wecom.lanes (corp_id, last_stream_seq) VALUES ($1, $2)
			ON CONFLICT (corp_id) DO UPDATE SET last_stream_seq = excluded.last_stream_seq, updated_at = now()`, corpID, ap.maxSeq)
	}
	return w, created
}

const userColumns = `u.userid, u.name, u.alias, u.position, u.mobile, u.email, u.biz_mail, u.gender, u.status,
	u.main_department, u.avatar, u.telephone, u.address, u.open_userid, u.extattr, u.unknown_fields`

// scanUser reads userColumns and the member's departments (ids, orders, leader flags).
func scanUser(rows pgx.Rows) (*userRow, error) {
	u := &userRow{}
	var gender *int16
	var status *int16
	var ext []byte
	var ids, orders []int64
	var leaders []bool
	err := rows.Scan(&u.UserID, &u.Name, &u.Alias, &u.Position, &u.Mobile, &u.Email, &u.BizMail, &gender, &status,
		&u.MainDepartment, &u.Avatar, &u.Telephone, &u.Address, &u.OpenUserID, &ext, &u.Unknown, &ids, &orders, &leaders)
	if gender != nil {
		u.Gender = ptr(int64(*gender))
	}
	if status != nil {
		u.Status = ptr(int64(*status))
	}
	if ext != nil {
		u.ExtAttr = ext
	}
	u.Unknown = normUnknown(u.Unknown)
	u.Departments = make([]membershipRow, len(ids))
	for i := range ids {
		u.Departments[i] = membershipRow{DepartmentID: ids[i], SortOrder: orders[i], IsLeader: leaders[i]}
	}
	return u, err
}

func queueLoadUsers(b *pgx.Batch, a *applier, corpID string, userIDs []string, delDeptIDs []int64) {
	// ARRAY(...) is an init plan evaluated once, so the scan uses the primary key; the
	// memberships come along as arrays ordered by department id.
	b.Queue(`SELECT `+userColumns+`, m.ids, m.orders, m.leaders FROM wecom.users u
		LEFT JOIN LATERAL (SELECT array_agg(d.department_id ORDER BY d.department_id) AS ids,
			array_agg(d.sort_order ORDER BY d.department_id) AS orders,
			array_agg(d.is_leader ORDER BY d.department_id) AS leaders
			FROM wecom.user_departments d WHERE d.corp_id = u.corp_id AND d.userid = u.userid) m ON true
		WHERE u.corp_id = $1 AND u.userid = ANY($2::text[] ||
			ARRAY(SELECT userid FROM wecom.user_departments WHERE corp_id = $1 AND department_id = ANY($3)))`,
		corpID, userIDs, delDeptIDs).Query(func(rows pgx.Rows) error {
		defer rows.Close()
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				return err
			}
			a.origUsers[u.UserID] = u
		}
		return rows.Err()
	})
}

func queueLoadDepts(b *pgx.Batch, a *applier, corpID string, ids []int64) {
	b.Queue(`SELECT id, name, name_en, parent_id, sort_order, unknown_fields FROM wecom.departments
		WHERE corp_id = $1 AND id = ANY($2)`, corpID, ids).Query(func(rows pgx.Rows) error {
		defer rows.Close()
		for rows.Next() {
			d := &deptRow{}
			if err := rows.Scan(&d.ID, &d.Name, &d.NameEn, &d.ParentID, &d.SortOrder, &d.Unknown); err != nil {
				return err
			}
			d.Unknown = normUnknown(d.Unknown)
			a.origDepts[d.ID] = d
		}
		return rows.Err()
	})
}

func queueLoadTags(b *pgx.Batch, a *applier, corpID string, ids []int64) {
	b.Queue(`SELECT tag_id, name FROM wecom.tags WHERE corp_id = $1 AND tag_id = ANY($2)`, corpID, ids).Query(func(rows pgx.Rows) error {
		var id int64
		var name *string
		_, err := pgx.ForEachRow(rows, []any{&id, &name}, func() error {
			a.origTags[id] = &tagRow{ID: id, Name: name, Users: map[string]struct{}{}, Depts: map[int64]struct{}{}}
			return nil
		})
		return err
	})
	b.Queue(`SELECT tag_id, userid FROM wecom.tag_users WHERE corp_id = $1 AND tag_id = ANY($2)`, corpID, ids).Query(func(rows pgx.Rows) error {
		var id int64
		var uid string
		_, err := pgx.ForEachRow(rows, []any{&id, &uid}, func() error {
			if t := a.origTags[id]; t != nil {
				t.Users[uid] = struct{}{}
			}
			return nil
		})
		return err
	})
	b.Queue(`SELECT tag_id, department_id FROM wecom.tag_departments WHERE corp_id = $1 AND tag_id = ANY($2)`, corpID, ids).Query(func(rows pgx.Rows) error {
		var id, d int64
		_, err := pgx.ForEachRow(rows, []any{&id, &d}, func() error {
			if t := a.origTags[id]; t != nil {
				t.Depts[d] = struct{}{}
			}
			return nil
		})
		return err
	})
}

// queueChanges appends the change rows in order and wakes the relay.
func queueChanges(w *pgx.Batch, corpID, source string, changes []changeRec) {
	n := len(changes)
	ent, key, op, ev := make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	// nil elements are NULL; []byte is sent as text without another copy.
	before, after := make([][]byte, n), make([][]byte, n)
	for i, c := range changes {
		ent[i], key[i], op[i] = c.entity, c.key, c.op
		if c.eventID != "" {
			ev[i] = ptr(c.eventID)
		}
		before[i], after[i] = c.before, c.after
	}
	w.Queue(`INSERT INTO wecom.changes (corp_id, entity, key, op, before, after, source, event_id)
		SELECT $1, e, k, o, b::json, a::json, $2, ev
		FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY AS x(e, k, o, b, a, ev, n)
		ORDER BY n`, corpID, source, ent, key, op, flat(before), flat(after), flat(ev))
	w.Queue(`INSERT INTO wecom.relay_cursors (corp_id) VALUES ($1) ON CONFLICT DO NOTHING`, corpID)
	w.Queue(`SELECT pg_notify('`+NotifyChannel+`', $1)`, corpID)
}

// rawArg returns the raw column value and mode of an accumulator (nil: none).
func rawArg(r *rawAcc) (*string, bool) {
	if r == nil {
		return nil, false
	}
	// Every part is valid JSON: message data the typed accessors decoded, a lookup's Raw
	// checked by validRaw, or a merge this package marshalled.
	return ptr(string(r.value())), r.replace
}

// applied is what applying a batch's items in memory gave.
type applied struct {
	results []Result
	dead    []int // poison items, in order
	lastSeq int64 // the lane position before the batch
	maxSeq  int64 // the lane position after the batch
	jobs    []JobEvent
}

// applyItems applies items in order to the loaded state. lastSeq is the lane position
// before the batch; fresh holds the ids of the events to apply (the rest are duplicates),
// and is consumed.
func (a *applier) applyItems(corpID string, items []Item, preps []prepared, lastSeq int64, fresh map[string]bool) applied {
	out := applied{results: make([]Result, len(items)), lastSeq: lastSeq, maxSeq: lastSeq}
	prevSeq := uint64(0)
	for i, it := range items {
		p := &preps[i]
		r := &out.results[i]
		r.StreamSeq = it.StreamSeq
		if it.StreamSeq != 0 {
			if int64(it.StreamSeq) <= lastSeq || it.StreamSeq <= prevSeq {
				r.Status, r.Reason = Duplicate, "stream sequence already applied"
				continue
			}
			prevSeq = it.StreamSeq
			out.maxSeq = max(out.maxSeq, int64(it.StreamSeq))
		}
		if p.poison != "" {
			r.Status, r.Reason = Poison, p.poison
			out.dead = append(out.dead, i)
			continue
		}
		if p.eventID != "" {
			k := string(eventKey(p.eventID))
			if !fresh[k] {
				r.Status, r.Reason = Duplicate, "event already applied"
				continue
			}
			delete(fresh, k) // a later copy in this batch is a duplicate
		}
		data := it.Msg.Data
		switch {
		case p.ignored != "":
			r.Status, r.Reason = Ignored, p.ignored
		case p.user != nil:
			r.Status = Applied
			a.applyUser(it.Msg.ChangeType, p.eventID, data, p.user)
		case p.party != nil:
			r.Status = Applied
			a.applyParty(it.Msg.ChangeType, p.eventID, data, p.party)
		case p.tag != nil:
			r.Status = Applied
			a.applyTag(p.eventID, p.tag)
		case p.job != nil:
			r.Status = Applied
			out.jobs = append(out.jobs, JobEvent{CorpID: corpID, JobID: p.job.JobID, JobType: p.job.JobType,
				ErrCode: p.job.ErrCode, ErrMsg: p.job.ErrMsg, EventID: p.eventID, StreamSeq: it.StreamSeq,
				At: time.Unix(it.Msg.CreateTime, 0).UTC()})
		}
	}
	return out
}

// sameKeys reports whether a and b hold the same keys.
func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
