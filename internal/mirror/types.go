package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
)

// ErrNotFound is returned (wrapped) by a Lookup when the member or department no longer
// exists, and by the Store's readers (DeadLetter, JobEvent) for a missing row.
var ErrNotFound = errors.New("not found")

// ErrLookupNotPermitted is returned (wrapped) by a Lookup when WeCom refuses to reveal the
// record (for example errcode 48009 for the contacts-sync secret on a new IP, or 60011).
// The Store then keeps only what the event carried and lists the other fields in
// unknown_fields, never inventing values.
var ErrLookupNotPermitted = errors.New("lookup not permitted")

// Field names used in User.Unknown, Department.Unknown and the unknown_fields columns.
// They are the mirror's column names; FieldOrder and FieldIsLeader stand for the
// per-department sort_order and is_leader of a member's memberships.
const (
	FieldName           = "name"
	FieldAlias          = "alias"
	FieldPosition       = "position"
	FieldMobile         = "mobile"
	FieldEmail          = "email"
	FieldBizMail        = "biz_mail"
	FieldGender         = "gender"
	FieldStatus         = "status"
	FieldMainDepartment = "main_department"
	FieldAvatar         = "avatar"
	FieldTelephone      = "telephone"
	FieldAddress        = "address"
	FieldOpenUserID     = "open_userid"
	FieldExtAttr        = "extattr"
	FieldOrder          = "sort_order"
	FieldIsLeader       = "is_leader"
	FieldNameEn         = "name_en"
	FieldParentID       = "parent_id"
)

// UserFields lists every user field that can be unknown, in column order.
var UserFields = []string{FieldName, FieldAlias, FieldPosition, FieldMobile, FieldEmail, FieldBizMail,
	FieldGender, FieldStatus, FieldMainDepartment, FieldAvatar, FieldTelephone, FieldAddress,
	FieldOpenUserID, FieldExtAttr, FieldOrder, FieldIsLeader}

// DepartmentFields lists every department field that can be unknown, in column order.
var DepartmentFields = []string{FieldName, FieldNameEn, FieldParentID, FieldOrder}

// User is a member's full record as a Lookup or a SyncSource provides it (the shape of
// WeCom's user/get). Fields named in Unknown are not known to the provider (for example
// mobile and email withheld since 2022, or everything but the departments from
// user/list_id); their values are ignored and stored as NULL, unless the mirror already
// knows them, in which case the mirror keeps its value.
type User struct {
	UserID         string
	Name           string
	Alias          string
	Position       string
	Mobile         string
	Email          string
	BizMail        string
	Gender         int // 0 undefined, 1 male, 2 female
	Status         int // 1 active, 2 disabled, 4 not activated, 5 left
	MainDepartment int64
	Avatar         string
	Telephone      string
	Address        string
	OpenUserID     string
	// ExtAttr is user/get's extattr object ({"attrs":[...]}), stored as is; nil for none.
	ExtAttr json.RawMessage
	// Departments are the member's departments with the member's order in each and
	// whether the member leads it (user/get's department, order, is_leader_in_dept).
	Departments []Membership
	// Raw is the record as WeCom returned it, kept in the raw column; nil for none.
	Raw json.RawMessage
	// Unknown lists the fields (Field* constants) the provider does not know.
	Unknown []string
}

// Membership is one department of a member.
type Membership struct {
	DepartmentID int64
	// Order is the member's sort order within the department (larger first).
	Order    int64
	IsLeader bool
}

// Department is a department's full record (the shape of department/get).
type Department struct {
	ID       int64
	Name     string
	NameEn   string
	ParentID int64
	Order    int64
	// Raw is the record as WeCom returned it; nil for none.
	Raw json.RawMessage
	// Unknown lists the fields (Field* constants) the provider does not know.
	Unknown []string
}

// Tag is a tag with its members, as a SyncSource provides it (tag/list + tag/get).
type Tag struct {
	ID          int64
	Name        string
	UserIDs     []string
	Departments []int64
}

// Lookup fetches the current full record of a member or department, for events that
// do not carry one (post-2022 minimal callbacks, updates of entities the mirror has never
// seen). The worker implements it over the WeCom client. Errors: ErrNotFound (wrapped)
// when the entity is gone, ErrLookupNotPermitted (wrapped) when WeCom refuses; any other
// error is treated as transient and fails the whole ApplyBatch call (nothing committed).
// Lookups are made before the apply transaction opens, possibly concurrently.
type Lookup interface {
	User(ctx context.Context, corpID, userid string) (*User, error)
	Department(ctx context.Context, corpID string, id int64) (*Department, error)
}

// SyncSource is a complete view of one corp's directory, read once by Store.Sync. Each
// method returns a single-use iterator; records are consumed as they are yielded (copied
// to Postgres in chunks), so a source may stream them from an API or an export file
// without holding them all. An iterator that yields a non-nil error aborts the sync
// (nothing is committed). Tags may return nil when the source has no tag data; the
// mirror's tags are then left untouched.
//
// A source may also implement `SnapshotWatermark() (int64, bool)`: the change-log position
// (Store.ChangeWatermark) recorded just before its snapshot was taken; entities changed by
// events after it are left as the events made them.
// A source may also implement `SourceName() string` to name itself in the change log
// (default "sync").
type SyncSource interface {
	Departments(ctx context.Context) iter.Seq2[*Department, error]
	Users(ctx context.Context) iter.Seq2[*User, error]
	Tags(ctx context.Context) iter.Seq2[*Tag, error]
}

// SyncReport counts what a Sync changed, by entity.
type SyncReport struct {
	Users, Departments, Tags Counts
}

// Counts are row changes of one entity.
type Counts struct {
	Created, Updated, Deleted, Unchanged int
}
