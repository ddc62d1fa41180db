package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBatchSyncUser(t *testing.T) {
	t.Parallel()

	t.Run("UpdatesOnlyPresentColumnsCreatesNewAndLeavesOthers", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		d := e.srv.Directory()
		before, _ := d.User("u000001")
		other, _ := d.User("u000002")
		res := e.runImport(t, "syncuser", memberCSV("姓名,帐号,手机号,所在部门,职位",
			fmt.Sprintf("%s,u000001,%s,%d,新职位", before.Name, before.Mobile, before.Departments[0]),
			"新人,newbie,13912345678,1,实习生"))
		require.EqualValues(t, 0, res["errcode"])
		require.Equal(t, "sync_user", res["type"])
		require.EqualValues(t, 2, res["total"])
		require.EqualValues(t, 100, res["percentage"])
		require.Equal(t, []map[string]any{
			{"userid": "u000001", "errcode": 0.0, "errmsg": "ok"},
			{"userid": "newbie", "errcode": 0.0, "errmsg": "ok"},
		}, results(t, res))

		after, _ := d.User("u000001")
		require.Equal(t, "新职位", after.Position)
		require.Equal(t, before.Email, after.Email, "absent column untouched")
		require.Equal(t, before.Alias, after.Alias)
		require.Equal(t, before.ExtAttr, after.ExtAttr)
		nb, ok := d.User("newbie")
		require.True(t, ok)
		require.Equal(t, "实习生", nb.Position)
		require.Equal(t, 4, nb.Status, "created members are not activated")
		still, _ := d.User("u000002")
		require.Same(t, other, still, "members absent from a sync file are untouched")
	})
	t.Run("RowErrorsDoNotStopTheJob", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		res := e.runImport(t, "syncuser", memberCSV("姓名,帐号,手机号,所在部门",
			"甲,jia,13900000001,1",
			"乙,yi,notamobile,1",
			"丙,bing!,13900000003,1",
			",ding,13900000004,1",
			"戊,wu,13900000005,1"))
		require.EqualValues(t, 0, res["errcode"])
		codes := []int{}
		for _, r := range results(t, res) {
			codes = append(codes, int(r["errcode"].(float64)))
		}
		require.Equal(t, []int{0, CodeInvalidMobile, CodeInvalidUserID, CodeInvalidName, 0}, codes)
		_, ok := e.srv.Directory().User("wu")
		require.True(t, ok)
	})
	t.Run("UnknownDepartmentIsCreatedUnderPending", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		res := e.runImport(t, "syncuser", memberCSV("姓名,帐号,邮箱,所在部门,是否部门内领导",
			"甲,jia,jia@example.com,1;9001,0;1",
			"乙,yi,yi@example.com,9001;9002,0;0"))
		for _, r := range results(t, res) {
			require.EqualValues(t, 0, r["errcode"], r)
		}
		d := e.srv.Directory()
		dep, ok := d.Department(9001)
		require.True(t, ok)
		pending, ok := d.Department(dep.ParentID)
		require.True(t, ok)
		require.Equal(t, "其他（待设置部门）", pending.Name)
		require.Equal(t, 1, pending.ParentID)
		dep2, _ := d.Department(9002)
		require.Equal(t, pending.ID, dep2.ParentID, "one pending department for all")
		require.Equal(t, []string{"jia"}, dep.DepartmentLeader)
	})
	t.Run("ExtensionColumnsMergeIntoExtAttr", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		u, _ := e.srv.Directory().User("u000003")
		e.runImport(t, "syncuser", memberCSV("姓名,帐号,手机号,所在部门,爱好",
			fmt.Sprintf("%s,u000003,%s,%d,篮球", u.Name, u.Mobile, u.Departments[0])))
		after, _ := e.srv.Directory().User("u000003")
		require.Len(t, after.ExtAttr.Attrs, len(u.ExtAttr.Attrs)+1)
		require.Equal(t, u.ExtAttr.Attrs[0], after.ExtAttr.Attrs[0], "existing attributes kept")
		require.Equal(t, "篮球", after.ExtAttr.Attrs[len(after.ExtAttr.Attrs)-1].Text.Value)
	})
	t.Run("FileErrorsFailTheWholeJob", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		for _, tc := range []struct {
			file string
			code int
		}{
			{memberCSV("姓名,帐号,所在部门", "甲,jia,1"), CodeInvalidImportFile},
			{memberCSV("姓名,帐号,手机号,所在部门", "甲,jia,13900000001,1", "乙,JIA,13900000002,1"), CodeDupUserID},
		} {
			res := e.runImport(t, "syncuser", tc.file)
			requireCode(t, res, tc.code)
			require.EqualValues(t, 3, res["status"])
			require.Empty(t, results(t, res))
			_, ok := e.srv.Directory().User("jia")
			require.False(t, ok, "nothing applied")
		}
	})
	t.Run("AppSecretCannotImport", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		id := e.mediaID(t, memberCSV("姓名,帐号,手机号,所在部门", "甲,jia,13900000001,1"))
		requireCode(t, e.do(t, "POST", "/cgi-bin/batch/syncuser", e.tok[SecretApp], map[string]any{"media_id": id}), CodeNoPermission)
	})
}

func TestBatchReplaceUser(t *testing.T) {
	t.Parallel()

	t.Run("DeletesAbsentMembers", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate(), withSeed(10))
		d := e.srv.Directory()
		rows := keepRows(t, d, "u000001", "u000002", "u000003", "u000004", "u000005", "u000006", "u000007", "u000008")
		rows = append(rows, "新人,newbie,13912345678,1")
		res := e.runImport(t, "replaceuser", memberCSV("姓名,帐号,手机号,所在部门", rows...))
		requireCode(t, res, 0, "ok")
		require.Equal(t, "replace_user", res["type"])
		require.Len(t, results(t, res), 9, "result lists the file rows")
		require.Equal(t, 9, d.UserCount())
		for _, gone := range []string{"u000009", "u000010"} {
			_, ok := d.User(gone)
			require.False(t, ok, gone)
		}
		for _, tag := range d.Tags() {
			require.NotContains(t, tag.Users, "u000009")
		}
	})
	for _, tc := range []struct {
		name      string
		seed, del int
		code      int
	}{
		{"Deleting51Of100IsBlocked", 100, 51, CodeDeleteProtection},
		{"Deleting50Of100IsAllowed", 100, 50, 0},
		{"Deleting49Of100IsAllowed", 100, 49, 0},
		{"Deleting41Of50IsBlocked", 50, 41, CodeDeleteProtection},
		{"Deleting40Of50IsAllowed", 50, 40, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, immediate(), withSeed(tc.seed))
			d := e.srv.Directory()
			var keep []string
			for i := tc.del + 1; i <= tc.seed; i++ {
				keep = append(keep, fmt.Sprintf("u%06d", i))
			}
			r := e.submit(t, e.tok[SecretContact], "replaceuser", memberCSV("姓名,帐号,手机号,所在部门", keepRows(t, d, keep...)...), nil)
			requireCode(t, r, 0)
			res := e.contact(t, "GET", "/cgi-bin/batch/getresult?jobid="+r["jobid"].(string), nil)
			requireCode(t, res, tc.code)
			require.EqualValues(t, 3, res["status"])
			ev := e.recv.next(t)
			require.Equal(t, "batch_job_result", ev["Event"], "no change_contact for contacts-sync job writes: %s", ev["_raw"])
			require.Equal(t, r["jobid"], ev["BatchJob/JobId"])
			require.Equal(t, "replace_user", ev["BatchJob/JobType"])
			require.Equal(t, fmt.Sprint(tc.code), ev["BatchJob/ErrCode"])
			if tc.code != 0 {
				require.Equal(t, tc.seed, d.UserCount(), "a blocked job deletes nothing")
			} else {
				require.Equal(t, tc.seed-tc.del, d.UserCount())
			}
			e.requireNoCallback(t)
		})
	}
}

func TestBatchReplaceParty(t *testing.T) {
	t.Parallel()
	e := setup(t, immediate(), withSeed(0))
	mk := func(id, parent int, name string, order int) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/department/create",
			map[string]any{"id": id, "parentid": parent, "name": name, "order": order}), 0)
	}
	mk(2, 1, "A", 10)
	mk(3, 2, "B", 10) // absent from the file, has a member: kept
	mk(4, 1, "C", 10) // absent, empty: deleted
	mk(5, 1, "D", 10)
	mk(6, 1, "F", 10) // unchanged
	mk(7, 4, "G", 1)  // absent, empty child of an absent department: deleted too
	requireCode(t, e.contact(t, "POST", "/cgi-bin/user/create", newUser("member", "13800000009")), 0)
	requireCode(t, e.contact(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "member", "department": []int{3}}), 0)

	res := e.runImport(t, "replaceparty", "部门名称,部门ID,父部门ID,排序\n"+
		"E,8,2,\n"+ // child listed before its parent's rename: applied parents first
		"A2,2,1,0\n"+
		"D,5,2,7\n"+
		"F,6,1,10\n"+
		"X,9,6,3\n")
	requireCode(t, res, 0, "ok")
	require.Equal(t, "replace_party", res["type"])
	require.Equal(t, []map[string]any{
		{"action": 1.0, "partyid": 8.0, "errcode": 0.0, "errmsg": "ok"},
		{"action": 2.0, "partyid": 2.0, "errcode": 0.0, "errmsg": "ok"},
		{"action": 12.0, "partyid": 5.0, "errcode": 0.0, "errmsg": "ok"},
		{"action": 0.0, "partyid": 6.0, "errcode": 0.0, "errmsg": "ok"},
		{"action": 1.0, "partyid": 9.0, "errcode": 0.0, "errmsg": "ok"},
	}, results(t, res))
	d := e.srv.Directory()
	deps, _ := d.Departments(0)
	got := map[int]Department{}
	for _, dep := range deps {
		got[dep.ID] = dep
	}
	require.ElementsMatch(t, []int{1, 2, 3, 5, 6, 8, 9}, slices.Collect(func(yield func(int) bool) {
		for id := range got {
			if !yield(id) {
				return
			}
		}
	}))
	require.Equal(t, "A2", got[2].Name)
	require.Equal(t, 2, got[5].ParentID)
	require.EqualValues(t, 7, got[5].Order)
	require.Equal(t, 2, got[3].ParentID, "non-empty absent department kept in place")
	require.EqualValues(t, 3, got[9].Order)

	t.Run("FileErrorsFailTheJob", func(t *testing.T) {
		for _, tc := range []struct {
			file string
			code int
		}{
			{"部门名称,部门ID\nA,2\n", CodeInvalidImportFile},
			{"部门名称,部门ID,父部门ID\nA,2,1\nB,2,1\n", CodeDupPartyID},
			{"部门名称,部门ID,父部门ID\nA,2,1\nA,3,1\n", CodeDupSiblingName},
			{"部门名称,部门ID,父部门ID\nA,2,77\n", CodeInvalidTree},
		} {
			res := e.runImport(t, "replaceparty", tc.file)
			requireCode(t, res, tc.code)
		}
		_, ok := d.Department(8)
		require.True(t, ok, "nothing applied by failed jobs")
	})
}

func TestImportJobLifecycle(t *testing.T) {
	t.Parallel()
	file := memberCSV("姓名,帐号,手机号,所在部门", "甲,jia,13900000001,1", "乙,yi,13900000002,1")

	t.Run("ProgressesWithTheServerClock", func(t *testing.T) {
		t.Parallel()
		clk := newJobClock()
		e := setup(t, slowJobs(clk)...)
		r := e.submit(t, e.tok[SecretContact], "syncuser", file, nil)
		requireCode(t, r, 0, "ok")
		id := r["jobid"].(string)
		require.LessOrEqual(t, len(id), 64)
		get := func() map[string]any { return e.contact(t, "GET", "/cgi-bin/batch/getresult?jobid="+id, nil) }

		res := get()
		require.Equal(t, map[string]any{"errcode": 0.0, "errmsg": "ok", "status": 1.0, "type": "sync_user",
			"total": 2.0, "percentage": 0.0, "result": []any{}}, res)
		clk.Add(3 * time.Second)
		res = get()
		require.EqualValues(t, 2, res["status"])
		require.EqualValues(t, 30, res["percentage"])
		_, ok := e.srv.Directory().User("jia")
		require.False(t, ok, "applied only when done")
		clk.Add(6 * time.Second)
		require.EqualValues(t, 90, get()["percentage"])
		clk.Add(time.Second)
		res = get()
		require.EqualValues(t, 3, res["status"])
		require.EqualValues(t, 100, res["percentage"])
		require.Len(t, results(t, res), 2)
		_, ok = e.srv.Directory().User("jia")
		require.True(t, ok)
	})
	t.Run("LongFilesTakeLonger", func(t *testing.T) {
		t.Parallel()
		clk := newJobClock()
		e := setup(t, withClock(clk), withJobs(JobsConfig{RowsPerSecond: 1, MinDuration: time.Second, TickInterval: time.Hour}))
		r := e.submit(t, e.tok[SecretContact], "syncuser", file, nil)
		clk.Add(time.Second)
		require.EqualValues(t, 50, e.contact(t, "GET", "/cgi-bin/batch/getresult?jobid="+r["jobid"].(string), nil)["percentage"])
	})
	t.Run("OneImportAtATime", func(t *testing.T) {
		t.Parallel()
		clk := newJobClock()
		e := setup(t, slowJobs(clk)...)
		requireCode(t, e.submit(t, e.tok[SecretContact], "syncuser", file, nil), 0)
		requireCode(t, e.submit(t, e.tok[SecretContact], "replaceparty", "部门名称,部门ID,父部门ID\nA,2,1\n", nil), CodeImportRunning)
		requireCode(t, e.submit(t, e.tok[SecretConsole], "replaceuser", file, nil), CodeImportRunning)
		require.Equal(t, 1, e.srv.FinishJobs())
		requireCode(t, e.submit(t, e.tok[SecretContact], "syncuser", file, nil), 0)
	})
	t.Run("FinishesThroughTheAdminEndpoint", func(t *testing.T) {
		t.Parallel()
		clk := newJobClock()
		e := setup(t, slowJobs(clk)...)
		r := e.submit(t, e.tok[SecretContact], "syncuser", file, nil)
		require.Equal(t, map[string]any{"finished": 1.0}, e.do(t, "POST", "/admin/jobs/finish", "", nil))
		require.EqualValues(t, 3, e.contact(t, "GET", "/cgi-bin/batch/getresult?jobid="+r["jobid"].(string), nil)["status"])
		require.Equal(t, "batch_job_result", e.recv.next(t)["Event"])
	})
	t.Run("KeepsOnlyTheLastFiveResults", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		var ids []string
		for i := 0; i < 6; i++ {
			r := e.submit(t, e.tok[SecretContact], "syncuser", memberCSV("姓名,帐号,手机号,所在部门", fmt.Sprintf("甲,jia,1390000000%d,1", i)), nil)
			requireCode(t, r, 0)
			ids = append(ids, r["jobid"].(string))
		}
		requireCode(t, e.contact(t, "GET", "/cgi-bin/batch/getresult?jobid="+ids[0], nil), CodeJobCleaned)
		for _, id := range ids[1:] {
			requireCode(t, e.contact(t, "GET", "/cgi-bin/batch/getresult?jobid="+id, nil), 0)
		}
		requireCode(t, e.contact(t, "GET", "/cgi-bin/batch/getresult?jobid=unknown", nil), CodeJobNotFound)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/batch/getresult", nil), CodeJobNotFound)
	})
	t.Run("TheTickerCompletesDueJobs", func(t *testing.T) {
		t.Parallel()
		clk := newJobClock()
		e := setup(t, withClock(clk), withJobs(JobsConfig{MinDuration: time.Second, TickInterval: time.Millisecond}))
		r := e.submit(t, e.tok[SecretContact], "syncuser", file, nil)
		clk.Add(time.Second)
		ev := e.recv.next(t) // sent by the ticker: nobody polls
		require.Equal(t, r["jobid"], ev["BatchJob/JobId"])
	})
}

func TestImportCallbacks(t *testing.T) {
	t.Parallel()
	file := memberCSV("姓名,帐号,手机号,所在部门", "甲,jia,13900000001,1")

	t.Run("GoToTheJobsOwnCallback", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		jr := newJobReceiver(t)
		r := e.submit(t, e.tok[SecretContact], "syncuser", file, map[string]any{"to_invite": false, "callback": jr.callback()})
		requireCode(t, r, 0)
		ev := jr.next(t)
		require.Equal(t, testCorp, ev["ToUserName"])
		require.Equal(t, "sys", ev["FromUserName"])
		require.Equal(t, "event", ev["MsgType"])
		require.Equal(t, "batch_job_result", ev["Event"])
		require.Equal(t, r["jobid"], ev["BatchJob/JobId"])
		require.Equal(t, "sync_user", ev["BatchJob/JobType"])
		require.Equal(t, "0", ev["BatchJob/ErrCode"])
		require.Equal(t, "ok", ev["BatchJob/ErrMsg"])
		e.requireNoCallback(t)
	})
	t.Run("ConsoleJobsAreCalledBack", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		r := e.submit(t, e.tok[SecretConsole], "syncuser", file, nil)
		requireCode(t, r, 0)
		ev := e.recv.next(t)
		require.Equal(t, "change_contact", ev["Event"])
		require.Equal(t, "create_user", ev["ChangeType"])
		require.Equal(t, "jia", ev["UserID"])
		require.Equal(t, "batch_job_result", e.recv.next(t)["Event"])
	})
	t.Run("RejectsABadCallback", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		requireCode(t, e.submit(t, e.tok[SecretContact], "syncuser", file,
			map[string]any{"callback": map[string]any{"url": "http://x/cb", "token": "t", "encodingaeskey": "short"}}), CodeInvalidCallbackURL)
	})
}

func TestJobEndpointsShareTheCoreMiddleware(t *testing.T) {
	t.Parallel()
	e := setup(t, immediate())
	id := e.startExport(t, "department", map[string]any{})
	_, files := e.exportResult(t, id)
	require.NoError(t, e.srv.SetFaults(Faults{ErrorRate: 1}))
	requireCode(t, e.upload(t, e.tok[SecretContact], "file", "a.csv", []byte("abcdefgh")), CodeSystemBusy)
	requireCode(t, e.contact(t, "GET", "/cgi-bin/batch/getresult?jobid=x", nil), CodeSystemBusy)
	requireCode(t, e.contact(t, "GET", "/cgi-bin/export/get_result?jobid="+id, nil), CodeSystemBusy)
	status, _ := download(t, files[0].URL)
	require.Equal(t, http.StatusOK, status, "download URLs carry no token and no API faults")
	require.NoError(t, e.srv.SetFaults(Faults{}))
	requireCode(t, e.do(t, "GET", "/cgi-bin/batch/getresult?jobid=x", "bad", nil), CodeInvalidToken)
	requireCode(t, e.do(t, "POST", "/cgi-bin/export/user", "", nil), CodeMissingToken)
}
