package mirror

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
)

// userRow is a member as the mirror holds it (wecom.users plus its user_departments); a
// nil pointer is NULL: a field the mirror does not know. It is also the "user" row of
// the change log (see the package comment), marshalled by appendJSON.
type userRow struct {
	UserID         string
	Name           *string
	Alias          *string
	Position       *string
	Mobile         *string
	Email          *string
	BizMail        *string
	Gender         *int64
	Status         *int64
	MainDepartment *int64
	Avatar         *string
	Telephone      *string
	Address        *string
	OpenUserID     *string
	ExtAttr        json.RawMessage // nil for NULL
	Departments    []membershipRow // sorted by DepartmentID; never mutated in place
	Unknown        []string        // sorted; never mutated in place
}

// membershipRow is one wecom.user_departments row of a member.
type membershipRow struct {
	DepartmentID int64 `json:"department_id"`
	SortOrder    int64 `json:"sort_order"`
	IsLeader     bool  `json:"is_leader"`
}

// deptRow is a department as the mirror holds it.
type deptRow struct {
	ID        int64
	Name      *string
	NameEn    *string
	ParentID  *int64
	SortOrder *int64
	Unknown   []string
}

// tagRow is a tag with its members as the mirror holds it.
type tagRow struct {
	ID    int64
	Name  *string
	Users map[string]struct{}
	Depts map[int64]struct{}
}

func (t *tagRow) clone() *tagRow {
	c := &tagRow{ID: t.ID, Name: t.Name, Users: make(map[string]struct{}, len(t.Users)), Depts: make(map[int64]struct{}, len(t.Depts))}
	for u := range t.Users {
		c.Users[u] = struct{}{}
	}
	for d := range t.Depts {
		c.Depts[d] = struct{}{}
	}
	return c
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// jsonEqual compares two JSON values semantically (jsonb reorders keys and spaces).
func jsonEqual(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// sameFields reports whether the users' columns (not memberships) are equal.
func (a *userRow) sameFields(b *userRow) bool {
	return a.UserID == b.UserID && eqPtr(a.Name, b.Name) && eqPtr(a.Alias, b.Alias) &&
		eqPtr(a.Position, b.Position) && eqPtr(a.Mobile, b.Mobile) && eqPtr(a.Email, b.Email) &&
		eqPtr(a.BizMail, b.BizMail) && eqPtr(a.Gender, b.Gender) && eqPtr(a.Status, b.Status) &&
		eqPtr(a.MainDepartment, b.MainDepartment) && eqPtr(a.Avatar, b.Avatar) &&
		eqPtr(a.Telephone, b.Telephone) && eqPtr(a.Address, b.Address) &&
		eqPtr(a.OpenUserID, b.OpenUserID) && slices.Equal(a.Unknown, b.Unknown) &&
		jsonEqual(a.ExtAttr, b.ExtAttr)
}

func (a *userRow) equal(b *userRow) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.sameFields(b) && slices.Equal(a.Departments, b.Departments)
}

func (a *deptRow) equal(b *deptRow) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ID == b.ID && eqPtr(a.Name, b.Name) && eqPtr(a.NameEn, b.NameEn) &&
		eqPtr(a.ParentID, b.ParentID) && eqPtr(a.SortOrder, b.SortOrder) && slices.Equal(a.Unknown, b.Unknown)
}

func (a *tagRow) equal(b *tagRow) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.ID != b.ID || !eqPtr(a.Name, b.Name) || len(a.Users) != len(b.Users) || len(a.Depts) != len(b.Depts) {
		return false
	}
	for u := range a.Users {
		if _, ok := b.Users[u]; !ok {
			return false
		}
	}
	for d := range a.Depts {
		if _, ok := b.Depts[d]; !ok {
			return false
		}
	}
	return true
}

// JSON encoding of rows, hand-written because it runs twice per applied event.

func appendStr(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, *s)
}

func appendInt(dst []byte, n *int64) []byte {
	if n == nil {
		return append(dst, "null"...)
	}
	return strconv.AppendInt(dst, *n, 10)
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, s)
	}
	return append(dst, ']')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 is kept as is, which jsonb
// rejects, but every string here came from JSON or Postgres text and is valid.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func (u *userRow) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"userid":`...)
	dst = appendJSONString(dst, u.UserID)
	dst = append(dst, `,"name":`...)
	dst = appendStr(dst, u.Name)
	dst = append(dst, `,"alias":`...)
	dst = appendStr(dst, u.Alias)
	dst = append(dst, `,"position":`...)
	dst = appendStr(dst, u.Position)
	dst = append(dst, `,"mobile":`...)
	dst = appendStr(dst, u.Mobile)
	dst = append(dst, `,"email":`...)
	dst = appendStr(dst, u.Email)
	dst = append(dst, `,"biz_mail":`...)
	dst = appendStr(dst, u.BizMail)
	dst = append(dst, `,"gender":`...)
	dst = appendInt(dst, u.Gender)
	dst = append(dst, `,"status":`...)
	dst = appendInt(dst, u.Status)
	dst = append(dst, `,"main_department":`...)
	dst = appendInt(dst, u.MainDepartment)
	dst = append(dst, `,"avatar":`...)
	dst = appendStr(dst, u.Avatar)
	dst = append(dst, `,"telephone":`...)
	dst = appendStr(dst, u.Telephone)
	dst = append(dst, `,"address":`...)
	dst = appendStr(dst, u.Address)
	dst = append(dst, `,"open_userid":`...)
	dst = appendStr(dst, u.OpenUserID)
	dst = append(dst, `,"extattr":`...)
	if u.ExtAttr == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, u.ExtAttr...)
	}
	dst = append(dst, `,"departments":[`...)
	for i, m := range u.Departments {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"department_id":`...)
		dst = strconv.AppendInt(dst, m.DepartmentID, 10)
		dst = append(dst, `,"sort_order":`...)
		dst = strconv.AppendInt(dst, m.SortOrder, 10)
		dst = append(dst, `,"is_leader":`...)
		dst = strconv.AppendBool(dst, m.IsLeader)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"unknown_fields":`...)
	dst = appendStrings(dst, u.Unknown)
	return append(dst, '}')
}

func (d *deptRow) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, d.ID, 10)
	dst = append(dst, `,"name":`...)
	dst = appendStr(dst, d.Name)
	dst = append(dst, `,"name_en":`...)
	dst = appendStr(dst, d.NameEn)
	dst = append(dst, `,"parent_id":`...)
	dst = appendInt(dst, d.ParentID)
	dst = append(dst, `,"sort_order":`...)
	dst = appendInt(dst, d.SortOrder)
	dst = append(dst, `,"unknown_fields":`...)
	dst = appendStrings(dst, d.Unknown)
	return append(dst, '}')
}

func (t *tagRow) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"tag_id":`...)
	dst = strconv.AppendInt(dst, t.ID, 10)
	dst = append(dst, `,"name":`...)
	dst = appendStr(dst, t.Name)
	users := make([]string, 0, len(t.Users))
	for u := range t.Users {
		users = append(users, u)
	}
	slices.Sort(users)
	dst = append(dst, `,"users":`...)
	dst = appendStrings(dst, users)
	depts := make([]int64, 0, len(t.Depts))
	for d := range t.Depts {
		depts = append(depts, d)
	}
	slices.Sort(depts)
	dst = append(dst, `,"departments":[`...)
	for i, d := range depts {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, d, 10)
	}
	return append(dst, "]}"...)
}

// unknownSet helpers: Unknown slices are small sorted sets.

func withUnknown(set []string, add ...string) []string {
	out := set
	copied := false
	for _, f := range add {
		i, found := slices.BinarySearch(out, f)
		if found {
			continue
		}
		if !copied {
			out = slices.Clone(out)
			copied = true
		}
		out = slices.Insert(out, i, f)
	}
	if out == nil {
		out = []string{}
	}
	return out
}

func withoutUnknown(set []string, remove string) []string {
	i, found := slices.BinarySearch(set, remove)
	if !found {
		return set
	}
	out := make([]string, 0, len(set)-1)
	out = append(out, set[:i]...)
	return append(out, set[i+1:]...)
}

// withoutUnknowns returns set without the fields in remove, copying only if it must.
func withoutUnknowns(set []string, remove []string) []string {
	found := false
	for _, f := range remove {
		if hasUnknown(set, f) {
			found = true
			break
		}
	}
	if !found {
		return set
	}
	out := make([]string, 0, len(set))
	for _, f := range set {
		if !slices.Contains(remove, f) {
			out = append(out, f)
		}
	}
	return out
}

func hasUnknown(set []string, f string) bool {
	_, found := slices.BinarySearch(set, f)
	return found
}

func normUnknown(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}
