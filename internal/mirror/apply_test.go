package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
)

const fullCreate = `{"user_id":"zhangsan","name":"张三","department":[1,2,3],"main_department":1,
	"is_leader_in_dept":[1,0,0],"direct_leader":["lisi"],"position":"产品经理","mobile":"13800000000","gender":1,
	"email":"zhangsan@gzdev.com","biz_mail":"zhangsan@corp.work","status":1,"avatar":"http://a/0","alias":"zs",
	"telephone":"020-123456","address":"广州市",
	"ext_attr":[{"name":"爱好","type":0,"text":{"value":"旅游"}},{"name":"卡号","type":1,"web":{"title":"企业微信","url":"https://work.weixin.qq.com"}}]}`

func TestApplyUsers(t *testing.T) {
	t.Parallel()

	t.Run("CreateUserStoresEveryCarriedFieldWithLeaderFlagsAndExtAttr", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		requireStatuses(t, apply(t, s, b.items(msg(event.ChangeCreateUser, fullCreate))), Applied)
		u := dbUser(t, b.pool, "zhangsan")
		require.NotNil(t, u)
		require.Equal(t, "张三", *u.Name)
		require.Equal(t, "zs", *u.Alias)
		require.Equal(t, "13800000000", *u.Mobile)
		require.Equal(t, int64(1), *u.Gender)
		require.Equal(t, int64(1), *u.MainDepartment)
		require.Equal(t, "广州市", *u.Address)
		require.Nil(t, u.OpenUserID, "not carried by callbacks")
		require.Equal(t, []membershipRow{{1, 0, true}, {2, 0, false}, {3, 0, false}}, u.Departments)
		require.Equal(t, []string{FieldOpenUserID, FieldOrder}, u.Unknown)
		require.JSONEq(t, `{"attrs":[{"type":0,"name":"爱好","text":{"value":"旅游"}},
			{"type":1,"name":"卡号","web":{"title":"企业微信","url":"https://work.weixin.qq.com"}}]}`, string(u.ExtAttr))
		var directLeader []string
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT raw->'direct_leader' FROM wecom.users WHERE userid = 'zhangsan'`).Scan(&directLeader))
		require.Equal(t, []string{"lisi"}, directLeader)

		ch := changesAfter(t, b.pool, 0)
		require.Len(t, ch, 1)
		require.Equal(t, "user", ch[0].Entity)
		require.Equal(t, "zhangsan", ch[0].Key)
		require.Equal(t, "created", ch[0].Op)
		require.Equal(t, "callback", ch[0].Source)
		require.Nil(t, ch[0].Before)
		require.Equal(t, "张三", ch[0].After["name"])
		require.Equal(t, []any{map[string]any{"department_id": 1.0, "sort_order": 0.0, "is_leader": true},
			map[string]any{"department_id": 2.0, "sort_order": 0.0, "is_leader": false},
			map[string]any{"department_id": 3.0, "sort_order": 0.0, "is_leader": false}}, ch[0].After["departments"])
		require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM wecom.relay_cursors WHERE corp_id = $1`, corp))
	})

	t.Run("UpdateUserChangesOnlyCarriedFields", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(msg(event.ChangeCreateUser, fullCreate)))
		seq := lastSeq(t, b.pool)
		requireStatuses(t, apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","mobile":"13900000000","position":""}`))), Applied)
		u := dbUser(t, b.pool, "zhangsan")
		require.Equal(t, "13900000000", *u.Mobile)
		require.Equal(t, "", *u.Position, "present and empty is a value")
		require.Equal(t, "张三", *u.Name)
		require.Equal(t, "zhangsan@gzdev.com", *u.Email)
		require.Equal(t, []membershipRow{{1, 0, true}, {2, 0, false}, {3, 0, false}}, u.Departments)
		require.NotNil(t, u.ExtAttr)

		ch := changesAfter(t, b.pool, seq)
		require.Len(t, ch, 1)
		require.Equal(t, "updated", ch[0].Op)
		require.Equal(t, "13800000000", ch[0].Before["mobile"])
		require.Equal(t, "13900000000", ch[0].After["mobile"])
		require.Equal(t, "产品经理", ch[0].Before["position"])
		require.Equal(t, ch[0].Before["email"], ch[0].After["email"])
	})

	t.Run("DepartmentChangeReplacesMembershipsKeepingKnownOrderAndTakingLeaderFlags", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		b.look.users["lisi"] = &User{UserID: "lisi", Name: "李四", Departments: []Membership{{1, 10, false}, {2, 20, true}}}
		apply(t, s, b.items(msg(event.ChangeCreateUser, `{"user_id":"lisi","department":[1,2]}`)))
		require.Equal(t, []membershipRow{{1, 10, false}, {2, 20, true}}, dbUser(t, b.pool, "lisi").Departments)

		apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"lisi","department":[2,5],"is_leader_in_dept":[0,1]}`)))
		u := dbUser(t, b.pool, "lisi")
		require.Equal(t, []membershipRow{{2, 20, false}, {5, 0, true}}, u.Departments)
		require.Contains(t, u.Unknown, FieldOrder, "department 5's order was not carried")
		require.NotContains(t, u.Unknown, FieldIsLeader)

		// Without a record to look up (see TestApplyMinimalMove), a department-only event
		// keeps what the mirror knows of kept memberships.
		delete(b.look.users, "lisi")
		apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"lisi","department":[2,5,7]}`)))
		u = dbUser(t, b.pool, "lisi")
		require.Equal(t, []membershipRow{{2, 20, false}, {5, 0, true}, {7, 0, false}}, u.Departments, "kept memberships keep their flags")
		require.Contains(t, u.Unknown, FieldIsLeader, "department 7's flag was not carried")
	})

	t.Run("RenameMovesMemberMembershipsAndTagsInOneTransaction", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(
			msg(event.ChangeCreateUser, fullCreate),
			msg(event.ChangeUpdateTag, `{"tag_id":7,"add_user_items":["zhangsan","lisi"]}`),
			msg(event.ChangeUpdateTag, `{"tag_id":8,"add_user_items":["zhangsan"]}`),
		))
		seq := lastSeq(t, b.pool)
		// Tag 8 is not touched by the renaming batch: the rename must reach it in SQL.
		requireStatuses(t, apply(t, s, b.items(
			msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","new_user_id":"zhangsan001","name":"张三丰"}`),
			msg(event.ChangeUpdateTag, `{"tag_id":7,"del_user_items":["lisi"]}`),
		)), Applied, Applied)
		require.Nil(t, dbUser(t, b.pool, "zhangsan"))
		u := dbUser(t, b.pool, "zhangsan001")
		require.NotNil(t, u)
		require.Equal(t, "张三丰", *u.Name)
		require.Equal(t, "13800000000", *u.Mobile)
		require.Equal(t, []membershipRow{{1, 0, true}, {2, 0, false}, {3, 0, false}}, u.Departments)
		require.Equal(t, 0, count(t, b.pool, `SELECT count(*) FROM wecom.user_departments WHERE userid = 'zhangsan'`))
		require.Equal(t, []string{"zhangsan001"}, strs(t, b.pool, `SELECT userid FROM wecom.tag_users WHERE tag_id = 7 ORDER BY userid`))
		require.Equal(t, []string{"zhangsan001"}, strs(t, b.pool, `SELECT userid FROM wecom.tag_users WHERE tag_id = 8 ORDER BY userid`))
		require.Equal(t, []string{"广州市", "zhangsan001"}, strs(t, b.pool, `SELECT raw->>'address' FROM wecom.users UNION ALL SELECT raw->>'new_user_id' FROM wecom.users`), "raw follows the rename")

		ch := changesAfter(t, b.pool, seq)
		require.Len(t, ch, 2)
		require.Equal(t, "zhangsan001", ch[0].Key)
		require.Equal(t, "updated", ch[0].Op)
		require.Equal(t, "zhangsan", ch[0].Before["userid"])
		require.Equal(t, "zhangsan001", ch[0].After["userid"])
		require.Equal(t, "tag", ch[1].Entity)
		require.Equal(t, []any{"lisi", "zhangsan001"}, ch[1].Before["users"])
		require.Equal(t, []any{"zhangsan001"}, ch[1].After["users"])
	})

	t.Run("DeleteUserRemovesMemberMembershipsAndTagMemberships", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(msg(event.ChangeCreateUser, fullCreate), msg(event.ChangeUpdateTag, `{"tag_id":7,"add_user_items":["zhangsan","lisi"]}`)))
		seq := lastSeq(t, b.pool)
		requireStatuses(t, apply(t, s, b.items(msg(event.ChangeDeleteUser, `{"user_id":"zhangsan"}`))), Applied)
		require.Nil(t, dbUser(t, b.pool, "zhangsan"))
		require.Equal(t, 0, count(t, b.pool, `SELECT count(*) FROM wecom.user_departments`))
		require.Equal(t, []string{"lisi"}, strs(t, b.pool, `SELECT userid FROM wecom.tag_users`))
		ch := changesAfter(t, b.pool, seq)
		require.Len(t, ch, 1)
		require.Equal(t, "deleted", ch[0].Op)
		require.Equal(t, "张三", ch[0].Before["name"])
		require.Nil(t, ch[0].After)

		// Deleting a member the mirror does not have changes nothing.
		seq = lastSeq(t, b.pool)
		requireStatuses(t, apply(t, s, b.items(msg(event.ChangeDeleteUser, `{"user_id":"nobody"}`))), Applied)
		require.Empty(t, changesAfter(t, b.pool, seq))
	})

	t.Run("PartyEventsCreateMoveRenameAndDelete", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(
			msg(event.ChangeCreateParty, `{"id":2,"name":"研发","parent_id":1,"order":100}`),
			msg(event.ChangeCreateParty, `{"id":3,"name":"测试","parent_id":2,"order":5}`),
		))
		d := dbDept(t, b.pool, 3)
		require.Equal(t, "测试", *d.Name)
		require.Equal(t, int64(2), *d.ParentID)
		require.Equal(t, int64(5), *d.SortOrder)
		require.Nil(t, d.NameEn)
		require.Equal(t, []string{FieldNameEn}, d.Unknown)

		seq := lastSeq(t, b.pool)
		apply(t, s, b.items(msg(event.ChangeUpdateParty, `{"id":3,"parent_id":1}`)))
		d = dbDept(t, b.pool, 3)
		require.Equal(t, int64(1), *d.ParentID, "moved")
		require.Equal(t, "测试", *d.Name, "name not carried, kept")
		apply(t, s, b.items(msg(event.ChangeUpdateParty, `{"id":3,"name":"质量"}`)))
		require.Equal(t, "质量", *dbDept(t, b.pool, 3).Name)
		ch := changesAfter(t, b.pool, seq)
		require.Len(t, ch, 2)
		require.Equal(t, "department", ch[0].Entity)
		require.Equal(t, "3", ch[0].Key)
		require.Equal(t, 2.0, ch[0].Before["parent_id"])
		require.Equal(t, 1.0, ch[0].After["parent_id"])

		// Deleting a department removes memberships and tag departments referencing it.
		apply(t, s, b.items(
			msg(event.ChangeCreateUser, `{"user_id":"wangwu","name":"王五","department":[2,3],"is_leader_in_dept":[0,1]}`),
			msg(event.ChangeUpdateTag, `{"tag_id":9,"add_party_items":[2,3]}`),
		))
		seq = lastSeq(t, b.pool)
		apply(t, s, b.items(msg(event.ChangeDeleteParty, `{"id":3}`)))
		require.Nil(t, dbDept(t, b.pool, 3))
		require.Equal(t, []membershipRow{{2, 0, false}}, dbUser(t, b.pool, "wangwu").Departments)
		require.Equal(t, []string{"2"}, strs(t, b.pool, `SELECT department_id::text FROM wecom.tag_departments`))
		ch = changesAfter(t, b.pool, seq)
		require.Len(t, ch, 2)
		require.Equal(t, []string{"department", "deleted"}, []string{ch[0].Entity, ch[0].Op})
		require.Equal(t, []string{"user", "updated", "wangwu"}, []string{ch[1].Entity, ch[1].Op, ch[1].Key})
	})

	t.Run("UpdateTagAppliesItemsAndCreatesUnseenTagsWithUnknownName", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(msg(event.ChangeUpdateTag, `{"tag_id":1,"add_user_items":["a","b","c"],"add_party_items":[4,5]}`)))
		var name *string
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT name FROM wecom.tags WHERE tag_id = 1`).Scan(&name))
		require.Nil(t, name)
		seq := lastSeq(t, b.pool)
		apply(t, s, b.items(msg(event.ChangeUpdateTag, `{"tag_id":1,"add_user_items":["d"],"del_user_items":["a","zz"],"del_party_items":[4]}`)))
		require.Equal(t, []string{"b", "c", "d"}, strs(t, b.pool, `SELECT userid FROM wecom.tag_users WHERE tag_id = 1 ORDER BY 1`))
		require.Equal(t, []string{"5"}, strs(t, b.pool, `SELECT department_id::text FROM wecom.tag_departments WHERE tag_id = 1`))
		ch := changesAfter(t, b.pool, seq)
		require.Len(t, ch, 1)
		require.Equal(t, map[string]any{"tag_id": 1.0, "name": nil, "users": []any{"b", "c", "d"}, "departments": []any{5.0}}, ch[0].After)
		require.Equal(t, []any{"a", "b", "c"}, ch[0].Before["users"])
	})

	t.Run("BatchJobResultIsRecordedForTheJobRunner", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		m := msgOf(event.EventBatchJobResult, "", `{"batch_job":{"job_id":"J1","job_type":"sync_user","err_code":0,"err_msg":"ok"}}`)
		requireStatuses(t, apply(t, s, b.items(m)), Applied)
		j, err := s.JobEvent(context.Background(), corp, "J1")
		require.NoError(t, err)
		require.Equal(t, "sync_user", j.JobType)
		require.Equal(t, m.ID, j.EventID)
		require.Equal(t, "J1", (<-b.jobs).JobID)
		_, err = s.JobEvent(context.Background(), corp, "J2")
		require.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("OtherEventsAreIgnored", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		res := apply(t, s, b.items(msgOf("change_external_contact", "add_external_contact", `{"user_id":"x"}`)))
		requireStatuses(t, res, Ignored)
		require.Equal(t, 0, count(t, b.pool, `SELECT count(*) FROM wecom.dead_letters`))
	})
}

func TestApplyLookups(t *testing.T) {
	t.Parallel()

	t.Run("MinimalCreateTakesTheLookedUpRecord", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		b.look.users["u1"] = &User{UserID: "u1", Name: "One", Mobile: "139", Gender: 2, Status: 1, MainDepartment: 2,
			OpenUserID: "ou1", ExtAttr: []byte(`{"attrs":[]}`), Departments: []Membership{{2, 7, true}},
			Raw: []byte(`{"userid":"u1","name":"One"}`), Unknown: []string{FieldEmail}}
		b.look.depts[2] = &Department{ID: 2, Name: "D", NameEn: "Dee", ParentID: 1, Order: 3}
		requireStatuses(t, apply(t, s, b.items(
			msg(event.ChangeCreateUser, `{"user_id":"u1","department":[2]}`),
			msg(event.ChangeCreateParty, `{"id":2,"parent_id":1}`),
		)), Applied, Applied)
		u := dbUser(t, b.pool, "u1")
		require.Equal(t, "One", *u.Name)
		require.Equal(t, "ou1", *u.OpenUserID)
		require.Nil(t, u.Email)
		require.Equal(t, []string{FieldEmail}, u.Unknown)
		require.Equal(t, []membershipRow{{2, 7, true}}, u.Departments)
		d := dbDept(t, b.pool, 2)
		require.Equal(t, "Dee", *d.NameEn)
		require.Empty(t, d.Unknown)
		require.Len(t, b.look.calls, 2)
	})

	t.Run("NotPermittedStoresWhatTheEventCarriedAndRecordsUnknownFields", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		b.look.err = errors.Join(errors.New("errcode 48009"), ErrLookupNotPermitted)
		apply(t, s, b.items(
			msg(event.ChangeCreateUser, `{"user_id":"u2","department":[1,4]}`),
			msg(event.ChangeCreateParty, `{"id":4,"parent_id":1}`),
		))
		u := dbUser(t, b.pool, "u2")
		require.Nil(t, u.Name)
		require.Nil(t, u.Mobile)
		require.Nil(t, u.Gender)
		require.Nil(t, u.MainDepartment)
		require.Equal(t, []membershipRow{{1, 0, false}, {4, 0, false}}, u.Departments)
		require.Equal(t, normUnknown(UserFields), u.Unknown)
		d := dbDept(t, b.pool, 4)
		require.Nil(t, d.Name)
		require.Equal(t, int64(1), *d.ParentID)
		require.Equal(t, []string{FieldName, FieldNameEn, FieldOrder}, d.Unknown)

		// A later event that carries a field makes it known.
		apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"u2","name":"Two"}`)))
		u = dbUser(t, b.pool, "u2")
		require.Equal(t, "Two", *u.Name)
		require.NotContains(t, u.Unknown, FieldName)
	})

	t.Run("NotFoundAppliesWhatTheEventSays", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		requireStatuses(t, apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"gone","new_user_id":"gone2","department":[3]}`))), Applied)
		u := dbUser(t, b.pool, "gone2")
		require.NotNil(t, u)
		require.Equal(t, []membershipRow{{3, 0, false}}, u.Departments)
		require.Equal(t, []string{"user:gone2"}, b.look.calls)
	})

	t.Run("UnseenRenamedMemberIsLookedUpByItsNewUserid", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		// A tag synced earlier still names the old userid.
		apply(t, s, b.items(msg(event.ChangeUpdateTag, `{"tag_id":3,"add_user_items":["old"]}`)))
		b.look.users["new"] = &User{UserID: "new", Name: "New", Departments: []Membership{{4, 1, false}}}
		requireStatuses(t, apply(t, s, b.items(
			msg(event.ChangeUpdateUser, `{"user_id":"old","new_user_id":"new"}`),
			msg(event.ChangeUpdateUser, `{"user_id":"new","position":"p"}`),
		)), Applied, Applied)
		u := dbUser(t, b.pool, "new")
		require.Equal(t, "New", *u.Name)
		require.Equal(t, "p", *u.Position)
		require.Equal(t, []membershipRow{{4, 1, false}}, u.Departments)
		require.Equal(t, []string{"user:new"}, b.look.calls)
		require.Equal(t, []string{"new"}, strs(t, b.pool, `SELECT userid FROM wecom.tag_users WHERE tag_id = 3`))
	})

	t.Run("LateRenameOfAMemberTheMirrorHasUnderItsNewUserid", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(msg(event.ChangeCreateUser, `{"user_id":"new","name":"N","department":[1]}`)))
		seq := lastSeq(t, b.pool)
		requireStatuses(t, apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"old","new_user_id":"new","department":[1,2]}`))), Applied)
		// The mirror has the member; only its department details are looked up (not found
		// here, so the carried departments stand).
		require.Equal(t, []string{"user:new"}, b.look.calls)
		u := dbUser(t, b.pool, "new")
		require.Equal(t, "N", *u.Name)
		require.Equal(t, []membershipRow{{1, 0, false}, {2, 0, false}}, u.Departments)
		ch := changesAfter(t, b.pool, seq)
		require.Len(t, ch, 1)
		require.Equal(t, "new", ch[0].Before["userid"])
	})

	t.Run("LaterDeleteInTheSameBatchWinsOverTheLookup", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		b.look.users["u3"] = &User{UserID: "u3", Name: "Three", Departments: []Membership{{1, 0, false}}}
		requireStatuses(t, apply(t, s, b.items(
			msg(event.ChangeCreateUser, `{"user_id":"u3","department":[1]}`),
			msg(event.ChangeDeleteUser, `{"user_id":"u3"}`),
		)), Applied, Applied)
		require.Nil(t, dbUser(t, b.pool, "u3"))
		ch := changesAfter(t, b.pool, 0)
		require.Len(t, ch, 2)
		require.Equal(t, []string{"created", "deleted"}, []string{ch[0].Op, ch[1].Op})
	})

	t.Run("NoLookupForMembersTheMirrorKnowsWhenTheEventSuffices", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(msg(event.ChangeCreateUser, fullCreate)))
		apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","position":"总监"}`)))
		apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","department":[9],"is_leader_in_dept":[0]}`)))
		require.Empty(t, b.look.calls)
		require.Equal(t, []membershipRow{{9, 0, false}}, dbUser(t, b.pool, "zhangsan").Departments)
	})

	t.Run("TransientLookupErrorCommitsNothing", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		b.look.err = errors.New("connection refused")
		_, err := s.ApplyBatch(context.Background(), corp, b.items(
			msg(event.ChangeCreateUser, fullCreate),
			msg(event.ChangeCreateUser, `{"user_id":"u4","department":[1]}`),
		))
		require.ErrorContains(t, err, "connection refused")
		require.Nil(t, dbUser(t, b.pool, "zhangsan"))
		require.Equal(t, 0, count(t, b.pool, `SELECT count(*) FROM wecom.lanes`))
	})
}

func TestApplyExactlyOnce(t *testing.T) {
	t.Parallel()

	t.Run("RedeliveredBatchIsDuplicateAndWritesNothing", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		items := b.items(msg(event.ChangeCreateUser, fullCreate), msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","name":"X"}`))
		requireStatuses(t, apply(t, s, items), Applied, Applied)
		seq := lastSeq(t, b.pool)
		requireStatuses(t, apply(t, s, items), Duplicate, Duplicate)
		require.Empty(t, changesAfter(t, b.pool, seq))
		require.Equal(t, "X", *dbUser(t, b.pool, "zhangsan").Name)
	})

	t.Run("SameEventUnderANewStreamSequenceIsDuplicate", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		m := msg(event.ChangeCreateUser, fullCreate)
		apply(t, s, b.items(m))
		seq := lastSeq(t, b.pool)
		requireStatuses(t, apply(t, s, b.items(m, msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","alias":"z"}`), m)), Duplicate, Applied, Duplicate)
		require.Len(t, changesAfter(t, b.pool, seq), 1)
	})

	t.Run("ADuplicateFoundAfterTheWritesWentIsAppliedAgain", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		m1 := msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","alias":"a1"}`)
		apply(t, s, b.items(msg(event.ChangeCreateUser, fullCreate), m1))
		// Every statement the next batch writes with is known now, so its writes are
		// sent before the event ids' result is read.
		apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","alias":"a2"}`)))
		seq := lastSeq(t, b.pool)
		require.Zero(t, s.appliedAgain.Load())
		// m1 again under a new stream sequence: applied before, which the writes sent
		// early did not know (they set alias a1, then a3).
		res := apply(t, s, b.items(m1, msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","alias":"a3"}`)))
		requireStatuses(t, res, Duplicate, Applied)
		require.Equal(t, int64(1), s.appliedAgain.Load(), "the first attempt was rolled back")
		ch := changesAfter(t, b.pool, seq)
		require.Len(t, ch, 1)
		require.Equal(t, "a2", ch[0].Before["alias"])
		require.Equal(t, "a3", ch[0].After["alias"])
		require.Equal(t, "a3", *dbUser(t, b.pool, "zhangsan").Alias)
		// The batch applied once: a redelivery is a duplicate throughout.
		requireStatuses(t, apply(t, s, b.items(m1)), Duplicate)
	})

	t.Run("ABatchOfDuplicatesIsTheFirstOfANewStore", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		items := b.items(msg(event.ChangeCreateUser, fullCreate))
		requireStatuses(t, apply(t, s, items), Applied)
		// A restarted worker's first batch: redelivered, so nothing to write but COMMIT,
		// and no statement this store has written with yet.
		fresh := NewStore(b.pool, b.look, nil, Options{})
		requireStatuses(t, apply(t, fresh, items), Duplicate)
		requireStatuses(t, apply(t, fresh, b.items(msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","alias":"z"}`))), Applied)
		require.Equal(t, "z", *dbUser(t, b.pool, "zhangsan").Alias)
	})

	t.Run("OutOfOrderOldSequencesAreDuplicates", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		m1, m2, m3 := msg(event.ChangeCreateUser, fullCreate), msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","alias":"a2"}`), msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","alias":"a3"}`)
		requireStatuses(t, apply(t, s, []Item{{StreamSeq: 10, Msg: m1}, {StreamSeq: 12, Msg: m3}}), Applied, Applied)
		// Sequence 11 arrives late (and 12 again): both are at or below the lane position.
		requireStatuses(t, apply(t, s, []Item{{StreamSeq: 11, Msg: m2}, {StreamSeq: 12, Msg: m3}, {StreamSeq: 13, Msg: m2}, {StreamSeq: 13, Msg: m3}}), Duplicate, Duplicate, Applied, Duplicate)
		require.Equal(t, "a2", *dbUser(t, b.pool, "zhangsan").Alias)
		require.Equal(t, 13, count(t, b.pool, `SELECT last_stream_seq FROM wecom.lanes WHERE corp_id = $1`, corp))
	})

	t.Run("ReapplyingTheSameContentWritesNoChangeRow", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(msg(event.ChangeCreateUser, fullCreate), msg(event.ChangeCreateParty, `{"id":2,"name":"n","parent_id":1,"order":1}`),
			msg(event.ChangeUpdateTag, `{"tag_id":1,"add_user_items":["zhangsan"]}`)))
		seq := lastSeq(t, b.pool)
		// Distinct events (new ids) whose content the mirror already has.
		requireStatuses(t, apply(t, s, b.items(msg(event.ChangeCreateUser, fullCreate), msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","name":"张三"}`),
			msg(event.ChangeCreateParty, `{"id":2,"name":"n","parent_id":1,"order":1}`),
			msg(event.ChangeUpdateTag, `{"tag_id":1,"add_user_items":["zhangsan"]}`))), Applied, Applied, Applied, Applied)
		require.Empty(t, changesAfter(t, b.pool, seq))
	})
}

func TestApplyPoison(t *testing.T) {
	t.Parallel()

	t.Run("PoisonItemsAreDeadLetteredAndTheRestApplies", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		unparsed := msgOf("unparsed", "", `{}`)
		unknownType := msg("merge_user", `{"user_id":"a"}`)
		invalid := msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","gender":"x"}`)
		missing := msg(event.ChangeCreateParty, `{"name":"no id"}`)
		items := []Item{
			{StreamSeq: 1, Subject: "wecom.events.wwcorp0001.change_contact.create_user", Raw: []byte("{not json")},
			{StreamSeq: 2, Msg: msg(event.ChangeCreateUser, fullCreate)},
			{StreamSeq: 3, Msg: unparsed},
			{StreamSeq: 4, Msg: unknownType},
			{StreamSeq: 5, Msg: invalid},
			{StreamSeq: 6, Msg: missing},
			{StreamSeq: 7, Msg: msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","alias":"ok"}`)},
		}
		res := apply(t, s, items)
		requireStatuses(t, res, Poison, Applied, Poison, Poison, Poison, Poison, Applied)
		require.Equal(t, "ok", *dbUser(t, b.pool, "zhangsan").Alias)
		require.Contains(t, res[4].Reason, "gender")

		dl, err := s.DeadLetters(context.Background(), corp, 10)
		require.NoError(t, err)
		require.Len(t, dl, 5)
		require.Equal(t, []byte("{not json"), dl[0].Payload)
		require.Equal(t, "wecom.events.wwcorp0001.change_contact.create_user", dl[0].Subject)
		require.Equal(t, res[0].DeadLetterID, dl[0].ID)
		require.Equal(t, uint64(5), dl[3].StreamSeq)
		require.Equal(t, invalid.ID, dl[3].EventID)
		require.Equal(t, "wecom.events.wwcorp0001.change_contact.update_user", dl[3].Subject)

		// Redelivery of the whole batch is a duplicate: no second dead letter.
		requireStatuses(t, apply(t, s, items), Duplicate, Duplicate, Duplicate, Duplicate, Duplicate, Duplicate, Duplicate)
		require.Equal(t, 5, count(t, b.pool, `SELECT count(*) FROM wecom.dead_letters`))
	})

	t.Run("ReplayAppliesAFixedDeadLetterOnce", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(msg(event.ChangeCreateUser, fullCreate)))
		bad := msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","gender":"x","alias":"replayed"}`)
		res := apply(t, s, b.items(bad))
		requireStatuses(t, res, Poison)
		d, err := s.DeadLetter(context.Background(), res[0].DeadLetterID)
		require.NoError(t, err)
		require.Equal(t, bad.ID, d.EventID)
		require.Nil(t, d.ReplayedAt)

		// The operator fixes the payload and replays it outside the lane (StreamSeq 0).
		fixed := *bad
		fixed.Data = []byte(`{"user_id":"zhangsan","alias":"replayed"}`)
		requireStatuses(t, apply(t, s, []Item{{Msg: &fixed}}), Applied)
		require.NoError(t, s.MarkReplayed(context.Background(), d.ID))
		require.Equal(t, "replayed", *dbUser(t, b.pool, "zhangsan").Alias)
		requireStatuses(t, apply(t, s, []Item{{Msg: &fixed}}), Duplicate)
		left, err := s.DeadLetters(context.Background(), corp, 10)
		require.NoError(t, err)
		require.Empty(t, left)
		d, err = s.DeadLetter(context.Background(), d.ID)
		require.NoError(t, err)
		require.NotNil(t, d.ReplayedAt)
		require.ErrorIs(t, s.MarkReplayed(context.Background(), 999999), ErrNotFound)
		_, err = s.DeadLetter(context.Background(), 999999)
		require.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("MessageOfAnotherCorpIsPoison", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		m := msg(event.ChangeCreateUser, fullCreate)
		m.CorpID = "other"
		requireStatuses(t, apply(t, s, b.items(m)), Poison)
		require.Nil(t, dbUser(t, b.pool, "zhangsan"))
	})
}

func TestIsEmpty(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	empty, err := s.IsEmpty(context.Background(), corp)
	require.NoError(t, err)
	require.True(t, empty)
	apply(t, s, b.items(msg(event.ChangeCreateParty, `{"id":2,"name":"n","parent_id":1}`)))
	empty, err = s.IsEmpty(context.Background(), corp)
	require.NoError(t, err)
	require.False(t, empty)
}

func TestApplyEdges(t *testing.T) {
	t.Parallel()

	t.Run("EmptyBatchDoesNothing", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		res, err := s.ApplyBatch(context.Background(), corp, nil)
		require.NoError(t, err)
		require.Empty(t, res)
		require.Equal(t, 0, count(t, b.pool, `SELECT count(*) FROM wecom.lanes`))
	})

	t.Run("EventsWithoutIdsAreNotDedupedAgainstEachOther", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		m1, m2 := msg(event.ChangeCreateUser, fullCreate), msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","alias":"x"}`)
		m1.ID, m2.ID = "", ""
		requireStatuses(t, apply(t, s, b.items(m1, m2)), Applied, Applied)
		require.Equal(t, "x", *dbUser(t, b.pool, "zhangsan").Alias)
	})

	t.Run("MetricsCountOutcomesOnTheGivenRegistry", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		pool := pgtest.New(t)
		s := NewStore(pool, nil, nil, Options{Metrics: NewMetrics(reg)})
		_, err := s.ApplyBatch(context.Background(), corp, []Item{
			{StreamSeq: 1, Msg: msg(event.ChangeCreateUser, fullCreate)},
			{StreamSeq: 2, Msg: msgOf("unparsed", "", `{}`)},
			{StreamSeq: 2, Msg: msg(event.ChangeDeleteUser, `{"user_id":"zhangsan"}`)},
		})
		require.NoError(t, err)
		require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.Applied.WithLabelValues(event.ChangeCreateUser, "applied")))
		require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.Applied.WithLabelValues("unparsed", "poison")))
		require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.Applied.WithLabelValues(event.ChangeDeleteUser, "duplicate")))
		require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.DeadLetters.WithLabelValues(corp)))
		require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.Changes.WithLabelValues("user", "created", "callback")))
		n, err := testutil.GatherAndCount(reg, "wecomsync_mirror_batch_size", "wecomsync_mirror_apply_seconds")
		require.NoError(t, err)
		require.Equal(t, 2, n)
	})
}

func TestPruneAppliedEvents(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	m := msg(event.ChangeCreateUser, fullCreate)
	apply(t, s, b.items(m))
	n, err := s.PruneAppliedEvents(context.Background(), time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Zero(t, n, "recent ids are kept")
	n, err = s.PruneAppliedEvents(context.Background(), time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	// Past the prune only the lane position protects: a replay outside the lane (seq 0)
	// applies again, and changes nothing.
	seq := lastSeq(t, b.pool)
	requireStatuses(t, apply(t, s, []Item{{Msg: m}}), Applied)
	require.Empty(t, changesAfter(t, b.pool, seq))
}

func TestApplyMinimalMove(t *testing.T) {
	t.Parallel()

	t.Run("TakesLeaderFlagsOrderAndMainDepartmentFromTheCurrentRecord", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(msg(event.ChangeCreateUser,
			`{"user_id":"m1","name":"M","position":"p","department":[1],"is_leader_in_dept":[0],"main_department":1}`)))
		// WeCom moved the member to departments 2 and 3, leading 3, main department 3.
		b.look.users["m1"] = &User{UserID: "m1", Name: "M (current)", MainDepartment: 3,
			Departments: []Membership{{2, 5, false}, {3, 9, true}}}
		requireStatuses(t, apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"m1","department":[2,3]}`))), Applied)
		u := dbUser(t, b.pool, "m1")
		require.Equal(t, []membershipRow{{2, 5, false}, {3, 9, true}}, u.Departments)
		require.Equal(t, int64(3), *u.MainDepartment)
		require.NotContains(t, u.Unknown, FieldOrder)
		require.NotContains(t, u.Unknown, FieldIsLeader)
		require.NotContains(t, u.Unknown, FieldMainDepartment)
		// Only memberships come from the lookup: the rest of the row is the mirror's.
		require.Equal(t, "M", *u.Name)
		require.Equal(t, "p", *u.Position)
		require.Equal(t, []string{"user:m1"}, b.look.calls)
	})

	t.Run("NotPermittedKeepsTheCarriedDepartmentsWithUnknownFlags", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(msg(event.ChangeCreateUser,
			`{"user_id":"m2","name":"M","department":[1],"is_leader_in_dept":[1],"main_department":1}`)))
		b.look.err = errors.Join(errors.New("errcode 60011"), ErrLookupNotPermitted)
		apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"m2","department":[1,4]}`)))
		u := dbUser(t, b.pool, "m2")
		require.Equal(t, []membershipRow{{1, 0, true}, {4, 0, false}}, u.Departments)
		require.Contains(t, u.Unknown, FieldIsLeader)
		require.Contains(t, u.Unknown, FieldOrder)
	})

	t.Run("AFullEventIsNotLookedUp", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		apply(t, s, b.items(msg(event.ChangeCreateUser, `{"user_id":"m3","name":"M","department":[1],"is_leader_in_dept":[0],"main_department":1}`)))
		apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"m3","department":[2],"is_leader_in_dept":[1],"main_department":2}`)))
		require.Empty(t, b.look.calls)
		u := dbUser(t, b.pool, "m3")
		require.Equal(t, []membershipRow{{2, 0, true}}, u.Departments)
	})
}

func TestApplyPrepared(t *testing.T) {
	t.Parallel()

	t.Run("ItemsPreparedAheadApplyAsTheirDecodedChange", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		items := b.items(msg(event.ChangeCreateUser, fullCreate),
			msg(event.ChangeUpdateUser, `{"user_id":"zhangsan","position":"总监"}`),
			msg("no_such_change", `{}`))
		for i := range items {
			items[i].Prep = Prepare(corp, items[i])
		}
		requireStatuses(t, apply(t, s, items), Applied, Applied, Poison)
		u := dbUser(t, b.pool, "zhangsan")
		require.NotNil(t, u)
		require.Equal(t, "总监", *u.Position)
		require.Equal(t, "13800000000", *u.Mobile)
	})

	t.Run("AnItemPreparedForAnotherCorpIsDecodedAgain", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		items := b.items(msg(event.ChangeCreateUser, fullCreate))
		// Prepared for another lane it is poison there ("message of corp ... in the lane
		// of corp other"); this corp's ApplyBatch must not take that verdict.
		items[0].Prep = Prepare("other-corp", items[0])
		require.NotEmpty(t, items[0].Prep.p.poison)
		requireStatuses(t, apply(t, s, items), Applied)
		require.NotNil(t, dbUser(t, b.pool, "zhangsan"))
	})
}

// TestRawAccMerge checks the raw column's merge of several parts against decoding them
// into one map (later keys win), which is what Postgres's jsonb keeps of duplicate keys.
func TestRawAccMerge(t *testing.T) {
	t.Parallel()
	for _, parts := range [][]string{
		{`{"a":1,"b":"x"}`, `{"b":"y","c":[1,2]}`},
		{` { "a" : {"n":1} } `, `{}`, `{"a":{"m":2}}`, ` {"d":null}`},
		{`{}`, `{}`},
		{`null`, `{"a":"\u5f20"}`, `[1,2]`, `"s"`},
		{`{"a":1}`, `{"a":2}`, `{"a":3}`},
	} {
		acc := &rawAcc{}
		want := map[string]json.RawMessage{}
		for _, p := range parts {
			acc.parts = append(acc.parts, json.RawMessage(p))
			var m map[string]json.RawMessage
			if json.Unmarshal([]byte(p), &m) == nil {
				for k, v := range m {
					want[k] = v
				}
			}
		}
		var got map[string]any
		require.NoError(t, json.Unmarshal(acc.value(), &got), "%s", acc.value())
		wantJSON, err := json.Marshal(want)
		require.NoError(t, err)
		require.JSONEq(t, string(wantJSON), string(acc.value()), "parts %q", parts)
	}
}

// TestApplyMergesRawInOneBatch applies a create and two updates of one member in one
// batch: the raw column holds the last value of each key, as separate batches give.
func TestApplyMergesRawInOneBatch(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	requireStatuses(t, apply(t, s, b.items(
		msg(event.ChangeCreateUser, `{"user_id":"wangwu","name":"王五","department":[1],"position":"工程师","address":"广州市"}`),
		msg(event.ChangeUpdateUser, `{"user_id":"wangwu","position":"经理"}`),
		msg(event.ChangeUpdateUser, `{"user_id":"wangwu","position":"总监","mobile":"13900000000"}`),
	)), Applied, Applied, Applied)
	var raw map[string]any
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT raw FROM wecom.users WHERE userid = 'wangwu'`).Scan(&raw))
	require.Equal(t, "总监", raw["position"])
	require.Equal(t, "广州市", raw["address"])
	require.Equal(t, "13900000000", raw["mobile"])
	require.Equal(t, "王五", raw["name"])
}

// TestApplyRefreshesMemberStatistics checks that events creating Options.AnalyzeAfter
// members refresh the member tables' planner statistics, once, and not again within a
// minute.
func TestApplyRefreshesMemberStatistics(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	analyzed := func() int {
		return count(t, b.pool, `SELECT analyze_count FROM pg_stat_user_tables WHERE schemaname = 'wecom' AND relname = 'users'`)
	}
	create := func(s *Store, ids ...string) {
		var ms []*event.Message
		for _, id := range ids {
			ms = append(ms, msg(event.ChangeCreateUser, `{"user_id":"`+id+`","name":"`+id+`","department":[1]}`))
		}
		apply(t, s, b.items(ms...))
		s.WaitAnalyze()
	}
	off := NewStore(b.pool, nil, nil, Options{AnalyzeAfter: -1})
	create(off, "a1", "a2", "a3", "a4")
	require.Zero(t, analyzed(), "refreshes are off")

	s := NewStore(b.pool, nil, nil, Options{AnalyzeAfter: 3})
	create(s, "b1", "b2")
	require.Zero(t, analyzed(), "two members: below the threshold")
	// An update creates nobody.
	apply(t, s, b.items(msg(event.ChangeUpdateUser, `{"user_id":"b1","position":"x"}`)))
	s.WaitAnalyze()
	require.Zero(t, analyzed())
	create(s, "b3")
	require.Equal(t, 1, analyzed(), "the third member reaches the threshold")
	create(s, "c1", "c2", "c3", "c4")
	require.Equal(t, 1, analyzed(), "not again within a minute")
}
