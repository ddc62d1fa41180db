package emulator

// Import jobs: batch/syncuser, batch/replaceuser, batch/replaceparty and batch/getresult
// (API-FACTS §4.2, §4.4).
//
// Fidelity decisions (ASSUMPTION where WeCom does not document them):
//   - The file is parsed at submission, but file-level errors (40092, 302003, 302004,
//     302006, 302007) and the 45026 deletion guard surface when the job completes, as a
//     job-level errcode in the batch_job_result callback and in getresult, whose answer is
//     then {"errcode":<code>,"errmsg":...,"status":3,"type",...,"percentage":100,"result":[]}.
//     Nothing is applied by a job that fails at job level.
//   - Rows are applied in file order, each like user/create or user/update; a row that
//     fails gets its own errcode in result and the job carries on.
//   - replace_user deletes the members absent from the file before applying the rows (so
//     their mobiles/emails are free); result lists the file rows only.
//   - The deletion guard (45026): with D members to delete out of C current members, the
//     job fails when D > 50 and D > 20% of C, or when D <= 50 and D > 80% of C (the
//     documented "< 50" case is taken to include exactly 50).
//   - An unknown 所在部门 id X is created as department X named "X" under a department named
//     "其他（待设置部门）", itself created under the root when missing.
//   - replace_party applies the rows parents first; departments absent from the file are
//     then deleted children first, except the root and those with members or kept
//     sub-departments. result lists the file rows in file order.
//   - Writes by a job submitted with the console secret are called back as change_contact
//     (admin-console imports are); with the contacts-sync secret they are not.
//   - One import job at a time per corp (302008); to_invite is accepted and ignored.

import (
	"slices"
	"strconv"
)

// Import job types (batch/getresult "type", batch_job_result JobType).
const (
	JobSyncUser     = "sync_user"
	JobReplaceUser  = "replace_user"
	JobReplaceParty = "replace_party"
)

// pendingDeptName is the department unknown 所在部门 ids are created under.
const pendingDeptName = "其他（待设置部门）"

type batchRequest struct {
	MediaID  string `json:"media_id"`
	ToInvite *bool  `json:"to_invite"`
	Callback *struct {
		URL            string `json:"url"`
		Token          string `json:"token"`
		EncodingAESKey string `json:"encodingaeskey"`
	} `json:"callback"`
}

type jobIDResp struct {
	base
	JobID string `json:"jobid"`
}

// userResult is a sync_user/replace_user result item.
type userResult struct {
	UserID  string `json:"userid"`
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// partyResult is a replace_party result item; Action is a bitmask of the party* values.
type partyResult struct {
	Action  int    `json:"action"`
	PartyID int    `json:"partyid"`
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// replace_party result actions.
const (
	partyCreated   = 1
	partyRenamed   = 2
	partyMoved     = 4
	partyReordered = 8
)

func (x *jobsExt) batchSyncUser(c *Call) (any, error)    { return x.submitImport(c, JobSyncUser) }
func (x *jobsExt) batchReplaceUser(c *Call) (any, error) { return x.submitImport(c, JobReplaceUser) }
func (x *jobsExt) batchReplaceParty(c *Call) (any, error) {
	return x.submitImport(c, JobReplaceParty)
}

// submitImport validates the request (47001 bad JSON, 41006/40007 media_id, 40057 a bad
// callback, 302008 another import running), parses the file and registers the job.
func (x *jobsExt) submitImport(c *Call, typ string) (any, error) {
	var req batchRequest
	if err := c.Decode(&req); err != nil {
		return nil, err
	}
	now := x.s.now()
	data, err := x.mediaData(req.MediaID, now)
	if err != nil {
		return nil, err
	}
	var target *CallbackTarget
	if cb := req.Callback; cb != nil && cb.URL != "" {
		if target, err = NewCallbackTarget(cb.URL, cb.Token, cb.EncodingAESKey, x.s.cfg.CorpID); err != nil {
			return nil, apiErr(CodeInvalidCallbackURL, "invalid callback url or encodingaeskey")
		}
	}
	var (
		total int
		work  func() jobOutcome
	)
	notify := c.Secret == SecretConsole
	if typ == JobReplaceParty {
		rows, perr := parsePartyCSV(data)
		total = len(rows)
		work = func() jobOutcome {
			if perr != nil {
				return failed(perr)
			}
			return x.applyParties(rows, notify)
		}
	} else {
		rows, perr := parseMemberCSV(data)
		total = len(rows)
		work = func() jobOutcome {
			if perr != nil {
				return failed(perr)
			}
			return x.applyMembers(rows, typ == JobReplaceUser, notify)
		}
	}
	x.mu.Lock()
	if x.running != nil {
		x.mu.Unlock()
		return nil, apiErr(CodeImportRunning, "there is already an import job running, wait for it to finish")
	}
	j := x.newJob(typ, false, c.Secret, total, work)
	j.target = target
	x.running = j
	x.mu.Unlock()
	if x.cfg.Immediate {
		if err := x.complete(c.R.Context(), j); err != nil {
			return nil, err
		}
	}
	return jobIDResp{okBase, j.id}, nil
}

func failed(err error) jobOutcome {
	if ae, ok := err.(*APIError); ok {
		return jobOutcome{code: ae.Code, msg: ae.Msg, result: []any{}}
	}
	return jobOutcome{code: CodeImportSystemError, msg: "batch import system error", result: []any{}}
}

func rowResult(err error) (int, string) {
	if err == nil {
		return 0, "ok"
	}
	if ae, ok := err.(*APIError); ok {
		return ae.Code, ae.Msg
	}
	return CodeSystemBusy, "system busy"
}

// deletionGuard reports 45026 when deleting del of cur members trips WeCom's protection.
func deletionGuard(del, cur int) error {
	if del == 0 {
		return nil
	}
	if del > 50 && del*5 > cur || del <= 50 && del*5 > cur*4 {
		return apiErr(CodeDeleteProtection, "delete user count exceed protection limit: %d of %d", del, cur)
	}
	return nil
}

// applyMembers applies a member file to the directory (sync or replace).
func (x *jobsExt) applyMembers(rows []memberRow, replace, notify bool) jobOutcome {
	results := make([]any, len(rows))
	events, err := x.s.dir.Update(func(tx *Tx) error {
		if replace {
			inFile := make(map[string]bool, len(rows))
			for _, r := range rows {
				inFile[lower(r.userID)] = true
			}
			all := tx.UserIDs()
			var del []string
			for _, id := range all {
				if !inFile[lower(id)] {
					del = append(del, id)
				}
			}
			if err := deletionGuard(len(del), len(all)); err != nil {
				return err
			}
			if err := tx.DeleteUsers(del...); err != nil {
				return err
			}
		}
		pending := 0 // id of 其他（待设置部门）, found or created on first need
		for i, r := range rows {
			err := x.applyMemberRow(tx, r, &pending)
			code, msg := rowResult(err)
			results[i] = userResult{UserID: r.userID, ErrCode: code, ErrMsg: msg}
		}
		return nil
	})
	if err != nil {
		return failed(err)
	}
	if notify {
		x.s.Notify(events...)
	}
	return jobOutcome{msg: "ok", result: results}
}

func (x *jobsExt) applyMemberRow(tx *Tx, r memberRow, pending *int) error {
	if r.err != nil {
		return r.err
	}
	for _, id := range r.depts {
		if _, ok := tx.Department(id); ok {
			continue
		}
		if err := ensurePendingDept(tx, pending); err != nil {
			return err
		}
		if _, err := tx.CreateDepartment(DepartmentInput{ID: ptr(FlexInt(id)), Name: ptr(strconv.Itoa(id)),
			ParentID: ptr(FlexInt(*pending))}); err != nil {
			return err
		}
	}
	in := r.in
	old, exists := tx.User(r.userID)
	if len(r.attrs) > 0 {
		var attrs []ExtAttrItem
		if exists {
			attrs = slices.Clone(old.ExtAttr.Attrs)
		}
		for _, a := range r.attrs {
			i := slices.IndexFunc(attrs, func(b ExtAttrItem) bool { return b.Name == a.Name })
			if i >= 0 {
				attrs[i] = a
			} else {
				attrs = append(attrs, a)
			}
		}
		in.ExtAttr = &ExtAttr{Attrs: attrs}
	}
	if exists {
		in.UserID = old.UserID
		return tx.UpdateUser(in)
	}
	return tx.CreateUser(in)
}

// ensurePendingDept finds or creates 其他（待设置部门） under the root.
func ensurePendingDept(tx *Tx, id *int) error {
	if *id != 0 {
		return nil
	}
	for c := range tx.d.depts[rootDepartmentID].children {
		if tx.d.depts[c].dept.Name == pendingDeptName {
			*id = c
			return nil
		}
	}
	n, err := tx.CreateDepartment(DepartmentInput{Name: ptr(pendingDeptName), ParentID: ptr(FlexInt(rootDepartmentID))})
	if err != nil {
		return err
	}
	*id = n
	return nil
}

// applyParties applies a department file (replace_party).
func (x *jobsExt) applyParties(rows []partyRow, notify bool) jobOutcome {
	results := make([]any, len(rows))
	events, err := x.s.dir.Update(func(tx *Tx) error {
		// Parents first: breadth first over the file's tree from the root.
		kids := map[int][]int{}
		inFile := map[int]bool{}
		for i, r := range rows {
			kids[r.parent] = append(kids[r.parent], i)
			inFile[r.id] = true
		}
		var order []int
		if i := slices.IndexFunc(rows, func(r partyRow) bool { return r.id == rootDepartmentID }); i >= 0 {
			order = append(order, i)
		}
		queue := []int{rootDepartmentID}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			for _, i := range kids[p] {
				if rows[i].id == rootDepartmentID {
					continue
				}
				order = append(order, i)
				queue = append(queue, rows[i].id)
			}
		}
		for _, i := range order {
			action, err := applyPartyRow(tx, rows[i])
			code, msg := rowResult(err)
			if err != nil {
				action = 0
			}
			results[i] = partyResult{Action: action, PartyID: rows[i].id, ErrCode: code, ErrMsg: msg}
		}
		// Delete the departments absent from the file, children first, if empty.
		ids := tx.DepartmentIDs()
		for i := len(ids) - 1; i >= 0; i-- {
			id := ids[i]
			if id == rootDepartmentID || inFile[id] {
				continue
			}
			_ = tx.DeleteDepartment(id) // 60005/60006: non-empty departments are kept
		}
		return nil
	})
	if err != nil {
		return failed(err)
	}
	if notify {
		x.s.Notify(events...)
	}
	return jobOutcome{msg: "ok", result: results}
}

func applyPartyRow(tx *Tx, r partyRow) (int, error) {
	old, exists := tx.Department(r.id)
	if !exists {
		in := DepartmentInput{ID: ptr(FlexInt(r.id)), Name: ptr(r.name), ParentID: ptr(FlexInt(r.parent))}
		if r.hasOrder {
			in.Order = ptr(FlexInt(r.order))
		}
		_, err := tx.CreateDepartment(in)
		return partyCreated, err
	}
	in := DepartmentInput{ID: ptr(FlexInt(r.id))}
	action := 0
	if r.name != old.Name {
		in.Name, action = ptr(r.name), action|partyRenamed
	}
	if r.id != rootDepartmentID && r.parent != old.ParentID {
		in.ParentID, action = ptr(FlexInt(r.parent)), action|partyMoved
	}
	if r.hasOrder && r.order != old.Order {
		in.Order, action = ptr(FlexInt(r.order)), action|partyReordered
	}
	if action == 0 {
		return 0, nil
	}
	return action, tx.UpdateDepartment(in)
}

type getResultResp struct {
	ErrCode    int    `json:"errcode"`
	ErrMsg     string `json:"errmsg"`
	Status     int    `json:"status"`
	Type       string `json:"type"`
	Total      int    `json:"total"`
	Percentage int    `json:"percentage"`
	Result     []any  `json:"result"`
}

// batchGetResult implements batch/getresult?jobid=: status 1 started, 2 running, 3 done
// with result. Errors: 40088 unknown jobid (or an export's), 40089 beyond the last 5 jobs.
// A job whose time is up is completed by this call if the ticker has not yet done it.
func (x *jobsExt) batchGetResult(c *Call) (any, error) {
	j, err := x.lookup(c.Query("jobid"), false, c.Secret)
	if err != nil {
		return nil, err
	}
	now := x.s.now()
	if x.due(j, now) {
		if err := x.complete(c.R.Context(), j); err != nil {
			return nil, err
		}
	}
	ph, pct := x.phase(j, now)
	resp := getResultResp{ErrCode: 0, ErrMsg: "ok", Status: ph + 1, Type: j.typ, Total: j.total, Percentage: pct, Result: []any{}}
	if ph == 2 {
		x.mu.Lock()
		out := j.outcome
		x.mu.Unlock()
		if out.code != 0 {
			resp.ErrCode, resp.ErrMsg = out.code, out.msg
		}
		if out.result != nil {
			resp.Result = out.result
		}
	}
	return resp, nil
}
