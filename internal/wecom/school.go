package wecom

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// School (家校沟通) department types.
const (
	SchoolClass  = 1 // 班级
	SchoolGrade  = 2 // 年级
	SchoolStage  = 3 // 学段
	SchoolCampus = 4 // 校区
	SchoolRoot   = 5 // 学校 (the root, id 1; list only)
)

// SchoolAdmin is a school department administrator: Type 1 校区负责人, 2 年级负责人,
// 3 班主任, 4 任课老师, 5 学段负责人; Subject only for 3 and 4.
type SchoolAdmin struct {
	UserID  string `json:"userid"`
	Type    int    `json:"type"`
	Subject string `json:"subject,omitempty"`
}

// SchoolAdminOp changes an administrator in school/department/update: Op 0 adds or
// updates (by userid and type), 1 deletes.
type SchoolAdminOp struct {
	Op      int    `json:"op"`
	UserID  string `json:"userid"`
	Type    int    `json:"type"`
	Subject string `json:"subject,omitempty"`
}

// SchoolDepartment is a school department as school/department/list returns it.
type SchoolDepartment struct {
	Name             string        `json:"name"`
	ParentID         int           `json:"parentid"`
	ID               int           `json:"id"`
	Type             int           `json:"type"`
	RegisterYear     int           `json:"register_year"`
	StandardGrade    int           `json:"standard_grade"`
	Order            uint32        `json:"order"`
	DepartmentAdmins []SchoolAdmin `json:"department_admins"`
	IsGraduated      int           `json:"is_graduated"`
	OpenGroupChat    int           `json:"open_group_chat"`
	GroupChatID      string        `json:"group_chat_id"`
}

// SchoolDepartmentCreate is the body of school/department/create. RegisterYear and
// StandardGrade apply to grades only (with both, WeCom ignores Name). ID 0 lets WeCom
// choose; give one so that a lost answer can be resolved by re-reading.
type SchoolDepartmentCreate struct {
	Name             string        `json:"name,omitempty"`
	ParentID         int           `json:"parentid"`
	ID               int           `json:"id,omitempty"`
	Type             int           `json:"type"`
	RegisterYear     int           `json:"register_year,omitempty"`
	StandardGrade    int           `json:"standard_grade,omitempty"`
	Order            *uint32       `json:"order,omitempty"`
	DepartmentAdmins []SchoolAdmin `json:"department_admins,omitempty"`
}

// SchoolDepartmentUpdate is the body of school/department/update; nil fields are not
// changed. NewID renames the department's id.
type SchoolDepartmentUpdate struct {
	ID               int             `json:"id"`
	Name             *string         `json:"name,omitempty"`
	ParentID         *int            `json:"parentid,omitempty"`
	NewID            *int            `json:"new_id,omitempty"`
	RegisterYear     *int            `json:"register_year,omitempty"`
	StandardGrade    *int            `json:"standard_grade,omitempty"`
	Order            *uint32         `json:"order,omitempty"`
	DepartmentAdmins []SchoolAdminOp `json:"department_admins,omitempty"`
}

var (
	epSchoolCreate   = ep("school/department/create", http.MethodPost, retryResolve)
	epSchoolUpdate   = ep("school/department/update", http.MethodPost, retryIdempotent)
	epSchoolRenumber = ep("school/department/update", http.MethodPost, retryResolve)
	epSchoolDelete   = ep("school/department/delete", http.MethodGet, retryIdempotent)
	epSchoolList     = ep("school/department/list", http.MethodGet, retryIdempotent)
	epSchoolGraduate = ep("school/department/graduate", http.MethodPost, retryIdempotent)
	epSchoolUpgrade  = ep("school/set_upgrade_info", http.MethodPost, retryIdempotent)
)

// schoolHas reports whether the school tree has department id.
func (c *Client) schoolHas(ctx context.Context, id int) (bool, error) {
	deps, err := c.ListSchoolDepartments(ctx, 0)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(deps, func(d SchoolDepartment) bool { return d.ID == id }), nil
}

// CreateSchoolDepartment creates a campus, stage, grade or class
// (school/department/create) and returns its id. With an ID given, a lost answer is
// resolved with school/department/list; without, it is ErrUnknownOutcome. Errors: *Error
// 65007 (bad type), 65015 (parent type mismatch: a class must be under a grade), 60004
// (no parent), ErrExists (60008).
func (c *Client) CreateSchoolDepartment(ctx context.Context, d SchoolDepartmentCreate) (int, error) {
	var a struct {
		status
		ID int `json:"id"`
	}
	cl := &call{ep: epSchoolCreate, body: d}
	if d.ID != 0 {
		cl.resolve = func(ctx context.Context) (bool, error) {
			found, err := c.schoolHas(ctx, d.ID)
			if found {
				a.ID = d.ID
			}
			return found, err
		}
	}
	if err := c.do(ctx, cl, &a); err != nil {
		return 0, err
	}
	return a.ID, nil
}

// UpdateSchoolDepartment changes a school department (school/department/update).
// Idempotent, except a renumbering (NewID), resolved after a lost answer by listing.
// Errors: ErrNotFound (60003), *Error 65015, ErrExists (60008 new id taken).
func (c *Client) UpdateSchoolDepartment(ctx context.Context, d SchoolDepartmentUpdate) error {
	cl := &call{ep: epSchoolUpdate, body: d}
	if d.NewID != nil && *d.NewID != d.ID {
		cl.ep = epSchoolRenumber
		cl.resolve = func(ctx context.Context) (bool, error) { return c.schoolHas(ctx, *d.NewID) }
	}
	var a status
	return c.do(ctx, cl, &a)
}

// DeleteSchoolDepartment deletes an empty school department (school/department/delete).
// Errors: ErrNotFound, *Error 60006 (children), 60007 (root).
func (c *Client) DeleteSchoolDepartment(ctx context.Context, id int) error {
	var a status
	return c.do(ctx, &call{ep: epSchoolDelete, query: url.Values{"id": {strconv.Itoa(id)}}, goneOK: true}, &a)
}

// ListSchoolDepartments returns school department id and its subtree, root first
// (school/department/list); id 0 = the whole tree.
func (c *Client) ListSchoolDepartments(ctx context.Context, id int) ([]SchoolDepartment, error) {
	var a struct {
		status
		Departments []SchoolDepartment `json:"departments"`
	}
	if err := c.do(ctx, &call{ep: epSchoolList, query: idQuery(id)}, &a); err != nil {
		return nil, err
	}
	return a.Departments, nil
}

// GraduateSchoolClass graduates every student of a class (school/department/graduate; an
// endpoint the seed documents and API-FACTS lists as unconfirmed). Idempotent. Errors:
// ErrNotFound, *Error 65007 (not a class).
func (c *Client) GraduateSchoolClass(ctx context.Context, departmentID int) error {
	var a status
	return c.do(ctx, &call{ep: epSchoolGraduate, body: map[string]int{"department_id": departmentID}}, &a)
}

// SetSchoolUpgradeInfo sets the yearly automatic grade promotion (school/set_upgrade_info;
// only the month and day of upgradeTime count) and returns the next promotion time (unix
// seconds).
func (c *Client) SetSchoolUpgradeInfo(ctx context.Context, upgradeTime int64, enabled bool) (int64, error) {
	sw := 2
	if enabled {
		sw = 1
	}
	var a struct {
		status
		NextUpgradeTime int64 `json:"next_upgrade_time"`
	}
	if err := c.do(ctx, &call{ep: epSchoolUpgrade, body: map[string]int64{"upgrade_time": upgradeTime, "upgrade_switch": int64(sw)}}, &a); err != nil {
		return 0, err
	}
	return a.NextUpgradeTime, nil
}
