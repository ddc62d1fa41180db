package wecom

import (
	"context"
	"net/http"
)

// LinkedUser is a member of a linked corp (互联企业) as linkedcorp/user/get and
// linkedcorp/user/list return it. UserID is "CORPID/USERID"-scoped by the API's callers;
// Department holds "LINKEDID/DEPARTMENTID" strings.
type LinkedUser struct {
	UserID     string   `json:"userid"`
	Name       string   `json:"name"`
	Department []string `json:"department"`
	Mobile     string   `json:"mobile"`
	Telephone  string   `json:"telephone"`
	Email      string   `json:"email"`
	Position   string   `json:"position"`
	CorpID     string   `json:"corpid"`
	ExtAttr    *ExtAttr `json:"extattr,omitempty"`
}

// LinkedSimpleUser is a linkedcorp/user/simplelist entry.
type LinkedSimpleUser struct {
	UserID     string   `json:"userid"`
	Name       string   `json:"name"`
	Department []string `json:"department"`
	CorpID     string   `json:"corpid"`
}

// LinkedDepartment is a linkedcorp/department/list entry: ids are strings here.
type LinkedDepartment struct {
	DepartmentID   string `json:"department_id"`
	DepartmentName string `json:"department_name"`
	ParentID       string `json:"parentid"`
	Order          uint32 `json:"order"`
}

// LinkedPermList is the app's visible range in other linked corps: "CORPID/USERID" and
// "LINKEDID/DEPARTMENTID" strings.
type LinkedPermList struct {
	UserIDs       []string `json:"userids"`
	DepartmentIDs []string `json:"department_ids"`
}

var (
	epLinkedPerm       = ep("linkedcorp/agent/get_perm_list", http.MethodPost, retryIdempotent)
	epLinkedUserGet    = ep("linkedcorp/user/get", http.MethodPost, retryIdempotent)
	epLinkedSimpleList = ep("linkedcorp/user/simplelist", http.MethodPost, retryIdempotent)
	epLinkedUserList   = ep("linkedcorp/user/list", http.MethodPost, retryIdempotent)
	epLinkedDeptList   = ep("linkedcorp/department/list", http.MethodPost, retryIdempotent)
)

// LinkedPermissions returns the members and departments of linked corps the app may see
// (linkedcorp/agent/get_perm_list).
func (c *Client) LinkedPermissions(ctx context.Context) (LinkedPermList, error) {
	var a struct {
		status
		LinkedPermList
	}
	if err := c.do(ctx, &call{ep: epLinkedPerm}, &a); err != nil {
		return LinkedPermList{}, err
	}
	return a.LinkedPermList, nil
}

// GetLinkedUser returns a linked corp's member; userid is "CORPID/USERID"
// (linkedcorp/user/get). Errors: ErrNotFound, ErrNoPermission (60011).
func (c *Client) GetLinkedUser(ctx context.Context, userid string) (*LinkedUser, error) {
	var a struct {
		status
		UserInfo LinkedUser `json:"user_info"`
	}
	if err := c.do(ctx, &call{ep: epLinkedUserGet, body: map[string]string{"userid": userid}}, &a); err != nil {
		return nil, err
	}
	return &a.UserInfo, nil
}

type linkedListBody struct {
	DepartmentID string `json:"department_id"`
	FetchChild   bool   `json:"fetch_child"`
}

// SimpleListLinkedUsers returns the members of a linked corp's department
// ("LINKEDID/DEPARTMENTID"), of its subtree with fetchChild (linkedcorp/user/simplelist).
func (c *Client) SimpleListLinkedUsers(ctx context.Context, departmentID string, fetchChild bool) ([]LinkedSimpleUser, error) {
	var a struct {
		status
		UserList []LinkedSimpleUser `json:"userlist"`
	}
	if err := c.do(ctx, &call{ep: epLinkedSimpleList, body: linkedListBody{departmentID, fetchChild}}, &a); err != nil {
		return nil, err
	}
	return a.UserList, nil
}

// ListLinkedUsers is SimpleListLinkedUsers with member details (linkedcorp/user/list).
func (c *Client) ListLinkedUsers(ctx context.Context, departmentID string, fetchChild bool) ([]LinkedUser, error) {
	var a struct {
		status
		UserList []LinkedUser `json:"userlist"`
	}
	if err := c.do(ctx, &call{ep: epLinkedUserList, body: linkedListBody{departmentID, fetchChild}}, &a); err != nil {
		return nil, err
	}
	return a.UserList, nil
}

// ListLinkedDepartments returns a linked corp's department ("LINKEDID/DEPARTMENTID") and
// its subtree (linkedcorp/department/list).
func (c *Client) ListLinkedDepartments(ctx context.Context, departmentID string) ([]LinkedDepartment, error) {
	var a struct {
		status
		DepartmentList []LinkedDepartment `json:"department_list"`
	}
	if err := c.do(ctx, &call{ep: epLinkedDeptList, body: map[string]string{"department_id": departmentID}}, &a); err != nil {
		return nil, err
	}
	return a.DepartmentList, nil
}
