package wecom

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Department is a department as department/list and department/get return it.
type Department struct {
	ID               int      `json:"id"`
	Name             string   `json:"name"`
	NameEn           string   `json:"name_en,omitempty"`
	DepartmentLeader []string `json:"department_leader"`
	ParentID         int      `json:"parentid"`
	Order            uint32   `json:"order"`
}

// SimpleDepartment is a department/simplelist entry.
type SimpleDepartment struct {
	ID       int    `json:"id"`
	ParentID int    `json:"parentid"`
	Order    uint32 `json:"order"`
}

// DepartmentCreate is the body of department/create. ID 0 lets WeCom choose; give an ID
// when you can: only then can a create whose answer was lost be resolved by re-reading.
type DepartmentCreate struct {
	Name     string  `json:"name"`
	NameEn   string  `json:"name_en,omitempty"`
	ParentID int     `json:"parentid"`
	Order    *uint32 `json:"order,omitempty"`
	ID       int     `json:"id,omitempty"`
}

// DepartmentUpdate is the body of department/update; nil fields are not changed.
type DepartmentUpdate struct {
	ID       int     `json:"id"`
	Name     *string `json:"name,omitempty"`
	NameEn   *string `json:"name_en,omitempty"`
	ParentID *int    `json:"parentid,omitempty"`
	Order    *uint32 `json:"order,omitempty"`
}

var (
	epDeptCreate     = ep("department/create", http.MethodPost, retryResolve)
	epDeptUpdate     = ep("department/update", http.MethodPost, retryIdempotent)
	epDeptDelete     = ep("department/delete", http.MethodGet, retryIdempotent)
	epDeptList       = ep("department/list", http.MethodGet, retryIdempotent)
	epDeptSimpleList = ep("department/simplelist", http.MethodGet, retryIdempotent)
	epDeptGet        = ep("department/get", http.MethodGet, retryIdempotent)
)

// CreateDepartment creates a department (department/create) and returns its id. With an
// ID given, a lost answer is resolved with department/get (present = created); without
// one, a lost answer gives ErrUnknownOutcome (resending could create a second
// department). Errors: ErrExists (60008), *Error 60004 (no parent), 60001/60009 (name).
func (c *Client) CreateDepartment(ctx context.Context, d DepartmentCreate) (int, error) {
	var a struct {
		status
		ID int `json:"id"`
	}
	cl := &call{ep: epDeptCreate, body: d}
	if d.ID != 0 {
		cl.resolve = func(ctx context.Context) (bool, error) {
			got, err := c.GetDepartment(ctx, d.ID)
			found, err := c.exists(got, err)
			if found && (got.Name != d.Name || got.ParentID != d.ParentID) {
				return false, existsElsewhere("department/create", 60008, "department "+strconv.Itoa(d.ID))
			}
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

// UpdateDepartment changes the given fields (department/update). Idempotent. Errors:
// ErrNotFound (60003), ErrExists (60008 name), *Error 60010 (cycle).
func (c *Client) UpdateDepartment(ctx context.Context, d DepartmentUpdate) error {
	var a status
	return c.do(ctx, &call{ep: epDeptUpdate, body: d}, &a)
}

// DeleteDepartment deletes an empty department (department/delete); a repeated delete
// after a lost answer that finds it gone counts as success. Errors: ErrNotFound, *Error
// 60005 (has members), 60006 (has children), 60007 (root).
func (c *Client) DeleteDepartment(ctx context.Context, id int) error {
	var a status
	return c.do(ctx, &call{ep: epDeptDelete, query: url.Values{"id": {strconv.Itoa(id)}}, goneOK: true}, &a)
}

func idQuery(id int) url.Values {
	if id == 0 {
		return url.Values{}
	}
	return url.Values{"id": {strconv.Itoa(id)}}
}

// ListDepartments returns department id and its whole subtree with names
// (department/list); id 0 = the whole tree. Errors: ErrNotFound, ErrNoPermission (48009
// from a new IP: use SimpleListDepartments + GetDepartment).
func (c *Client) ListDepartments(ctx context.Context, id int) ([]Department, error) {
	var a struct {
		status
		Department []Department `json:"department"`
	}
	if err := c.do(ctx, &call{ep: epDeptList, query: idQuery(id)}, &a); err != nil {
		return nil, err
	}
	return a.Department, nil
}

// SimpleListDepartments returns the ids, parents and orders of department id and its
// subtree (department/simplelist); id 0 = the whole tree. Errors: ErrNotFound.
func (c *Client) SimpleListDepartments(ctx context.Context, id int) ([]SimpleDepartment, error) {
	var a struct {
		status
		DepartmentID []SimpleDepartment `json:"department_id"`
	}
	if err := c.do(ctx, &call{ep: epDeptSimpleList, query: idQuery(id)}, &a); err != nil {
		return nil, err
	}
	return a.DepartmentID, nil
}

// GetDepartment returns one department (department/get). Errors: ErrNotFound (60003),
// ErrNoPermission (48009 from a new IP).
func (c *Client) GetDepartment(ctx context.Context, id int) (*Department, error) {
	var a struct {
		status
		Department Department `json:"department"`
	}
	if err := c.do(ctx, &call{ep: epDeptGet, query: url.Values{"id": {strconv.Itoa(id)}}}, &a); err != nil {
		return nil, err
	}
	return &a.Department, nil
}
