package mirror

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/wecomsync/wecomsync/internal/event"
)

// FieldDepartments stands, in unknown_fields, for a member's whole department list (an
// event for an unseen member that did not carry Department, with no lookup).
const FieldDepartments = "departments"

// allUserUnknown is the unknown set of a member the mirror knows nothing about.
var allUserUnknown = normUnknown(append(slices.Clone(UserFields), FieldDepartments))

// allDeptUnknown is the unknown set of a department the mirror knows nothing about.
var allDeptUnknown = normUnknown(DepartmentFields)

// lookupOutcome is what a Lookup said about one entity.
type lookupOutcome struct {
	user     *User
	dept     *Department
	notFound bool // ErrNotFound; otherwise not permitted when user and dept are nil
}

// lookups holds the results of the lookups made before a transaction.
type lookups struct {
	users map[string]lookupOutcome
	depts map[int64]lookupOutcome
}

// need is the set of lookups an apply attempt found it needed.
type need struct {
	users map[string]bool
	depts map[int64]bool
}

func (n *need) empty() bool { return len(n.users) == 0 && len(n.depts) == 0 }

// globalOp is an effect of a member or department change on rows of tags the batch did
// not load: run in order as SQL before the loaded tags' diffs are written.
type globalOp struct {
	kind    byte // 'r' rename user, 'd' delete user, 'p' delete department
	from    string
	to      string
	deptIDs []int64
}

// changeRec is one row for wecom.changes.
type changeRec struct {
	entity, key, op string
	before, after   []byte // nil for SQL NULL
	eventID         string
}

// rawAcc accumulates the raw column of one entity over a batch: replace means the
// column is set to the merged value, otherwise the value is merged (jsonb ||) into it.
type rawAcc struct {
	replace bool
	parts   []json.RawMessage
}

// value returns the accumulated raw value: the one part, or the parts' members in order
// within one object. The value is only ever read as jsonb, which keeps the last of
// duplicate keys, so that object is the parts merged as jsonb || would merge them, without
// decoding and re-encoding them (a member created and updated in one batch has two parts).
// Parts that are not objects contribute nothing, as a null part did to the map merge.
func (r *rawAcc) value() json.RawMessage {
	if len(r.parts) == 1 {
		return r.parts[0]
	}
	n := 2
	for _, p := range r.parts {
		n += len(p) + 1
	}
	out := make([]byte, 1, n)
	out[0] = '{'
	for _, p := range r.parts {
		p = bytes.TrimSpace(p)
		if len(p) < 2 || p[0] != '{' || p[len(p)-1] != '}' {
			continue
		}
		inner := bytes.TrimSpace(p[1 : len(p)-1])
		if len(inner) == 0 {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, inner...)
	}
	return append(out, '}')
}

// applier applies a batch's events to the loaded state in memory, recording change rows,
// then yields the minimal writes (see writes.go).
type applier struct {
	look     *lookups
	wantMore bool // record missing lookups in need (first attempt)
	need     need
	missed   int // lookups needed but not made (second attempt)

	origUsers map[string]*userRow // as loaded; a missing key is an absent member
	users     map[string]*userRow
	userRaw   map[string]*rawAcc
	rawDirty  map[string]bool // raw changed by data the row does not show
	// renamedFrom maps a member's current userid to its userid as loaded, for members
	// renamed in the batch.
	renamedFrom map[string]string

	origDepts map[int64]*deptRow
	depts     map[int64]*deptRow
	deptRaw   map[int64]*rawAcc

	origTags map[int64]*tagRow // as loaded (never mutated)
	tags     map[int64]*tagRow // current (mutated in place)
	gTags    map[int64]*tagRow // as loaded, with only globalOps applied: the table after them

	ops     []globalOp
	changes []changeRec
	arena   []byte // every change row's JSON, back to back
}

func newApplier(look *lookups, wantMore bool) *applier {
	return &applier{
		look: look, wantMore: wantMore,
		need:      need{users: map[string]bool{}, depts: map[int64]bool{}},
		origUsers: map[string]*userRow{}, users: map[string]*userRow{},
		userRaw: map[string]*rawAcc{}, rawDirty: map[string]bool{}, renamedFrom: map[string]string{},
		origDepts: map[int64]*deptRow{}, depts: map[int64]*deptRow{}, deptRaw: map[int64]*rawAcc{},
		origTags: map[int64]*tagRow{}, tags: map[int64]*tagRow{}, gTags: map[int64]*tagRow{},
	}
}

// start makes the loaded state the current one, before the batch's items apply.
func (a *applier) start() {
	for k, u := range a.origUsers {
		a.users[k] = u
	}
	for k, d := range a.origDepts {
		a.depts[k] = d
	}
	for k, t := range a.origTags {
		a.tags[k] = t.clone()
		a.gTags[k] = t.clone()
	}
}

// restart returns an applier over the same loaded state as a, started, for applying
// the batch again; a is not used after.
func (a *applier) restart() *applier {
	n := newApplier(a.look, a.wantMore)
	n.origUsers, n.origDepts, n.origTags = a.origUsers, a.origDepts, a.origTags
	n.arena = a.arena[:0] // a's change rows are dropped with it
	n.start()
	return n
}

// json appends a row's JSON to the batch's arena and returns it (a full slice
// expression, so later appends never write into it).
func (a *applier) json(f func([]byte) []byte) []byte {
	start := len(a.arena)
	a.arena = f(a.arena)
	return a.arena[start:len(a.arena):len(a.arena)]
}

func (a *applier) userJSON(u *userRow) []byte {
	if u == nil {
		return nil
	}
	return a.json(u.appendJSON)
}

func (a *applier) deptJSON(d *deptRow) []byte {
	if d == nil {
		return nil
	}
	return a.json(d.appendJSON)
}

func opOf(before, after bool) string {
	switch {
	case !before:
		return "created"
	case !after:
		return "deleted"
	}
	return "updated"
}

// setUser replaces the member at key (nil deletes it) and logs the change, if any.
func (a *applier) setUser(key string, before, after *userRow, eventID string) {
	if after == nil {
		delete(a.users, key)
	} else {
		a.users[key] = after
	}
	if before.equal(after) {
		return
	}
	a.changes = append(a.changes, changeRec{entity: "user", key: key, op: opOf(before != nil, after != nil),
		before: a.userJSON(before), after: a.userJSON(after), eventID: eventID})
}

func (a *applier) setDept(id int64, before, after *deptRow, eventID string) {
	if after == nil {
		delete(a.depts, id)
	} else {
		a.depts[id] = after
	}
	if before.equal(after) {
		return
	}
	a.changes = append(a.changes, changeRec{entity: "department", key: strconv.FormatInt(id, 10),
		op: opOf(before != nil, after != nil), before: a.deptJSON(before), after: a.deptJSON(after), eventID: eventID})
}

func (a *applier) addRaw(m map[string]*rawAcc, key string, replace bool, raw json.RawMessage) {
	if len(raw) == 0 {
		return
	}
	if replace || m[key] == nil {
		m[key] = &rawAcc{replace: replace, parts: []json.RawMessage{raw}}
		return
	}
	m[key].parts = append(m[key].parts, raw)
}

func (a *applier) addDeptRaw(id int64, replace bool, raw json.RawMessage) {
	if len(raw) == 0 {
		return
	}
	if replace || a.deptRaw[id] == nil {
		a.deptRaw[id] = &rawAcc{replace: replace, parts: []json.RawMessage{raw}}
		return
	}
	a.deptRaw[id].parts = append(a.deptRaw[id].parts, raw)
}

// lookupUser returns the looked-up member, or nil when there is none to use (then the
// event's own fields are stored and the rest marked unknown).
func (a *applier) lookupUser(id string) *User {
	if a.look != nil {
		if o, ok := a.look.users[id]; ok {
			return o.user
		}
	}
	if a.wantMore {
		a.need.users[id] = true
	} else {
		a.missed++
	}
	return nil
}

func (a *applier) lookupDept(id int64) *Department {
	if a.look != nil {
		if o, ok := a.look.depts[id]; ok {
			return o.dept
		}
	}
	if a.wantMore {
		a.need.depts[id] = true
	} else {
		a.missed++
	}
	return nil
}

// userUnmodeled reports whether u carried data the row does not show (kept in raw only).
func userUnmodeled(u *event.UserChange) bool {
	return u.DirectLeader.Set || len(u.Extra) > 0
}

func (a *applier) applyUser(changeType, eventID string, data json.RawMessage, u *event.UserChange) {
	key := u.UserID
	cur := a.users[key]
	switch changeType {
	case event.ChangeCreateUser:
		if cur == nil && !u.Name.Set {
			// A post-2022 create_user carries only UserID and Department: take the
			// current record (possibly newer than the event; later events still apply).
			if l := a.lookupUser(key); l != nil {
				a.setUser(key, nil, rowFromUser(l, key), eventID)
				a.addRaw(a.userRaw, key, true, validRaw(l.Raw))
				a.rawDirty[key] = true
				return
			}
		}
		a.setUser(key, cur, carriedUser(cur, u, key), eventID)
		a.addRaw(a.userRaw, key, cur == nil, data)
		if userUnmodeled(u) {
			a.rawDirty[key] = true
		}
	case event.ChangeUpdateUser:
		newKey := key
		if v, ok := u.NewUserID.Get(); ok && v != "" {
			newKey = v
		}
		if newKey != key {
			// A rename: the member's tag memberships follow it everywhere.
			a.globalOp(globalOp{kind: 'r', from: key, to: newKey})
			from, ok := a.renamedFrom[key]
			if !ok {
				from = key
			}
			delete(a.renamedFrom, key)
			a.renamedFrom[newKey] = from
			if raw := a.userRaw[key]; raw != nil {
				a.userRaw[newKey] = raw
				delete(a.userRaw, key)
			}
			if a.rawDirty[key] {
				a.rawDirty[newKey] = true
			}
		}
		if cur == nil && newKey != key {
			// The mirror already has the new userid (a sync saw the member after the
			// rename): the event updates that member.
			cur = a.users[newKey]
		}
		if cur == nil {
			// A member the mirror has never seen: take its current record.
			if l := a.lookupUser(newKey); l != nil {
				a.setUser(newKey, a.users[newKey], rowFromUser(l, newKey), eventID)
				a.addRaw(a.userRaw, newKey, true, validRaw(l.Raw))
				a.rawDirty[newKey] = true
				return
			}
		}
		next := carriedUser(cur, u, newKey)
		if cur != nil && u.Department.Set && !u.IsLeaderInDept.Set && !u.MainDepartment.Set {
			// A post-2022 update_user carries only UserID, Department and NewUserID: the
			// member's order and leader flag in each department and the main department
			// come from its current record (the rest of the row stays as the mirror has it).
			if l := a.lookupUser(newKey); l != nil {
				next = completeMemberships(next, l)
			}
		}
		if newKey != key {
			delete(a.users, key)
			// The change is keyed by the new userid; before shows the old one.
			a.setUser(newKey, cur, next, eventID)
		} else {
			a.setUser(key, cur, next, eventID)
		}
		a.addRaw(a.userRaw, newKey, cur == nil, data)
		if userUnmodeled(u) {
			a.rawDirty[newKey] = true
		}
	case event.ChangeDeleteUser:
		a.globalOp(globalOp{kind: 'd', from: key})
		delete(a.userRaw, key)
		delete(a.rawDirty, key)
		delete(a.renamedFrom, key)
		a.setUser(key, cur, nil, eventID)
	}
}

// globalOp records op and applies it to the loaded tags (current and after-ops views).
func (a *applier) globalOp(op globalOp) {
	a.ops = append(a.ops, op)
	for _, set := range []map[int64]*tagRow{a.tags, a.gTags} {
		for _, t := range set {
			switch op.kind {
			case 'r':
				if _, ok := t.Users[op.from]; ok {
					delete(t.Users, op.from)
					t.Users[op.to] = struct{}{}
				}
			case 'd':
				delete(t.Users, op.from)
			case 'p':
				for _, d := range op.deptIDs {
					delete(t.Depts, d)
				}
			}
		}
	}
}

func (a *applier) applyParty(changeType, eventID string, data json.RawMessage, p *event.PartyChange) {
	cur := a.depts[p.ID]
	switch changeType {
	case event.ChangeCreateParty, event.ChangeUpdateParty:
		if cur == nil && (changeType == event.ChangeUpdateParty || !p.Name.Set) {
			if l := a.lookupDept(p.ID); l != nil {
				a.setDept(p.ID, nil, rowFromDept(l), eventID)
				a.addDeptRaw(p.ID, true, validRaw(l.Raw))
				return
			}
		}
		a.setDept(p.ID, cur, carriedDept(cur, p), eventID)
		a.addDeptRaw(p.ID, cur == nil, data)
	case event.ChangeDeleteParty:
		a.globalOp(globalOp{kind: 'p', deptIDs: []int64{p.ID}})
		delete(a.deptRaw, p.ID)
		a.setDept(p.ID, cur, nil, eventID)
		// Memberships in the department go with it (WeCom refuses to delete a department
		// with members, so normally there are none). Every member of it was loaded.
		keys := make([]string, 0)
		for k, u := range a.users {
			if hasDept(u.Departments, p.ID) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			u := a.users[k]
			next := *u
			next.Departments = slices.DeleteFunc(slices.Clone(u.Departments), func(m membershipRow) bool { return m.DepartmentID == p.ID })
			a.setUser(k, u, &next, eventID)
		}
	}
}

func hasDept(ms []membershipRow, id int64) bool {
	for _, m := range ms {
		if m.DepartmentID == id {
			return true
		}
	}
	return false
}

func (a *applier) applyTag(eventID string, t *event.TagChange) {
	cur := a.tags[t.TagID]
	var before []byte
	if cur == nil {
		// A tag the mirror has not seen: its name stays unknown (NULL) until a sync.
		cur = &tagRow{ID: t.TagID, Users: map[string]struct{}{}, Depts: map[int64]struct{}{}}
		a.tags[t.TagID] = cur
	} else {
		before = a.json(cur.appendJSON)
	}
	for _, u := range t.AddUserItems.Value {
		cur.Users[u] = struct{}{}
	}
	for _, u := range t.DelUserItems.Value {
		delete(cur.Users, u)
	}
	for _, d := range t.AddPartyItems.Value {
		cur.Depts[d] = struct{}{}
	}
	for _, d := range t.DelPartyItems.Value {
		delete(cur.Depts, d)
	}
	after := a.json(cur.appendJSON)
	if string(before) == string(after) {
		return
	}
	a.changes = append(a.changes, changeRec{entity: "tag", key: strconv.FormatInt(t.TagID, 10),
		op: opOf(before != nil, true), before: before, after: after, eventID: eventID})
}

func ptr[T any](v T) *T { return &v }

// validRaw returns a looked-up record's raw JSON if it is a JSON object, else nil (the
// raw column is then left as it is rather than failing the batch).
func validRaw(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return nil
	}
	return raw
}

// rowFromUser converts a looked-up or synced record; unknown fields become NULL.
func rowFromUser(l *User, key string) *userRow {
	unk := normUnknown(l.Unknown)
	known := func(f string) bool { return !hasUnknown(unk, f) }
	str := func(f, v string) *string {
		if known(f) {
			return &v
		}
		return nil
	}
	r := &userRow{
		UserID:     key,
		Name:       str(FieldName, l.Name),
		Alias:      str(FieldAlias, l.Alias),
		Position:   str(FieldPosition, l.Position),
		Mobile:     str(FieldMobile, l.Mobile),
		Email:      str(FieldEmail, l.Email),
		BizMail:    str(FieldBizMail, l.BizMail),
		Avatar:     str(FieldAvatar, l.Avatar),
		Telephone:  str(FieldTelephone, l.Telephone),
		Address:    str(FieldAddress, l.Address),
		OpenUserID: str(FieldOpenUserID, l.OpenUserID),
		Unknown:    unk,
	}
	if known(FieldGender) {
		r.Gender = ptr(int64(l.Gender))
	}
	if known(FieldStatus) {
		r.Status = ptr(int64(l.Status))
	}
	if known(FieldMainDepartment) {
		r.MainDepartment = ptr(l.MainDepartment)
	}
	if known(FieldExtAttr) && len(l.ExtAttr) > 0 && string(l.ExtAttr) != "null" {
		r.ExtAttr = slices.Clone(l.ExtAttr)
	}
	r.Departments = membershipsOf(l.Departments)
	return r
}

func membershipsOf(ms []Membership) []membershipRow {
	out := make([]membershipRow, 0, len(ms))
	for _, m := range ms {
		if !hasDept(out, m.DepartmentID) {
			out = append(out, membershipRow{DepartmentID: m.DepartmentID, SortOrder: m.Order, IsLeader: m.IsLeader})
		}
	}
	slices.SortFunc(out, func(x, y membershipRow) int { return cmpInt(x.DepartmentID, y.DepartmentID) })
	return out
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// carriedUser returns prev (nil for a new member) with the fields u carried applied;
// fields u did not carry are untouched (or unknown for a new member).
func carriedUser(prev *userRow, u *event.UserChange, key string) *userRow {
	var r userRow
	if prev != nil {
		r = *prev
	} else {
		r.Unknown = allUserUnknown
		r.Departments = []membershipRow{}
	}
	r.UserID = key
	// Rows point into u's values (never mutated) rather than copying each one; the
	// fields made known are dropped from Unknown at once (one copy, not one per field).
	var known [16]string
	nk := 0
	setStr := func(o *event.Opt[string], dst **string, f string) {
		if o.Set {
			*dst = &o.Value
			known[nk] = f
			nk++
		}
	}
	setInt := func(o event.Opt[int], dst **int64, f string) {
		if o.Set {
			v := int64(o.Value)
			*dst = &v
			known[nk] = f
			nk++
		}
	}
	setStr(&u.Name, &r.Name, FieldName)
	setStr(&u.Alias, &r.Alias, FieldAlias)
	setStr(&u.Position, &r.Position, FieldPosition)
	setStr(&u.Mobile, &r.Mobile, FieldMobile)
	setStr(&u.Email, &r.Email, FieldEmail)
	setStr(&u.BizMail, &r.BizMail, FieldBizMail)
	setStr(&u.Avatar, &r.Avatar, FieldAvatar)
	setStr(&u.Telephone, &r.Telephone, FieldTelephone)
	setStr(&u.Address, &r.Address, FieldAddress)
	setInt(u.Gender, &r.Gender, FieldGender)
	setInt(u.Status, &r.Status, FieldStatus)
	if v, ok := u.MainDepartment.Get(); ok {
		r.MainDepartment = &v
		known[nk] = FieldMainDepartment
		nk++
	}
	if v, ok := u.ExtAttr.Get(); ok {
		r.ExtAttr = extAttrJSON(v)
		known[nk] = FieldExtAttr
		nk++
	}
	r.Unknown = withoutUnknowns(r.Unknown, known[:nk])
	if ids, ok := u.Department.Get(); ok {
		r.Departments, r.Unknown = carriedMemberships(r.Departments, r.Unknown, ids, u.IsLeaderInDept)
	}
	return &r
}

// completeMemberships fills r's per-department order and leader flags, and its main
// department, from the looked-up record l, for the departments both list; fields l does
// not know stay as they are. It returns a new row; r is not modified.
func completeMemberships(r *userRow, l *User) *userRow {
	next := *r
	next.Departments = slices.Clone(r.Departments)
	all := true
	for i, m := range next.Departments {
		found := false
		for _, lm := range l.Departments {
			if lm.DepartmentID == m.DepartmentID {
				if !slices.Contains(l.Unknown, FieldOrder) {
					next.Departments[i].SortOrder = lm.Order
				}
				if !slices.Contains(l.Unknown, FieldIsLeader) {
					next.Departments[i].IsLeader = lm.IsLeader
				}
				found = true
				break
			}
		}
		all = all && found
	}
	if all && !slices.Contains(l.Unknown, FieldOrder) {
		next.Unknown = withoutUnknown(next.Unknown, FieldOrder)
	}
	if all && !slices.Contains(l.Unknown, FieldIsLeader) {
		next.Unknown = withoutUnknown(next.Unknown, FieldIsLeader)
	}
	if l.MainDepartment != 0 && !slices.Contains(l.Unknown, FieldMainDepartment) {
		md := l.MainDepartment
		next.MainDepartment = &md
		next.Unknown = withoutUnknown(next.Unknown, FieldMainDepartment)
	}
	return &next
}

// carriedMemberships replaces a member's departments by ids. Orders are not carried by
// callbacks: a kept membership keeps its order, a new one gets 0 and sort_order becomes
// unknown. Leader flags come from IsLeaderInDept when it was carried with one flag per
// department, else a kept membership keeps its flag and a new one is unknown.
func carriedMemberships(prev []membershipRow, unknown []string, ids []int64, leaders event.Opt[[]int]) ([]membershipRow, []string) {
	leaderKnown := leaders.Set && len(leaders.Value) == len(ids)
	out := make([]membershipRow, 0, len(ids))
	newOrder, newLeader := false, false
	for i, id := range ids {
		if hasDept(out, id) {
			continue
		}
		m := membershipRow{DepartmentID: id}
		kept := false
		for _, p := range prev {
			if p.DepartmentID == id {
				m, kept = p, true
				break
			}
		}
		if !kept {
			newOrder = true
			newLeader = newLeader || !leaderKnown
		}
		if leaderKnown {
			m.IsLeader = leaders.Value[i] != 0
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(x, y membershipRow) int { return cmpInt(x.DepartmentID, y.DepartmentID) })
	unknown = withoutUnknown(unknown, FieldDepartments)
	switch {
	case len(out) == 0:
		unknown = withoutUnknown(withoutUnknown(unknown, FieldOrder), FieldIsLeader)
	default:
		if newOrder {
			unknown = withUnknown(unknown, FieldOrder)
		}
		if leaderKnown {
			unknown = withoutUnknown(unknown, FieldIsLeader)
		} else if newLeader {
			unknown = withUnknown(unknown, FieldIsLeader)
		}
	}
	return out, unknown
}

// extAttrJSON encodes callback ExtAttr items in user/get's shape: {"attrs":[...]}, each
// {"type","name","text":{"value"}} or {"type","name","web":{"url","title"}}, with the
// elements of types the event package does not model (such as "miniprogram") kept as
// they came.
func extAttrJSON(items []event.ExtAttr) json.RawMessage {
	attrs := make([]map[string]any, 0, len(items))
	for _, it := range items {
		x := make(map[string]any, len(it.Extra)+3)
		for k, v := range it.Extra {
			x[k] = v
		}
		// A type or name that did not parse is in Extra as it came; keep that.
		if _, ok := x["type"]; !ok {
			x["type"] = it.Type
		}
		if _, ok := x["name"]; !ok {
			x["name"] = it.Name
		}
		if it.Text != nil {
			x["text"] = map[string]string{"value": it.Text.Value}
		}
		if it.Web != nil {
			x["web"] = map[string]string{"url": it.Web.URL, "title": it.Web.Title}
		}
		attrs = append(attrs, x)
	}
	b, _ := json.Marshal(map[string]any{"attrs": attrs})
	return b
}

func rowFromDept(l *Department) *deptRow {
	unk := normUnknown(l.Unknown)
	r := &deptRow{ID: l.ID, Unknown: unk}
	if !hasUnknown(unk, FieldName) {
		r.Name = ptr(l.Name)
	}
	if !hasUnknown(unk, FieldNameEn) {
		r.NameEn = ptr(l.NameEn)
	}
	if !hasUnknown(unk, FieldParentID) {
		r.ParentID = ptr(l.ParentID)
	}
	if !hasUnknown(unk, FieldOrder) {
		r.SortOrder = ptr(l.Order)
	}
	return r
}

func carriedDept(prev *deptRow, p *event.PartyChange) *deptRow {
	var r deptRow
	if prev != nil {
		r = *prev
	} else {
		r.Unknown = allDeptUnknown
	}
	r.ID = p.ID
	if v, ok := p.Name.Get(); ok {
		r.Name = &v
		r.Unknown = withoutUnknown(r.Unknown, FieldName)
	}
	if v, ok := p.ParentID.Get(); ok {
		r.ParentID = &v
		r.Unknown = withoutUnknown(r.Unknown, FieldParentID)
	}
	if v, ok := p.Order.Get(); ok {
		r.SortOrder = &v
		r.Unknown = withoutUnknown(r.Unknown, FieldOrder)
	}
	return &r
}
