package emulator

import (
	"encoding/json"
	"strconv"
	"strings"
)

// linkedRoutes serves the linked-corp (互联企业) read APIs over the linked corp's
// directory (API-FACTS §6). All are POST and for self-built apps: the app and console
// secrets may call them, the contacts-sync secret gets 48002. Without a linked corp every
// call answers 60011 (no permission on the target).
func (s *Server) linkedRoutes() []Route {
	allow := SecretApp | SecretConsole
	return []Route{
		{Path: "/cgi-bin/linkedcorp/agent/get_perm_list", Method: post, Allow: allow, Handle: s.linkedPermList},
		{Path: "/cgi-bin/linkedcorp/user/get", Method: post, Allow: allow, Handle: s.linkedUserGet},
		{Path: "/cgi-bin/linkedcorp/user/simplelist", Method: post, Allow: allow, Handle: s.linkedUserSimpleList},
		{Path: "/cgi-bin/linkedcorp/user/list", Method: post, Allow: allow, Handle: s.linkedUserList},
		{Path: "/cgi-bin/linkedcorp/department/list", Method: post, Allow: allow, Handle: s.linkedDeptList},
	}
}

var errNoLinkedPerm = apiErr(60011, "no privilege to access/modify contact/party/agent")

func (s *Server) linkedPermList(c *Call) (any, error) {
	ld := s.linked
	if ld == nil {
		return struct {
			base
			UserIDs       []string `json:"userids"`
			DepartmentIDs []string `json:"department_ids"`
		}{okBase, []string{}, []string{}}, nil
	}
	st := ld.Snapshot()
	users := make([]string, 0, len(st.Users))
	for _, u := range st.Users {
		users = append(users, ld.corpID+"/"+u.UserID)
	}
	return struct {
		base
		UserIDs       []string `json:"userids"`
		DepartmentIDs []string `json:"department_ids"`
	}{okBase, users, []string{ld.corpID + "/" + strconv.Itoa(rootDepartmentID)}}, nil
}

type linkedAttr struct {
	Name  string   `json:"name"`
	Value string   `json:"value,omitempty"`
	Type  int      `json:"type"`
	Text  *ExtText `json:"text,omitempty"`
	Web   *ExtWeb  `json:"web,omitempty"`
}

type linkedUser struct {
	UserID     string   `json:"userid"`
	Name       string   `json:"name"`
	Department []string `json:"department"`
	Mobile     string   `json:"mobile"`
	Telephone  string   `json:"telephone"`
	Email      string   `json:"email"`
	Position   string   `json:"position"`
	CorpID     string   `json:"corpid"`
	ExtAttr    struct {
		Attrs []linkedAttr `json:"attrs"`
	} `json:"extattr"`
}

type linkedSimpleUser struct {
	UserID     string   `json:"userid"`
	Name       string   `json:"name"`
	Department []string `json:"department"`
	CorpID     string   `json:"corpid"`
}

func (s *Server) linkedDepts(u *User) []string {
	out := make([]string, len(u.Departments))
	for i, d := range u.Departments {
		out[i] = s.linked.corpID + "/" + strconv.Itoa(d)
	}
	return out
}

func (s *Server) viewLinkedUser(u *User) linkedUser {
	v := linkedUser{UserID: u.UserID, Name: u.Name, Department: s.linkedDepts(u), Mobile: u.Mobile,
		Telephone: u.Telephone, Email: u.Email, Position: u.Position, CorpID: s.linked.corpID}
	v.ExtAttr.Attrs = []linkedAttr{}
	for _, a := range u.ExtAttr.Attrs {
		la := linkedAttr{Name: a.Name, Type: a.Type, Text: a.Text, Web: a.Web}
		if a.Text != nil {
			la.Value = a.Text.Value
		}
		v.ExtAttr.Attrs = append(v.ExtAttr.Attrs, la)
	}
	return v
}

// splitLinked splits "CORPID/ID" and checks the corp is the linked one.
func (s *Server) splitLinked(v string) (string, bool) {
	corp, id, ok := strings.Cut(v, "/")
	if !ok || s.linked == nil || corp != s.linked.corpID || id == "" {
		return "", false
	}
	return id, true
}

func (s *Server) linkedUserGet(c *Call) (any, error) {
	var in struct {
		UserID string `json:"userid"`
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if in.UserID == "" {
		return nil, apiErr(CodeMissingUserID, "missing userid")
	}
	id, ok := s.splitLinked(in.UserID)
	if !ok {
		return nil, apiErr(CodeInvalidUserID, "invalid userid")
	}
	u, ok := s.linked.User(id)
	if !ok {
		return nil, apiErr(CodeUserNotFound, "userid not found")
	}
	return struct {
		base
		UserInfo linkedUser `json:"user_info"`
	}{okBase, s.viewLinkedUser(u)}, nil
}

type linkedListInput struct {
	DepartmentID string          `json:"department_id"`
	FetchChild   json.RawMessage `json:"fetch_child"`
}

// fetchChild accepts true/1/"1".
func (in linkedListInput) fetchChild() bool {
	switch strings.Trim(string(in.FetchChild), `"`) {
	case "true", "1":
		return true
	}
	return false
}

func (s *Server) linkedMembers(c *Call) ([]*User, error) {
	var in linkedListInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if s.linked == nil {
		return nil, errNoLinkedPerm
	}
	raw, ok := s.splitLinked(in.DepartmentID)
	id, err := strconv.Atoi(raw)
	if !ok || err != nil {
		return nil, apiErr(CodeInvalidDeptID, "invalid department id")
	}
	us, ok := s.linked.DepartmentUsers(id, in.fetchChild())
	if !ok {
		return nil, apiErr(CodeDeptNotFound, "department not found")
	}
	return us, nil
}

func (s *Server) linkedUserSimpleList(c *Call) (any, error) {
	us, err := s.linkedMembers(c)
	if err != nil {
		return nil, err
	}
	out := make([]linkedSimpleUser, len(us))
	for i, u := range us {
		out[i] = linkedSimpleUser{u.UserID, u.Name, s.linkedDepts(u), s.linked.corpID}
	}
	return struct {
		base
		UserList []linkedSimpleUser `json:"userlist"`
	}{okBase, out}, nil
}

func (s *Server) linkedUserList(c *Call) (any, error) {
	us, err := s.linkedMembers(c)
	if err != nil {
		return nil, err
	}
	out := make([]linkedUser, len(us))
	for i, u := range us {
		out[i] = s.viewLinkedUser(u)
	}
	return struct {
		base
		UserList []linkedUser `json:"userlist"`
	}{okBase, out}, nil
}

// linkedDept is a department_list entry: ids and parentid are strings here.
type linkedDept struct {
	DepartmentID   string `json:"department_id"`
	DepartmentName string `json:"department_name"`
	ParentID       string `json:"parentid"`
	Order          uint32 `json:"order"`
}

func (s *Server) linkedDeptList(c *Call) (any, error) {
	var in linkedListInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if s.linked == nil {
		return nil, errNoLinkedPerm
	}
	raw, ok := s.splitLinked(in.DepartmentID)
	id, err := strconv.Atoi(raw)
	if !ok || err != nil {
		return nil, apiErr(CodeInvalidDeptID, "invalid department id")
	}
	deps, ok := s.linked.Departments(id)
	if !ok {
		return nil, apiErr(CodeDeptNotFound, "department not found")
	}
	out := make([]linkedDept, len(deps))
	for i, d := range deps {
		out[i] = linkedDept{strconv.Itoa(d.ID), d.Name, strconv.Itoa(d.ParentID), d.Order}
	}
	return struct {
		base
		DepartmentList []linkedDept `json:"department_list"`
	}{okBase, out}, nil
}
