package mirror

import (
	"context"
	"errors"
	"iter"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/event"
)

// sliceSource is a SyncSource over slices; tags nil means the source has no tag data.
type sliceSource struct {
	depts []*Department
	users []*User
	tags  []*Tag
	err   error // yielded after the users when set
	// during runs once while the users are read (an event applied mid-read).
	during func()
}

func seqOf[T any](xs []T, tail error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, x := range xs {
			if !yield(x, nil) {
				return
			}
		}
		if tail != nil {
			var zero T
			yield(zero, tail)
		}
	}
}

func (s *sliceSource) Departments(context.Context) iter.Seq2[*Department, error] {
	return seqOf(s.depts, nil)
}
func (s *sliceSource) Users(context.Context) iter.Seq2[*User, error] {
	if s.during != nil {
		s.during()
	}
	return seqOf(s.users, s.err)
}
func (s *sliceSource) Tags(context.Context) iter.Seq2[*Tag, error] {
	if s.tags == nil {
		return nil
	}
	return seqOf(s.tags, nil)
}

func baseSnapshot() *sliceSource {
	return &sliceSource{
		depts: []*Department{{ID: 1, Name: "Root", ParentID: 0, Order: 1}, {ID: 2, Name: "Eng", NameEn: "Engineering", ParentID: 1, Order: 10}},
		users: []*User{
			{UserID: "alice", Name: "Alice", Mobile: "1", Email: "a@x", Gender: 2, Status: 1, MainDepartment: 2,
				ExtAttr:     []byte(`{"attrs":[{"type":0,"name":"k","text":{"value":"v"}}]}`),
				Departments: []Membership{{2, 5, true}, {1, 1, false}}},
			{UserID: "bob", Name: "Bob", Status: 1, MainDepartment: 1, Departments: []Membership{{1, 0, false}}},
		},
		tags: []*Tag{{ID: 1, Name: "T1", UserIDs: []string{"bob", "alice"}, Departments: []int64{2}}},
	}
}

func TestSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("InsertsUpdatesAndDeletesWithChangeRows", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		rep, err := s.Sync(ctx, corp, baseSnapshot())
		require.NoError(t, err)
		require.Equal(t, SyncReport{Users: Counts{Created: 2}, Departments: Counts{Created: 2}, Tags: Counts{Created: 1}}, rep)
		a := dbUser(t, b.pool, "alice")
		require.Equal(t, "Alice", *a.Name)
		require.Equal(t, []membershipRow{{1, 1, false}, {2, 5, true}}, a.Departments)
		require.Empty(t, a.Unknown)
		require.Equal(t, "Engineering", *dbDept(t, b.pool, 2).NameEn)
		require.Equal(t, []string{"alice", "bob"}, strs(t, b.pool, `SELECT userid FROM wecom.tag_users ORDER BY 1`))
		ch := changesAfter(t, b.pool, 0)
		require.Len(t, ch, 5)
		require.Equal(t, []string{"department", "department", "user", "user", "tag"}, []string{ch[0].Entity, ch[1].Entity, ch[2].Entity, ch[3].Entity, ch[4].Entity})
		for _, c := range ch {
			require.Equal(t, "sync", c.Source)
			require.Equal(t, "created", c.Op)
		}
		require.Equal(t, []any{"alice", "bob"}, ch[4].After["users"])

		// Next snapshot: bob is gone, alice moved and renamed her mobile, carol joined,
		// department 3 is new, department 2 renamed, the tag lost bob.
		next := baseSnapshot()
		next.depts = append(next.depts, &Department{ID: 3, Name: "Ops", ParentID: 1})
		next.depts[1].Name = "Engineering CN"
		next.users[0].Mobile = "2"
		next.users[0].Departments = []Membership{{3, 1, false}}
		next.users[1] = &User{UserID: "carol", Name: "Carol", Departments: []Membership{{1, 0, false}}}
		next.tags[0].UserIDs = []string{"alice"}
		seq := lastSeq(t, b.pool)
		rep, err = s.Sync(ctx, corp, next)
		require.NoError(t, err)
		require.Equal(t, Counts{Created: 1, Updated: 1, Deleted: 1}, rep.Users)
		require.Equal(t, Counts{Created: 1, Updated: 1, Unchanged: 1}, rep.Departments)
		require.Equal(t, Counts{Updated: 1}, rep.Tags)
		require.Nil(t, dbUser(t, b.pool, "bob"))
		require.Equal(t, []membershipRow{{3, 1, false}}, dbUser(t, b.pool, "alice").Departments)
		ch = changesAfter(t, b.pool, seq)
		require.Len(t, ch, 6)
		byKey := map[string]change{}
		for _, c := range ch {
			byKey[c.Entity+":"+c.Key] = c
		}
		require.Equal(t, "deleted", byKey["user:bob"].Op)
		require.Equal(t, "Bob", byKey["user:bob"].Before["name"])
		require.Equal(t, "1", byKey["user:alice"].Before["mobile"])
		require.Equal(t, "2", byKey["user:alice"].After["mobile"])
		require.Equal(t, []any{"alice"}, byKey["tag:1"].After["users"])

		// The same snapshot again changes nothing.
		seq = lastSeq(t, b.pool)
		rep, err = s.Sync(ctx, corp, next)
		require.NoError(t, err)
		require.Equal(t, SyncReport{Users: Counts{Unchanged: 2}, Departments: Counts{Unchanged: 3}, Tags: Counts{Unchanged: 1}}, rep)
		require.Empty(t, changesAfter(t, b.pool, seq))
	})

	t.Run("UnknownFieldsKeepWhatTheMirrorKnows", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		_, err := s.Sync(ctx, corp, baseSnapshot())
		require.NoError(t, err)
		// A list_id-style source knows only userids and departments.
		thin := &sliceSource{depts: baseSnapshot().depts, users: []*User{
			{UserID: "alice", Departments: []Membership{{2, 0, false}}, Unknown: append(UserFields[:0:0], UserFields...)},
			{UserID: "dave", Departments: []Membership{{1, 0, false}}, Unknown: append(UserFields[:0:0], UserFields...)},
		}}
		rep, err := s.Sync(ctx, corp, thin)
		require.NoError(t, err)
		require.Equal(t, Counts{Created: 1, Updated: 1, Deleted: 1}, rep.Users)
		a := dbUser(t, b.pool, "alice")
		require.Equal(t, "Alice", *a.Name, "kept")
		require.Equal(t, "a@x", *a.Email, "kept")
		require.Equal(t, []membershipRow{{2, 5, true}}, a.Departments, "kept order and flag of a kept membership")
		require.Empty(t, a.Unknown)
		d := dbUser(t, b.pool, "dave")
		require.Nil(t, d.Name)
		require.Equal(t, normUnknown(UserFields), d.Unknown)
		require.Equal(t, []string{"alice"}, strs(t, b.pool, `SELECT userid FROM wecom.tag_users ORDER BY 1`), "no tag data: tags kept, less deleted members")
	})

	t.Run("SyncedRowsMatchAppliedRows", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		// Applied from events, then synced with the same content: no change rows.
		apply(t, s, b.items(
			msg(event.ChangeCreateParty, `{"id":1,"name":"Root","parent_id":0,"order":1}`),
			msg(event.ChangeCreateUser, fullCreate),
			msg(event.ChangeUpdateTag, `{"tag_id":4,"add_user_items":["zhangsan"],"add_party_items":[1]}`),
		))
		u := dbUser(t, b.pool, "zhangsan")
		snap := &sliceSource{
			depts: []*Department{{ID: 1, Name: "Root", Order: 1, Unknown: []string{FieldNameEn}}},
			users: []*User{{UserID: "zhangsan", Name: *u.Name, Alias: *u.Alias, Position: *u.Position, Mobile: *u.Mobile,
				Email: *u.Email, BizMail: *u.BizMail, Gender: 1, Status: 1, MainDepartment: 1, Avatar: *u.Avatar,
				Telephone: *u.Telephone, Address: *u.Address, ExtAttr: u.ExtAttr,
				Departments: []Membership{{1, 0, true}, {2, 0, false}, {3, 0, false}},
				Unknown:     []string{FieldOpenUserID, FieldOrder}}},
		}
		seq := lastSeq(t, b.pool)
		rep, err := s.Sync(ctx, corp, snap)
		require.NoError(t, err)
		require.Empty(t, changesAfter(t, b.pool, seq), "report %+v", rep)

		// And the other way: events carrying what a sync stored change nothing.
		apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","name":"张三","department":[1,2,3]}`)))
		require.Empty(t, changesAfter(t, b.pool, seq))
	})

	t.Run("EventsAppliedWhileTheSnapshotIsReadWin", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		_, err := s.Sync(ctx, corp, baseSnapshot())
		require.NoError(t, err)
		snap := baseSnapshot() // read "before" the events below
		snap.depts[1].Name = "Eng (old)"
		snap.during = func() {
			// The lanes are not blocked by the read: these commit before the merge.
			apply(t, s, b.items(
				msg(event.ChangeUpdateUser, `{"user_id":"alice","new_user_id":"alice2","mobile":"9"}`),
				msg(event.ChangeDeleteUser, `{"user_id":"bob"}`),
				msg(event.ChangeCreateUser, `{"user_id":"erin","name":"Erin","department":[1]}`),
				msg(event.ChangeUpdateParty, `{"id":2,"name":"Eng (new)"}`),
			))
		}
		seq := lastSeq(t, b.pool)
		_, err = s.Sync(ctx, corp, snap)
		require.NoError(t, err)
		require.Nil(t, dbUser(t, b.pool, "alice"), "the rename is not undone")
		require.Equal(t, "9", *dbUser(t, b.pool, "alice2").Mobile)
		require.Nil(t, dbUser(t, b.pool, "bob"), "the delete is not undone")
		require.NotNil(t, dbUser(t, b.pool, "erin"), "the create is not undone")
		require.Equal(t, "Eng (new)", *dbDept(t, b.pool, 2).Name)
		for _, c := range changesAfter(t, b.pool, seq) {
			require.Equal(t, "callback", c.Source, "the sync changed nothing: %+v", c)
		}
	})

	t.Run("ABulkSyncRefreshesPlannerStatistics", func(t *testing.T) {
		t.Parallel()
		_, b := setup(t)
		analyzed := func() int {
			return count(t, b.pool, `SELECT analyze_count FROM pg_stat_user_tables WHERE schemaname = 'wecom' AND relname = 'users'`)
		}
		// Five changed rows: below a threshold of six nothing is analyzed, at five it is.
		s := NewStore(b.pool, nil, nil, Options{AnalyzeAfter: 6})
		_, err := s.Sync(ctx, corp, baseSnapshot())
		require.NoError(t, err)
		s.WaitAnalyze()
		require.Zero(t, analyzed())
		next := baseSnapshot()
		next.users[0].Name, next.users[1].Name = "Alice 2", "Bob 2"
		next.depts[1].Name = "Eng 2"
		next.tags[0].Name = "T2"
		next.users = append(next.users, &User{UserID: "carol", Name: "Carol", Departments: []Membership{{1, 0, false}}})
		s = NewStore(b.pool, nil, nil, Options{AnalyzeAfter: 5})
		_, err = s.Sync(ctx, corp, next)
		require.NoError(t, err)
		s.WaitAnalyze()
		require.Equal(t, 1, analyzed())
	})

	t.Run("AClosedStoreStartsNoBackgroundWork", func(t *testing.T) {
		t.Parallel()
		_, b := setup(t)
		s := NewStore(b.pool, nil, nil, Options{AnalyzeAfter: 1})
		s.Close()
		_, err := s.Sync(ctx, corp, baseSnapshot())
		require.NoError(t, err)
		s.WaitAnalyze()
		require.Zero(t, count(t, b.pool, `SELECT analyze_count FROM pg_stat_user_tables WHERE schemaname = 'wecom' AND relname = 'users'`))
	})

	t.Run("RefusesASnapshotWithoutDepartments", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		_, err := s.Sync(ctx, corp, &sliceSource{})
		require.ErrorIs(t, err, ErrEmptySnapshot)
	})

	t.Run("SourceErrorCommitsNothing", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		src := baseSnapshot()
		src.err = errors.New("export block 3 failed")
		_, err := s.Sync(ctx, corp, src)
		require.ErrorContains(t, err, "export block 3 failed")
		empty, err := s.IsEmpty(ctx, corp)
		require.NoError(t, err)
		require.True(t, empty)
		require.Empty(t, changesAfter(t, b.pool, 0))
	})

	t.Run("DuplicateRecordsFailTheSync", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		src := baseSnapshot()
		src.users = append(src.users, src.users[0])
		_, err := s.Sync(ctx, corp, src)
		require.Error(t, err)
	})
}
