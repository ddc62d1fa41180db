package emulator

import (
	"slices"
)

// CreateUser validates in like user/create and adds the member. New members are status 4
// (not activated), or 2 when enable is 0. Errors (*APIError): 41009 missing userid,
// 40003 bad userid, 60102 userid exists (case-insensitive), 60112 name, 40066 department
// list empty/unknown, 60110 too many departments, 60132 is_leader_in_dept length,
// 301012 position, 60103/60104 mobile, 60105/60106 email, 60129 mobile and email empty,
// 60111 unknown direct_leader, 40058 other bad parameters.
func (tx *Tx) CreateUser(in UserInput) error {
	d := tx.d
	if in.UserID == "" {
		return apiErr(CodeMissingUserID, "missing userid")
	}
	if !validUserID(in.UserID) {
		return apiErr(CodeInvalidUserID, "invalid userid")
	}
	if _, ok := d.users[lower(in.UserID)]; ok {
		return apiErr(CodeUserIDExists, "userid existed")
	}
	if in.Name == nil {
		return apiErr(CodeInvalidName, "invalid name")
	}
	if in.Department == nil {
		return apiErr(CodeInvalidDeptList, "invalid department list")
	}
	u := &User{UserID: in.UserID, Status: 4, DirectLeader: []string{}, ExtAttr: ExtAttr{Attrs: []ExtAttrItem{}}, Gender: "0"}
	if in.Enable != nil && *in.Enable == 0 {
		u.Status = 2
	}
	if err := tx.apply(u, &in, ""); err != nil {
		return err
	}
	u.OpenUserID = openUserID(d.corpID, u.UserID)
	d.index(u)
	tx.events = append(tx.events, ChangeEvent{ChangeType: ChangeCreateUser, UserID: u.UserID, User: u})
	return nil
}

// UpdateUser validates in like user/update and changes only the given fields, including
// the userid (new_userid). Errors as CreateUser plus 60111 unknown userid. It records an
// update_user event only when a callback-visible field changed.
func (tx *Tx) UpdateUser(in UserInput) error {
	d := tx.d
	if in.UserID == "" {
		return apiErr(CodeMissingUserID, "missing userid")
	}
	old, ok := d.users[lower(in.UserID)]
	if !ok {
		return apiErr(CodeUserNotFound, "userid not found")
	}
	oldKey := lower(old.UserID)
	u := *old // copy; slices are replaced, never mutated in place
	if in.NewUserID != nil && *in.NewUserID != "" && *in.NewUserID != old.UserID {
		if !validUserID(*in.NewUserID) {
			return apiErr(CodeInvalidUserID, "invalid new_userid")
		}
		if k := lower(*in.NewUserID); k != oldKey {
			if _, exists := d.users[k]; exists {
				return apiErr(CodeUserIDExists, "userid existed")
			}
		}
		u.UserID = *in.NewUserID
	}
	if in.Enable != nil {
		switch {
		case *in.Enable == 0:
			u.Status = 2
		case u.Status == 2:
			u.Status = 1
		}
	}
	if err := tx.apply(&u, &in, oldKey); err != nil {
		return err
	}
	d.unindex(old)
	d.index(&u)
	newKey := lower(u.UserID)
	if newKey != oldKey {
		for _, t := range d.tags {
			if _, ok := t.users[oldKey]; ok {
				delete(t.users, oldKey)
				t.users[newKey] = struct{}{}
			}
		}
	}
	ev := ChangeEvent{ChangeType: ChangeUpdateUser, UserID: old.UserID, User: &u, Changed: diffUser(old, &u)}
	if u.UserID != old.UserID {
		ev.NewUserID = u.UserID
	}
	if ev.NewUserID != "" || ev.Changed&^FieldOrder != 0 {
		tx.events = append(tx.events, ev)
	}
	return nil
}

// DeleteUsers deletes members, all or nothing: if any userid is unknown it returns 60111
// and deletes none (as user/batchdelete). It also removes them from tags without an
// update_tag event (ASSUMPTION). Other members' direct_leader lists are left as they are.
func (tx *Tx) DeleteUsers(userids ...string) error {
	d := tx.d
	us := make([]*User, 0, len(userids))
	seen := map[string]bool{}
	for _, id := range userids {
		u, ok := d.users[lower(id)]
		if !ok {
			return apiErr(CodeUserNotFound, "userid not found:%s", id)
		}
		if !seen[lower(id)] {
			seen[lower(id)] = true
			us = append(us, u)
		}
	}
	for _, u := range us {
		d.unindex(u)
		k := lower(u.UserID)
		for _, t := range d.tags {
			delete(t.users, k)
		}
		tx.events = append(tx.events, ChangeEvent{ChangeType: ChangeDeleteUser, UserID: u.UserID})
	}
	return nil
}

// User returns the member with userid inside the transaction.
func (tx *Tx) User(userid string) (*User, bool) {
	u, ok := tx.d.users[lower(userid)]
	return u, ok
}

// UserIDs returns every userid (unordered), e.g. for batch/replaceuser to find members
// missing from the file.
func (tx *Tx) UserIDs() []string {
	out := make([]string, 0, len(tx.d.users))
	for _, u := range tx.d.users {
		out = append(out, u.UserID)
	}
	return out
}

// apply copies the given fields of in onto u and validates the result. selfKey is the
// member's current key ("" on create) so its own mobile/email do not count as taken.
func (tx *Tx) apply(u *User, in *UserInput, selfKey string) error {
	d := tx.d
	if in.Name != nil {
		if *in.Name == "" || runeLen(*in.Name) > 64 {
			return apiErr(CodeInvalidName, "invalid name")
		}
		u.Name = *in.Name
	}
	if in.Department != nil {
		deps := *in.Department
		if len(deps) == 0 {
			return apiErr(CodeInvalidDeptList, "invalid department list")
		}
		if len(deps) > maxUserDepartments {
			return apiErr(CodeTooManyDepts, "too many departments")
		}
		seen := make(map[int]bool, len(deps))
		for _, id := range deps {
			if _, ok := d.depts[id]; !ok || seen[id] {
				return apiErr(CodeInvalidDeptList, "invalid department list:%d", id)
			}
			seen[id] = true
		}
		// A new department list resets order and leader flags unless given alongside.
		u.Departments = slices.Clone(deps)
		u.Orders = make([]uint32, len(deps))
		u.IsLeaderInDept = make([]int, len(deps))
		if !slices.Contains(deps, u.MainDepartment) {
			u.MainDepartment = deps[0]
		}
	}
	if in.Order != nil {
		if len(*in.Order) != len(u.Departments) {
			return apiErr(CodeInvalidParameter, "order and department size mismatch")
		}
		u.Orders = slices.Clone(*in.Order)
	}
	if in.IsLeaderInDept != nil {
		if len(*in.IsLeaderInDept) != len(u.Departments) {
			return apiErr(CodeLeaderCountMismatch, "is_leader_in_dept size not match department size")
		}
		flags := make([]int, len(*in.IsLeaderInDept))
		for i, f := range *in.IsLeaderInDept {
			if f != 0 {
				flags[i] = 1
			}
		}
		u.IsLeaderInDept = flags
	}
	if in.MainDepartment != nil && in.MainDepartment.Int() != 0 {
		if !slices.Contains(u.Departments, in.MainDepartment.Int()) {
			return apiErr(CodeInvalidParameter, "main_department not in department")
		}
		u.MainDepartment = in.MainDepartment.Int()
	}
	if in.Position != nil {
		if runeLen(*in.Position) > 128 {
			return apiErr(CodeInvalidPosition, "invalid position")
		}
		u.Position = *in.Position
	}
	if in.Alias != nil {
		if runeLen(*in.Alias) > 64 {
			return apiErr(CodeInvalidParameter, "invalid alias")
		}
		u.Alias = *in.Alias
	}
	if in.Gender != nil {
		g := string(*in.Gender)
		if g != "" && g != "0" && g != "1" && g != "2" {
			return apiErr(CodeInvalidParameter, "invalid gender")
		}
		if g == "" {
			g = "0"
		}
		u.Gender = g
	}
	if in.Telephone != nil {
		if !validTelephone(*in.Telephone) {
			return apiErr(CodeInvalidParameter, "invalid telephone")
		}
		u.Telephone = *in.Telephone
	}
	if in.Address != nil {
		if runeLen(*in.Address) > 128 {
			return apiErr(CodeInvalidParameter, "invalid address")
		}
		u.Address = *in.Address
	}
	if in.Mobile != nil {
		m := *in.Mobile
		if m != "" && !validMobile(m) {
			return apiErr(CodeInvalidMobile, "invalid mobile")
		}
		if k, taken := d.mobiles[m]; m != "" && taken && k != selfKey {
			return apiErr(CodeMobileExists, "mobile existed:%s", d.users[k].UserID)
		}
		u.Mobile = m
	}
	if in.Email != nil {
		e := *in.Email
		if e != "" && !validEmail(e) {
			return apiErr(CodeInvalidEmail, "invalid email")
		}
		if k, taken := d.emails[lower(e)]; e != "" && taken && k != selfKey {
			return apiErr(CodeEmailExists, "email existed:%s", d.users[k].UserID)
		}
		u.Email = e
	}
	if in.BizMail != nil {
		e := *in.BizMail
		if e != "" && !validEmail(e) {
			return apiErr(CodeInvalidEmail, "invalid biz_mail")
		}
		if k, taken := d.emails[lower(e)]; e != "" && taken && k != selfKey {
			return apiErr(CodeEmailExists, "biz_mail existed:%s", d.users[k].UserID)
		}
		u.BizMail = e
	}
	if u.Mobile == "" && u.Email == "" {
		return apiErr(CodeMobileEmailEmpty, "mobile and email can not be both empty")
	}
	if in.DirectLeader != nil {
		ls := *in.DirectLeader
		if len(ls) > maxDirectLeaders {
			return apiErr(CodeInvalidParameter, "too many direct_leader")
		}
		out := make([]string, 0, len(ls))
		for _, l := range ls {
			lu, ok := d.users[lower(l)]
			if !ok && lower(l) != lower(u.UserID) {
				return apiErr(CodeUserNotFound, "direct_leader userid not found:%s", l)
			}
			if ok {
				l = lu.UserID
			}
			out = append(out, l)
		}
		u.DirectLeader = out
	}
	if in.AvatarMediaID != nil && *in.AvatarMediaID != "" {
		u.Avatar = "https://wework.qpic.cn/wwhead/" + *in.AvatarMediaID + "/0"
	}
	if in.ExtAttr != nil {
		ea := ExtAttr{Attrs: slices.Clone(in.ExtAttr.Attrs)}
		if ea.Attrs == nil {
			ea.Attrs = []ExtAttrItem{}
		}
		u.ExtAttr = ea
	}
	if in.ExternalPosition != nil {
		u.ExternalPosition = *in.ExternalPosition
	}
	if len(in.ExternalProfile) > 0 && string(in.ExternalProfile) != "null" {
		u.ExternalProfile = slices.Clone(in.ExternalProfile)
	}
	return nil
}

// diffUser returns the fields that differ between a and b.
func diffUser(a, b *User) UserFields {
	var f UserFields
	set := func(changed bool, field UserFields) {
		if changed {
			f |= field
		}
	}
	set(a.Name != b.Name, FieldName)
	set(!slices.Equal(a.Departments, b.Departments), FieldDepartment)
	set(!slices.Equal(a.IsLeaderInDept, b.IsLeaderInDept), FieldIsLeaderInDept)
	set(a.MainDepartment != b.MainDepartment, FieldMainDepartment)
	set(a.Position != b.Position, FieldPosition)
	set(a.Mobile != b.Mobile, FieldMobile)
	set(a.Gender != b.Gender, FieldGender)
	set(a.Email != b.Email, FieldEmail)
	set(a.BizMail != b.BizMail, FieldBizMail)
	set(a.Status != b.Status, FieldStatus)
	set(a.Avatar != b.Avatar, FieldAvatar)
	set(a.Alias != b.Alias, FieldAlias)
	set(a.Telephone != b.Telephone, FieldTelephone)
	set(a.Address != b.Address, FieldAddress)
	set(!extAttrEqual(a.ExtAttr, b.ExtAttr), FieldExtAttr)
	set(!slices.Equal(a.DirectLeader, b.DirectLeader), FieldDirectLeader)
	set(!slices.Equal(a.Orders, b.Orders), FieldOrder)
	return f
}

func extAttrEqual(a, b ExtAttr) bool {
	return slices.EqualFunc(a.Attrs, b.Attrs, func(x, y ExtAttrItem) bool {
		if x.Type != y.Type || x.Name != y.Name || string(x.Miniprogram) != string(y.Miniprogram) {
			return false
		}
		if (x.Text == nil) != (y.Text == nil) || (x.Web == nil) != (y.Web == nil) {
			return false
		}
		return (x.Text == nil || *x.Text == *y.Text) && (x.Web == nil || *x.Web == *y.Web)
	})
}

// setStatus changes a member's status (activation, disabling) and records update_user.
func (tx *Tx) setStatus(u *User, status int) error {
	nu := *u
	nu.Status = status
	tx.d.unindex(u)
	tx.d.index(&nu)
	tx.events = append(tx.events, ChangeEvent{ChangeType: ChangeUpdateUser, UserID: u.UserID, User: &nu, Changed: FieldStatus})
	return nil
}
