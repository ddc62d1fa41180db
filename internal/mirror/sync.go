package mirror

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SourceSync is the default change-log source of Sync.
const SourceSync = "sync"

// syncChunk is how many records are buffered before each COPY, bounding Sync's memory.
const syncChunk = 2000

// ErrEmptySnapshot is returned by Sync for a snapshot without departments: WeCom always
// has the root department, so such a snapshot is a broken source, and merging it would
// delete the whole mirror.
var ErrEmptySnapshot = errors.New("snapshot has no departments")

// Sync merges src, a complete view of corpID's directory, into the mirror in one
// transaction under the corp's advisory lock: records are copied into temporary staging
// tables with COPY (in chunks, so memory stays bounded whatever the directory's size),
// then merged with set-based statements. Entities missing from the view are deleted
// (tags only when src provides tags; a deleted member's or department's tag memberships
// go with it). The source is read without holding the corp's lock (event lanes keep
// applying meanwhile); entities that events changed after the read began (per the change
// log) are newer than the snapshot and are left as the events made them. A field a record lists as Unknown keeps the mirror's value when the mirror
// knows it, and stays NULL and listed in unknown_fields otherwise; a member whose
// Departments are unknown (FieldDepartments) keeps its memberships. Every insert, update
// and delete is logged to wecom.changes with source "sync" (or src.SourceName()) and no
// event id, and the relay is notified. It returns counts by entity; on error nothing is
// committed. Unchanged counts include entities left alone because events changed them
// during the read. It blocks until done or ctx ends.
func (s *Store) Sync(ctx context.Context, corpID string, src SyncSource) (SyncReport, error) {
	start := time.Now()
	source := SourceSync
	if n, ok := src.(interface{ SourceName() string }); ok && n.SourceName() != "" {
		source = n.SourceName()
	}
	var rep SyncReport
	// The change-log position before the source is read: changes committed after it
	// (events applied while the snapshot was being read) are newer than the snapshot. A
	// source whose snapshot was taken earlier (an export submitted minutes ago) says where
	// the log stood then, so events applied since the snapshot also win.
	watermark, err := s.changeWatermark(ctx, corpID)
	if err != nil {
		return rep, err
	}
	if ws, ok := src.(interface{ SnapshotWatermark() (int64, bool) }); ok {
		if w, known := ws.SnapshotWatermark(); known && w < watermark {
			watermark = w
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return rep, fmt.Errorf("beginning sync of %s: %w", corpID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, syncStagingSQL); err != nil {
		return rep, fmt.Errorf("creating sync staging tables: %w", err)
	}

	nDepts, err := copyDepartments(ctx, tx, src.Departments(ctx))
	if err != nil {
		return rep, fmt.Errorf("staging departments of %s: %w", corpID, err)
	}
	if nDepts == 0 {
		return rep, fmt.Errorf("syncing %s: %w", corpID, ErrEmptySnapshot)
	}
	nUsers, err := copyUsers(ctx, tx, src.Users(ctx))
	if err != nil {
		return rep, fmt.Errorf("staging members of %s: %w", corpID, err)
	}
	nTags := -1
	if tags := src.Tags(ctx); tags != nil {
		if nTags, err = copyTags(ctx, tx, tags); err != nil {
			return rep, fmt.Errorf("staging tags of %s: %w", corpID, err)
		}
	}

	// Only the merge holds the corp's lock, so event lanes wait seconds, not the minutes
	// reading a big directory can take.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, lockKey(corpID)); err != nil {
		return rep, fmt.Errorf("locking the mirror of %s: %w", corpID, err)
	}
	if _, err := tx.Exec(ctx, syncSkipSQL, corpID, watermark); err != nil {
		return rep, fmt.Errorf("finding entities changed during the sync of %s: %w", corpID, err)
	}
	steps := syncMergeSteps(nTags >= 0)
	for _, st := range steps {
		var args []any
		if strings.Contains(st.sql, "$1") {
			args = []any{corpID}
		}
		if _, err := tx.Exec(ctx, st.sql, args...); err != nil {
			return rep, fmt.Errorf("merging sync of %s (%s): %w", corpID, st.name, err)
		}
	}
	rows, err := tx.Query(ctx, syncChangesSQL, corpID, source)
	if err != nil {
		return rep, fmt.Errorf("logging sync changes of %s: %w", corpID, err)
	}
	var entity, op string
	var n int
	total := 0
	_, err = pgx.ForEachRow(rows, []any{&entity, &op, &n}, func() error {
		c := map[string]*Counts{"user": &rep.Users, "department": &rep.Departments, "tag": &rep.Tags}[entity]
		switch op {
		case "created":
			c.Created += n
		case "updated":
			c.Updated += n
		case "deleted":
			c.Deleted += n
		}
		s.metrics.Changes.WithLabelValues(entity, op, source).Add(float64(n))
		total += n
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("logging sync changes of %s: %w", corpID, err)
	}
	rep.Users.Unchanged = nUsers - rep.Users.Created - rep.Users.Updated
	rep.Departments.Unchanged = nDepts - rep.Departments.Created - rep.Departments.Updated
	if nTags >= 0 {
		rep.Tags.Unchanged = nTags - rep.Tags.Created - rep.Tags.Updated
	}
	if total > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO wecom.relay_cursors (corp_id) VALUES ($1) ON CONFLICT DO NOTHING`, corpID); err != nil {
			return rep, fmt.Errorf("registering %s with the relay: %w", corpID, err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify('`+NotifyChannel+`', $1)`, corpID); err != nil {
			return rep, fmt.Errorf("notifying the relay: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return rep, fmt.Errorf("committing sync of %s: %w", corpID, err)
	}
	s.log.InfoContext(ctx, "synced mirror", slog.String("corp_id", corpID), slog.String("source", source),
		slog.Int("users", nUsers), slog.Int("departments", nDepts), slog.Int("tags", nTags),
		slog.Any("users_changed", rep.Users), slog.Any("departments_changed", rep.Departments),
		slog.Any("tags_changed", rep.Tags), slog.Duration("took", time.Since(start)))
	if s.opts.AnalyzeAfter > 0 && total >= s.opts.AnalyzeAfter {
		s.background(s.analyze)
	}
	return rep, nil
}

// WaitAnalyze waits for the statistics refreshes that syncs and applied batches started
// in the background (see Options.AnalyzeAfter). Call it once they have returned, not
// while a Sync or ApplyBatch runs.
func (s *Store) WaitAnalyze() { s.bgWork.Wait() }

// noteCreated counts members applied events created. Once Options.AnalyzeAfter of them
// have been created since the last refresh it started, and at most once a minute, it
// refreshes the statistics of the member tables in the background: a mirror that events
// fill (a corp the initial sync found empty, a burst of new members) has no column
// statistics until autovacuum's next round, and until then the apply path's key lookups
// are planned as scans of the corp's whole member list.
func (s *Store) noteCreated(n int) {
	if n == 0 || s.opts.AnalyzeAfter <= 0 || s.created.Add(int64(n)) < int64(s.opts.AnalyzeAfter) {
		return
	}
	s.growthMu.Lock()
	defer s.growthMu.Unlock()
	if s.growthBusy || (!s.growthAt.IsZero() && time.Since(s.growthAt) < time.Minute) {
		return
	}
	s.created.Store(0)
	s.growthBusy, s.growthAt = true, time.Now()
	s.background(func(ctx context.Context) {
		defer func() {
			s.growthMu.Lock()
			s.growthBusy = false
			s.growthMu.Unlock()
		}()
		s.analyzeTables(ctx, "wecom.users, wecom.user_departments", "after applied events created members")
	})
}

// analyze refreshes the planner statistics of the mirror tables the apply path reads,
// within a minute. It runs after the sync has returned (ANALYZE samples every table,
// half a second for 100,000 members) and is best effort: autovacuum gets there too. A
// role that does not own the tables gets a warning from Postgres and changes nothing;
// the worker's role normally owns them (it runs the migrations).
func (s *Store) analyze(ctx context.Context) {
	s.analyzeTables(ctx, `wecom.users, wecom.user_departments, wecom.departments,
		wecom.tags, wecom.tag_users, wecom.tag_departments`, "after a sync")
}

// analyzeTables runs ANALYZE on tables (a fixed list, never input), within a minute. It
// skips a table another session holds (SKIP_LOCKED): waiting for it would cancel an
// autovacuum of the table after deadlock_timeout, and that autovacuum refreshes the
// statistics too.
func (s *Store) analyzeTables(ctx context.Context, tables, why string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	if _, err := s.pool.Exec(ctx, "ANALYZE (SKIP_LOCKED) "+tables); err != nil {
		s.log.WarnContext(ctx, "refreshing mirror statistics "+why, slog.String("error", err.Error()))
		return
	}
	s.log.DebugContext(ctx, "refreshed mirror statistics "+why, slog.String("tables", tables), slog.Duration("took", time.Since(start)))
}

// changeWatermark returns the corp's latest change seq, read under the corp's lock so
// that every change committed later has a larger seq.
// ChangeWatermark returns the corp's change-log position (the highest seq of
// wecom.changes), read under the corp's lock so no apply is half-committed. A source that
// takes its snapshot later (an export job) records it first and reports it from
// SnapshotWatermark, so Sync leaves alone whatever events changed after the snapshot.
func (s *Store) ChangeWatermark(ctx context.Context, corpID string) (int64, error) {
	return s.changeWatermark(ctx, corpID)
}

func (s *Store) changeWatermark(ctx context.Context, corpID string) (int64, error) {
	var w int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, lockKey(corpID)); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM wecom.changes WHERE corp_id = $1`, corpID).Scan(&w)
	})
	if err != nil {
		return 0, fmt.Errorf("reading the change-log position of %s: %w", corpID, err)
	}
	return w, nil
}

// syncSkipSQL lists the entities changed since the watermark ($2): the snapshot is older
// than those changes, so the merge leaves these entities (and a renamed member's old
// userid) as they are; the next sync checks them again.
const syncSkipSQL = `
CREATE TEMP TABLE sync_skip ON COMMIT DROP AS
SELECT DISTINCT entity, key FROM (
	SELECT entity, key FROM wecom.changes WHERE corp_id = $1 AND seq > $2
	UNION ALL SELECT entity, before->>'userid' FROM wecom.changes
	WHERE corp_id = $1 AND seq > $2 AND entity = 'user' AND before IS NOT NULL
) x;
`

// syncStagingSQL creates the staging tables (dropped at commit). Primary keys reject a
// source that yields an entity twice.
const syncStagingSQL = `
CREATE TEMP TABLE sync_depts (id bigint PRIMARY KEY, name text, name_en text, parent_id bigint,
	sort_order bigint, unknown text[] NOT NULL, raw jsonb) ON COMMIT DROP;
CREATE TEMP TABLE sync_users (userid text PRIMARY KEY, name text, alias text, position text, mobile text,
	email text, biz_mail text, gender smallint, status smallint, main_department bigint, avatar text,
	telephone text, address text, open_userid text, extattr jsonb, unknown text[] NOT NULL, raw jsonb) ON COMMIT DROP;
CREATE TEMP TABLE sync_members (userid text, department_id bigint, sort_order bigint, is_leader boolean,
	PRIMARY KEY (userid, department_id)) ON COMMIT DROP;
CREATE TEMP TABLE sync_tags (tag_id bigint PRIMARY KEY, name text) ON COMMIT DROP;
CREATE TEMP TABLE sync_tag_users (tag_id bigint, userid text, PRIMARY KEY (tag_id, userid)) ON COMMIT DROP;
CREATE TEMP TABLE sync_tag_depts (tag_id bigint, department_id bigint, PRIMARY KEY (tag_id, department_id)) ON COMMIT DROP;
`

// chunkCopier buffers rows for one staging table and copies them in chunks.
type chunkCopier struct {
	tx    pgx.Tx
	table string
	cols  []string
	rows  [][]any
}

func (c *chunkCopier) add(ctx context.Context, row ...any) error {
	c.rows = append(c.rows, row)
	if len(c.rows) >= syncChunk {
		return c.flush(ctx)
	}
	return nil
}

func (c *chunkCopier) flush(ctx context.Context) error {
	if len(c.rows) == 0 {
		return nil
	}
	if _, err := c.tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
		return fmt.Errorf("copying into %s: %w", c.table, err)
	}
	clear(c.rows)
	c.rows = c.rows[:0]
	return nil
}

// orNil returns v unless field f is unknown.
func orNil[T any](unknown []string, f string, v T) any {
	if hasUnknown(unknown, f) {
		return nil
	}
	return v
}

func jsonOrNil(b []byte) any {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return string(b)
}

func copyDepartments(ctx context.Context, tx pgx.Tx, seq iter.Seq2[*Department, error]) (int, error) {
	c := &chunkCopier{tx: tx, table: "sync_depts", cols: []string{"id", "name", "name_en", "parent_id", "sort_order", "unknown", "raw"}}
	n := 0
	for d, err := range seq {
		if err != nil {
			return n, err
		}
		unk := normUnknown(d.Unknown)
		if err := c.add(ctx, d.ID, orNil(unk, FieldName, d.Name), orNil(unk, FieldNameEn, d.NameEn),
			orNil(unk, FieldParentID, d.ParentID), orNil(unk, FieldOrder, d.Order), unk, jsonOrNil(d.Raw)); err != nil {
			return n, err
		}
		n++
	}
	return n, c.flush(ctx)
}

func copyUsers(ctx context.Context, tx pgx.Tx, seq iter.Seq2[*User, error]) (int, error) {
	c := &chunkCopier{tx: tx, table: "sync_users", cols: []string{"userid", "name", "alias", "position", "mobile",
		"email", "biz_mail", "gender", "status", "main_department", "avatar", "telephone", "address", "open_userid",
		"extattr", "unknown", "raw"}}
	m := &chunkCopier{tx: tx, table: "sync_members", cols: []string{"userid", "department_id", "sort_order", "is_leader"}}
	n := 0
	for u, err := range seq {
		if err != nil {
			return n, err
		}
		unk := normUnknown(u.Unknown)
		var ext any
		if !hasUnknown(unk, FieldExtAttr) {
			ext = jsonOrNil(u.ExtAttr)
		}
		if err := c.add(ctx, u.UserID, orNil(unk, FieldName, u.Name), orNil(unk, FieldAlias, u.Alias),
			orNil(unk, FieldPosition, u.Position), orNil(unk, FieldMobile, u.Mobile), orNil(unk, FieldEmail, u.Email),
			orNil(unk, FieldBizMail, u.BizMail), orNil(unk, FieldGender, int16(u.Gender)),
			orNil(unk, FieldStatus, int16(u.Status)), orNil(unk, FieldMainDepartment, u.MainDepartment),
			orNil(unk, FieldAvatar, u.Avatar), orNil(unk, FieldTelephone, u.Telephone),
			orNil(unk, FieldAddress, u.Address), orNil(unk, FieldOpenUserID, u.OpenUserID), ext, unk,
			jsonOrNil(u.Raw)); err != nil {
			return n, err
		}
		if !hasUnknown(unk, FieldDepartments) {
			for _, ms := range membershipsOf(u.Departments) {
				if err := m.add(ctx, u.UserID, ms.DepartmentID, ms.SortOrder, ms.IsLeader); err != nil {
					return n, err
				}
			}
		}
		n++
	}
	if err := c.flush(ctx); err != nil {
		return n, err
	}
	return n, m.flush(ctx)
}

func copyTags(ctx context.Context, tx pgx.Tx, seq iter.Seq2[*Tag, error]) (int, error) {
	c := &chunkCopier{tx: tx, table: "sync_tags", cols: []string{"tag_id", "name"}}
	tu := &chunkCopier{tx: tx, table: "sync_tag_users", cols: []string{"tag_id", "userid"}}
	td := &chunkCopier{tx: tx, table: "sync_tag_depts", cols: []string{"tag_id", "department_id"}}
	n := 0
	for t, err := range seq {
		if err != nil {
			return n, err
		}
		if err := c.add(ctx, t.ID, t.Name); err != nil {
			return n, err
		}
		seenU := make(map[string]bool, len(t.UserIDs))
		for _, u := range t.UserIDs {
			if !seenU[u] {
				seenU[u] = true
				if err := tu.add(ctx, t.ID, u); err != nil {
					return n, err
				}
			}
		}
		seenD := make(map[int64]bool, len(t.Departments))
		for _, d := range t.Departments {
			if !seenD[d] {
				seenD[d] = true
				if err := td.add(ctx, t.ID, d); err != nil {
					return n, err
				}
			}
		}
		n++
	}
	for _, x := range []*chunkCopier{c, tu, td} {
		if err := x.flush(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}

// The JSON of a mirror row, as the change log holds it; these expressions build the
// fields userRow/deptRow/tagRow.appendJSON build in Go, in the same order. They are json,
// not jsonb (cheaper to build and stored as is in the json columns of wecom.changes), and
// their text is a function of the row, so a sync compares before and after as text.
const (
	userJSONSQL = `json_build_object('userid', u.userid, 'name', u.name, 'alias', u.alias, 'position', u.position,
	'mobile', u.mobile, 'email', u.email, 'biz_mail', u.biz_mail, 'gender', u.gender, 'status', u.status,
	'main_department', u.main_department, 'avatar', u.avatar, 'telephone', u.telephone, 'address', u.address,
	'open_userid', u.open_userid, 'extattr', u.extattr,
	'departments', coalesce(m.deps, '[]'::json), 'unknown_fields', to_json(u.unknown_fields))`
	// userJSONFrom is what userJSONSQL selects from: the corp's members ($1) with their
	// memberships aggregated in one pass (half the time of a subquery per member).
	userJSONFrom = `wecom.users u LEFT JOIN (SELECT d.userid, json_agg(json_build_object('department_id', d.department_id,
		'sort_order', d.sort_order, 'is_leader', d.is_leader) ORDER BY d.department_id) AS deps
		FROM wecom.user_departments d WHERE d.corp_id = $1 GROUP BY d.userid) m ON m.userid = u.userid
	WHERE u.corp_id = $1`
	deptJSONSQL = `json_build_object('id', d.id, 'name', d.name, 'name_en', d.name_en, 'parent_id', d.parent_id,
	'sort_order', d.sort_order, 'unknown_fields', to_json(d.unknown_fields))`
	tagJSONSQL = `json_build_object('tag_id', t.tag_id, 'name', t.name,
	'users', coalesce((SELECT json_agg(x.userid ORDER BY x.userid COLLATE "C") FROM wecom.tag_users x
		WHERE x.corp_id = t.corp_id AND x.tag_id = t.tag_id), '[]'::json),
	'departments', coalesce((SELECT json_agg(x.department_id ORDER BY x.department_id) FROM wecom.tag_departments x
		WHERE x.corp_id = t.corp_id AND x.tag_id = t.tag_id), '[]'::json))`
)

type syncStep struct{ name, sql string }

// keepUnknown picks the staged value of a column unless the source does not know it.
func keepUnknown(col, field string) string {
	return `CASE WHEN '` + field + `' = ANY(s.unknown) THEN u.` + col + ` ELSE s.` + col + ` END AS ` + col
}

// syncMergeSteps are the set-based statements of a merge; each takes $1 = corp id.
func syncMergeSteps(withTags bool) []syncStep {
	steps := []syncStep{
		{"unstage departments changed meanwhile", `DELETE FROM sync_depts s USING sync_skip k WHERE k.entity = 'department' AND k.key = s.id::text`},
		{"unstage members changed meanwhile", `DELETE FROM sync_users s USING sync_skip k WHERE k.entity = 'user' AND k.key = s.userid`},
		{"unstage memberships of members changed meanwhile", `DELETE FROM sync_members s USING sync_skip k WHERE k.entity = 'user' AND k.key = s.userid`},
		{"unstage tags changed meanwhile", `DELETE FROM sync_tags s USING sync_skip k WHERE k.entity = 'tag' AND k.key = s.tag_id::text`},
		{"analyze staging", `ANALYZE sync_depts, sync_users, sync_members` + map[bool]string{true: `, sync_tags, sync_tag_users, sync_tag_depts`}[withTags]},
		// Rows as they were, for the change log.
		{"snapshot before", `
CREATE TEMP TABLE sync_before ON COMMIT DROP AS
SELECT 'department'::text AS entity, d.id::text AS key, ` + deptJSONSQL + ` AS j FROM wecom.departments d WHERE d.corp_id = $1
UNION ALL SELECT 'user', u.userid, ` + userJSONSQL + ` FROM ` + userJSONFrom + `
UNION ALL SELECT 'tag', t.tag_id::text, ` + tagJSONSQL + ` FROM wecom.tags t WHERE t.corp_id = $1`},
		// Final department and member rows: staged values, or the mirror's where unknown.
		{"final departments", `
CREATE TEMP TABLE sync_dept_final ON COMMIT DROP AS
SELECT s.id, ` + keepUnknown("name", FieldName) + `, ` + keepUnknown("name_en", FieldNameEn) + `,
	` + keepUnknown("parent_id", FieldParentID) + `, ` + keepUnknown("sort_order", FieldOrder) + `,
	ARRAY(SELECT f FROM unnest(s.unknown) f WHERE u.id IS NULL OR f = ANY(u.unknown_fields) ORDER BY f COLLATE "C") AS unknown_fields,
	coalesce(s.raw, u.raw, '{}'::jsonb) AS raw
FROM sync_depts s LEFT JOIN wecom.departments u ON u.corp_id = $1 AND u.id = s.id`},
		{"final memberships", `
CREATE TEMP TABLE sync_member_final ON COMMIT DROP AS
SELECT m.userid, m.department_id,
	CASE WHEN 'sort_order' = ANY(s.unknown) THEN coalesce(e.sort_order, 0) ELSE m.sort_order END AS sort_order,
	CASE WHEN 'is_leader' = ANY(s.unknown) THEN coalesce(e.is_leader, false) ELSE m.is_leader END AS is_leader,
	'sort_order' = ANY(s.unknown) AND e.userid IS NULL AS guessed_order,
	'is_leader' = ANY(s.unknown) AND e.userid IS NULL AS guessed_leader
FROM sync_members m JOIN sync_users s USING (userid)
LEFT JOIN wecom.user_departments e ON e.corp_id = $1 AND e.userid = m.userid AND e.department_id = m.department_id
WHERE NOT ('departments' = ANY(s.unknown))
UNION ALL
SELECT e.userid, e.department_id, e.sort_order, e.is_leader, false, false
FROM wecom.user_departments e JOIN sync_users s ON s.userid = e.userid
WHERE e.corp_id = $1 AND 'departments' = ANY(s.unknown)`},
		{"final members", `
CREATE TEMP TABLE sync_user_final ON COMMIT DROP AS
SELECT s.userid, ` + keepUnknown("name", FieldName) + `, ` + keepUnknown("alias", FieldAlias) + `,
	` + keepUnknown("position", FieldPosition) + `, ` + keepUnknown("mobile", FieldMobile) + `,
	` + keepUnknown("email", FieldEmail) + `, ` + keepUnknown("biz_mail", FieldBizMail) + `,
	` + keepUnknown("gender", FieldGender) + `, ` + keepUnknown("status", FieldStatus) + `,
	` + keepUnknown("main_department", FieldMainDepartment) + `, ` + keepUnknown("avatar", FieldAvatar) + `,
	` + keepUnknown("telephone", FieldTelephone) + `, ` + keepUnknown("address", FieldAddress) + `,
	` + keepUnknown("open_userid", FieldOpenUserID) + `, ` + keepUnknown("extattr", FieldExtAttr) + `,
	CASE WHEN cardinality(s.unknown) = 0 THEN '{}'::text[] ELSE ARRAY(SELECT f FROM (
		SELECT f FROM unnest(s.unknown) f
		WHERE f NOT IN ('sort_order', 'is_leader') AND (u.userid IS NULL OR f = ANY(u.unknown_fields))
		UNION ALL SELECT 'sort_order' WHERE 'sort_order' = ANY(s.unknown) AND (('sort_order' = ANY(u.unknown_fields))
			OR EXISTS (SELECT 1 FROM sync_member_final m WHERE m.userid = s.userid AND m.guessed_order))
		UNION ALL SELECT 'is_leader' WHERE 'is_leader' = ANY(s.unknown) AND (('is_leader' = ANY(u.unknown_fields))
			OR EXISTS (SELECT 1 FROM sync_member_final m WHERE m.userid = s.userid AND m.guessed_leader))
	) x ORDER BY f COLLATE "C") END AS unknown_fields, -- every unknown field is one the source did not know
	coalesce(s.raw, u.raw, '{}'::jsonb) AS raw
FROM sync_users s LEFT JOIN wecom.users u ON u.corp_id = $1 AND u.userid = s.userid`},
		// Deletes: whatever the snapshot does not have.
		{"delete departments", `DELETE FROM wecom.departments d WHERE d.corp_id = $1
	AND NOT EXISTS (SELECT 1 FROM sync_dept_final f WHERE f.id = d.id)
	AND NOT EXISTS (SELECT 1 FROM sync_skip k WHERE k.entity = 'department' AND k.key = d.id::text)`},
		{"delete members", `DELETE FROM wecom.users u WHERE u.corp_id = $1
	AND NOT EXISTS (SELECT 1 FROM sync_user_final f WHERE f.userid = u.userid)
	AND NOT EXISTS (SELECT 1 FROM sync_skip k WHERE k.entity = 'user' AND k.key = u.userid)`},
		{"delete memberships", `DELETE FROM wecom.user_departments e WHERE e.corp_id = $1
	AND NOT EXISTS (SELECT 1 FROM sync_member_final f WHERE f.userid = e.userid AND f.department_id = e.department_id)
	AND NOT EXISTS (SELECT 1 FROM sync_skip k WHERE k.entity = 'user' AND k.key = e.userid)`},
		// Upserts, writing only rows that differ.
		{"upsert departments", `INSERT INTO wecom.departments AS d (corp_id, id, name, name_en, parent_id, sort_order, unknown_fields, raw)
	SELECT $1, f.id, f.name, f.name_en, f.parent_id, f.sort_order, f.unknown_fields, f.raw FROM sync_dept_final f
	ON CONFLICT (corp_id, id) DO UPDATE SET name = excluded.name, name_en = excluded.name_en,
		parent_id = excluded.parent_id, sort_order = excluded.sort_order, unknown_fields = excluded.unknown_fields,
		raw = excluded.raw, updated_at = now()
	WHERE (d.name, d.name_en, d.parent_id, d.sort_order, d.unknown_fields, d.raw) IS DISTINCT FROM
		(excluded.name, excluded.name_en, excluded.parent_id, excluded.sort_order, excluded.unknown_fields, excluded.raw)`},
		{"upsert members", `INSERT INTO wecom.users AS u (corp_id, userid, name, alias, position, mobile, email, biz_mail,
		gender, status, main_department, avatar, telephone, address, open_userid, extattr, unknown_fields, raw)
	SELECT $1, f.userid, f.name, f.alias, f.position, f.mobile, f.email, f.biz_mail, f.gender, f.status,
		f.main_department, f.avatar, f.telephone, f.address, f.open_userid, f.extattr, f.unknown_fields, f.raw
	FROM sync_user_final f
	ON CONFLICT (corp_id, userid) DO UPDATE SET name = excluded.name, alias = excluded.alias,
		position = excluded.position, mobile = excluded.mobile, email = excluded.email, biz_mail = excluded.biz_mail,
		gender = excluded.gender, status = excluded.status, main_department = excluded.main_department,
		avatar = excluded.avatar, telephone = excluded.telephone, address = excluded.address,
		open_userid = excluded.open_userid, extattr = excluded.extattr, unknown_fields = excluded.unknown_fields,
		raw = excluded.raw, updated_at = now()
	WHERE (u.name, u.alias, u.position, u.mobile, u.email, u.biz_mail, u.gender, u.status, u.main_department,
		u.avatar, u.telephone, u.address, u.open_userid, u.extattr, u.unknown_fields, u.raw) IS DISTINCT FROM
		(excluded.name, excluded.alias, excluded.position, excluded.mobile, excluded.email, excluded.biz_mail,
		excluded.gender, excluded.status, excluded.main_department, excluded.avatar, excluded.telephone,
		excluded.address, excluded.open_userid, excluded.extattr, excluded.unknown_fields, excluded.raw)`},
		{"upsert memberships", `INSERT INTO wecom.user_departments AS e (corp_id, userid, department_id, sort_order, is_leader)
	SELECT $1, f.userid, f.department_id, f.sort_order, f.is_leader FROM sync_member_final f
	ON CONFLICT (corp_id, userid, department_id) DO UPDATE SET sort_order = excluded.sort_order, is_leader = excluded.is_leader
	WHERE (e.sort_order, e.is_leader) IS DISTINCT FROM (excluded.sort_order, excluded.is_leader)`},
	}
	if withTags {
		steps = append(steps,
			syncStep{"delete tags", `DELETE FROM wecom.tags t WHERE t.corp_id = $1 AND NOT EXISTS (SELECT 1 FROM sync_tags s WHERE s.tag_id = t.tag_id)
	AND NOT EXISTS (SELECT 1 FROM sync_skip k WHERE k.entity = 'tag' AND k.key = t.tag_id::text)`},
			syncStep{"upsert tags", `INSERT INTO wecom.tags AS t (corp_id, tag_id, name) SELECT $1, tag_id, name FROM sync_tags
	ON CONFLICT (corp_id, tag_id) DO UPDATE SET name = excluded.name WHERE t.name IS DISTINCT FROM excluded.name`},
			// Tags and members changed meanwhile keep their tag memberships as they are.
			syncStep{"delete tag members", `DELETE FROM wecom.tag_users x WHERE x.corp_id = $1
	AND NOT EXISTS (SELECT 1 FROM sync_tag_users s WHERE s.tag_id = x.tag_id AND s.userid = x.userid)
	AND NOT EXISTS (SELECT 1 FROM sync_skip k WHERE (k.entity = 'tag' AND k.key = x.tag_id::text) OR (k.entity = 'user' AND k.key = x.userid))`},
			syncStep{"add tag members", `INSERT INTO wecom.tag_users (corp_id, tag_id, userid) SELECT $1, s.tag_id, s.userid FROM sync_tag_users s
	WHERE NOT EXISTS (SELECT 1 FROM sync_skip k WHERE (k.entity = 'tag' AND k.key = s.tag_id::text) OR (k.entity = 'user' AND k.key = s.userid))
	ON CONFLICT DO NOTHING`},
			syncStep{"delete tag departments", `DELETE FROM wecom.tag_departments x WHERE x.corp_id = $1
	AND NOT EXISTS (SELECT 1 FROM sync_tag_depts s WHERE s.tag_id = x.tag_id AND s.department_id = x.department_id)
	AND NOT EXISTS (SELECT 1 FROM sync_skip k WHERE (k.entity = 'tag' AND k.key = x.tag_id::text) OR (k.entity = 'department' AND k.key = x.department_id::text))`},
			syncStep{"add tag departments", `INSERT INTO wecom.tag_departments (corp_id, tag_id, department_id) SELECT $1, s.tag_id, s.department_id FROM sync_tag_depts s
	WHERE NOT EXISTS (SELECT 1 FROM sync_skip k WHERE (k.entity = 'tag' AND k.key = s.tag_id::text) OR (k.entity = 'department' AND k.key = s.department_id::text))
	ON CONFLICT DO NOTHING`},
		)
	} else {
		// Without tag data, tags keep their rows but lose deleted members and departments.
		steps = append(steps,
			syncStep{"drop deleted tag members", `DELETE FROM wecom.tag_users x WHERE x.corp_id = $1
	AND NOT EXISTS (SELECT 1 FROM wecom.users u WHERE u.corp_id = $1 AND u.userid = x.userid)`},
			syncStep{"drop deleted tag departments", `DELETE FROM wecom.tag_departments x WHERE x.corp_id = $1
	AND NOT EXISTS (SELECT 1 FROM wecom.departments d WHERE d.corp_id = $1 AND d.id = x.department_id)`},
		)
	}
	return steps
}

// syncChangesSQL logs every row whose JSON differs from before (departments, then
// members, then tags, by key) and returns counts by entity and op. $1 corp, $2 source.
const syncChangesSQL = `
WITH after AS (
	SELECT 'department'::text AS entity, d.id::text AS key, ` + deptJSONSQL + ` AS j FROM wecom.departments d WHERE d.corp_id = $1
	UNION ALL SELECT 'user', u.userid, ` + userJSONSQL + ` FROM ` + userJSONFrom + `
	UNION ALL SELECT 'tag', t.tag_id::text, ` + tagJSONSQL + ` FROM wecom.tags t WHERE t.corp_id = $1
), diff AS (
	SELECT coalesce(a.entity, b.entity) AS entity, coalesce(a.key, b.key) AS key, b.j AS before, a.j AS after
	FROM after a FULL JOIN sync_before b ON a.entity = b.entity AND a.key = b.key
	WHERE a.j::text IS DISTINCT FROM b.j::text
), ins AS (
	INSERT INTO wecom.changes (corp_id, entity, key, op, before, after, source)
	SELECT $1, entity, key, CASE WHEN before IS NULL THEN 'created' WHEN after IS NULL THEN 'deleted' ELSE 'updated' END,
		before, after, $2
	FROM diff
	ORDER BY CASE entity WHEN 'department' THEN 0 WHEN 'user' THEN 1 ELSE 2 END, key COLLATE "C"
	RETURNING entity, op
)
SELECT entity, op, count(*)::int FROM ins GROUP BY entity, op`
