package emulator

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	get  = http.MethodGet
	post = http.MethodPost
)

// coreRoutes lists every core endpoint; extensions add theirs (see Extension).
func (s *Server) coreRoutes() []Route {
	rs := []Route{
		{Path: "/cgi-bin/gettoken", Method: get, NoAuth: true, Handle: s.getToken},
		{Path: "/cgi-bin/getcallbackip", Method: get, Handle: s.getCallbackIP, ErrorLists: []string{"ip_list"}},
		// Members.
		{Path: "/cgi-bin/user/create", Method: post, Allow: writeSecrets, Handle: s.userCreate},
		{Path: "/cgi-bin/user/get", Method: get, Handle: s.userGet,
			ErrorLists: []string{"department", "order", "is_leader_in_dept", "direct_leader"}},
		{Path: "/cgi-bin/user/update", Method: post, Allow: writeSecrets, Handle: s.userUpdate},
		{Path: "/cgi-bin/user/delete", Method: get, Allow: writeSecrets, Handle: s.userDelete},
		{Path: "/cgi-bin/user/batchdelete", Method: post, Allow: writeSecrets, Handle: s.userBatchDelete},
		{Path: "/cgi-bin/user/simplelist", Method: get, Handle: s.userSimpleList},
		{Path: "/cgi-bin/user/list", Method: get, Handle: s.userList},
		{Path: "/cgi-bin/user/list_id", Method: post, Allow: SecretContact, Handle: s.userListID, ErrorLists: []string{"dept_user"}},
		{Path: "/cgi-bin/user/convert_to_openid", Method: post, Handle: s.userConvertToOpenID},
		{Path: "/cgi-bin/user/convert_to_userid", Method: post, Handle: s.userConvertToUserID},
		{Path: "/cgi-bin/user/authsucc", Method: get, Handle: s.userAuthSucc},
		{Path: "/cgi-bin/batch/invite", Method: post, Allow: writeSecrets, Handle: s.batchInvite},
		{Path: "/cgi-bin/corp/get_join_qrcode", Method: get, Allow: SecretContact | SecretConsole, Handle: s.joinQRCode},
		{Path: "/cgi-bin/user/get_active_stat", Method: post, Handle: s.activeStat},
		{Path: "/cgi-bin/user/getuserid", Method: post, Handle: s.getUserIDByMobile},
		{Path: "/cgi-bin/user/get_userid_by_email", Method: post, Handle: s.getUserIDByEmail},
	}
	rs = append(rs, s.departmentRoutes()...)
	rs = append(rs, s.tagRoutes()...)
	rs = append(rs, s.linkedRoutes()...)
	rs = append(rs, s.schoolRoutes()...)
	return rs
}

// ---- gettoken ----

type tokenResp struct {
	base
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// getToken implements gettoken: 41004 missing secret (checked first, as probes saw),
// 41002 missing corpid, 40013 unknown corpid, 40001 unknown secret.
func (s *Server) getToken(c *Call) (any, error) {
	corpID, secret := c.Query("corpid"), c.Query("corpsecret")
	if secret == "" {
		return nil, apiErr(CodeMissingSecret, "corpsecret missing")
	}
	if corpID == "" {
		return nil, apiErr(CodeMissingCorpID, "corpid missing")
	}
	if corpID != s.cfg.CorpID {
		return nil, apiErr(CodeInvalidCorpID, "invalid corpid")
	}
	var kind SecretKind
	switch secret {
	case s.cfg.ContactSecret:
		kind = SecretContact
	case s.cfg.ConsoleSecret:
		kind = SecretConsole
	case s.cfg.AppSecret:
		kind = SecretApp
	}
	if kind == 0 || secret == "" {
		return nil, apiErr(CodeInvalidSecret, "invalid credential")
	}
	s.calls.Add(1)
	now := s.now()
	t := s.tokens.issue(kind, now)
	return tokenResp{okBase, t.token, int(t.expires.Sub(now) / time.Second)}, nil
}

func (s *Server) getCallbackIP(c *Call) (any, error) {
	return struct {
		base
		IPList []string `json:"ip_list"`
	}{okBase, []string{"127.0.0.1"}}, nil
}

// ---- user views ----

// userView is user/get's answer; the sensitive fields are pointers so the app secret's
// restricted view can omit them.
type userView struct {
	UserID           string   `json:"userid"`
	Name             string   `json:"name"`
	Department       []int    `json:"department"`
	Order            []uint32 `json:"order"`
	Position         string   `json:"position"`
	Mobile           *string  `json:"mobile,omitempty"`
	Gender           *string  `json:"gender,omitempty"`
	Email            *string  `json:"email,omitempty"`
	BizMail          *string  `json:"biz_mail,omitempty"`
	IsLeaderInDept   []int    `json:"is_leader_in_dept"`
	DirectLeader     []string `json:"direct_leader"`
	Avatar           *string  `json:"avatar,omitempty"`
	ThumbAvatar      *string  `json:"thumb_avatar,omitempty"`
	Telephone        string   `json:"telephone"`
	Alias            string   `json:"alias"`
	Address          *string  `json:"address,omitempty"`
	OpenUserID       string   `json:"open_userid"`
	MainDepartment   int      `json:"main_department"`
	ExtAttr          ExtAttr  `json:"extattr"`
	Status           int      `json:"status"`
	QRCode           *string  `json:"qr_code,omitempty"`
	ExternalPosition string   `json:"external_position"`
	ExternalProfile  any      `json:"external_profile"`
}

type userGetResp struct {
	base
	userView
}

func (s *Server) viewUser(u *User, secret SecretKind) userView {
	v := userView{UserID: u.UserID, Name: u.Name, Department: u.Departments, Order: u.Orders, Position: u.Position,
		IsLeaderInDept: u.IsLeaderInDept, DirectLeader: u.DirectLeader, Telephone: u.Telephone, Alias: u.Alias,
		OpenUserID: u.OpenUserID, MainDepartment: u.MainDepartment, ExtAttr: u.ExtAttr, Status: u.Status,
		ExternalPosition: u.ExternalPosition, ExternalProfile: u.ExternalProfile}
	if v.ExternalProfile == nil || len(u.ExternalProfile) == 0 {
		v.ExternalProfile = struct {
			ExternalCorpName string `json:"external_corp_name"`
			ExternalAttr     []any  `json:"external_attr"`
		}{ExternalAttr: []any{}}
	}
	if secret == SecretApp && s.cfg.AppSensitiveRestricted {
		return v
	}
	thumb := strings.TrimSuffix(u.Avatar, "/0")
	if thumb != u.Avatar {
		thumb += "/100"
	}
	qr := "https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=" + u.OpenUserID
	v.Mobile, v.Gender, v.Email, v.BizMail = &u.Mobile, &u.Gender, &u.Email, &u.BizMail
	v.Avatar, v.ThumbAvatar, v.Address, v.QRCode = &u.Avatar, &thumb, &u.Address, &qr
	return v
}

func (s *Server) userGet(c *Call) (any, error) {
	id := c.Query("userid")
	if id == "" {
		return nil, apiErr(CodeMissingUserID, "missing userid")
	}
	u, ok := s.dir.User(id)
	if !ok {
		return nil, apiErr(CodeUserNotFound, "userid not found")
	}
	return userGetResp{okBase, s.viewUser(u, c.Secret)}, nil
}

func (s *Server) userCreate(c *Call) (any, error) {
	var in UserInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := s.update(c, func(tx *Tx) error { return tx.CreateUser(in) }); err != nil {
		return nil, err
	}
	return base{0, "created"}, nil
}

func (s *Server) userUpdate(c *Call) (any, error) {
	var in UserInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := s.update(c, func(tx *Tx) error { return tx.UpdateUser(in) }); err != nil {
		return nil, err
	}
	return base{0, "updated"}, nil
}

func (s *Server) userDelete(c *Call) (any, error) {
	id := c.Query("userid")
	if id == "" {
		return nil, apiErr(CodeMissingUserID, "missing userid")
	}
	if err := s.update(c, func(tx *Tx) error { return tx.DeleteUsers(id) }); err != nil {
		return nil, apiErr(CodeUserNotFound, "userid not found")
	}
	return base{0, "deleted"}, nil
}

func (s *Server) userBatchDelete(c *Call) (any, error) {
	var in struct {
		UserIDList []string `json:"useridlist"`
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if len(in.UserIDList) == 0 || len(in.UserIDList) > maxBatchDeleteUsers {
		return nil, apiErr(CodeInvalidUserListSize, "invalid userid list size")
	}
	if err := s.update(c, func(tx *Tx) error { return tx.DeleteUsers(in.UserIDList...) }); err != nil {
		return nil, err
	}
	return base{0, "deleted"}, nil
}

// readDeptParam parses department_id for the list APIs: 60123 when missing or not a number.
func readDeptParam(c *Call, name string) (int, error) {
	v := c.Query(name)
	id, err := strconv.Atoi(v)
	if v == "" || err != nil || id <= 0 {
		return 0, apiErr(CodeInvalidDeptID, "invalid department id")
	}
	return id, nil
}

// newIPBlocked answers 48009 for the contacts-sync secret when ContactNewIP is set.
func (s *Server) newIPBlocked(c *Call) error {
	if s.cfg.ContactNewIP && c.Secret == SecretContact {
		return apiErr(CodeNewIPForbidden, "not allow to access from your ip")
	}
	return nil
}

type simpleUser struct {
	UserID     string `json:"userid"`
	Name       string `json:"name"`
	Department []int  `json:"department"`
	OpenUserID string `json:"open_userid"`
}

func (s *Server) userSimpleList(c *Call) (any, error) {
	if err := s.newIPBlocked(c); err != nil {
		return nil, err
	}
	id, err := readDeptParam(c, "department_id")
	if err != nil {
		return nil, err
	}
	us, ok := s.dir.DepartmentUsers(id, c.Query("fetch_child") == "1")
	if !ok {
		return nil, apiErr(CodeDeptNotFound, "department not found")
	}
	out := make([]simpleUser, len(us))
	for i, u := range us {
		out[i] = simpleUser{u.UserID, u.Name, u.Departments, u.OpenUserID}
	}
	return struct {
		base
		UserList []simpleUser `json:"userlist"`
	}{okBase, out}, nil
}

func (s *Server) userList(c *Call) (any, error) {
	if err := s.newIPBlocked(c); err != nil {
		return nil, err
	}
	id, err := readDeptParam(c, "department_id")
	if err != nil {
		return nil, err
	}
	us, ok := s.dir.DepartmentUsers(id, c.Query("fetch_child") == "1")
	if !ok {
		return nil, apiErr(CodeDeptNotFound, "department not found")
	}
	out := make([]userView, len(us))
	for i, u := range us {
		out[i] = s.viewUser(u, c.Secret)
	}
	return struct {
		base
		UserList []userView `json:"userlist"`
	}{okBase, out}, nil
}

func (s *Server) userListID(c *Call) (any, error) {
	var in struct {
		Cursor string   `json:"cursor"`
		Limit  *FlexInt `json:"limit"`
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	limit := 10000
	if in.Limit != nil {
		limit = in.Limit.Int()
	}
	if limit < 1 || limit > 10000 {
		return nil, apiErr(CodeInvalidParameter, "invalid limit, should be in [1, 10000]")
	}
	rows, next, err := s.dir.ListIDs(in.Cursor, limit)
	if err != nil {
		return nil, err
	}
	return struct {
		base
		NextCursor string     `json:"next_cursor"`
		DeptUser   []DeptUser `json:"dept_user"`
	}{okBase, next, rows}, nil
}

func (s *Server) userConvertToOpenID(c *Call) (any, error) {
	var in struct {
		UserID string `json:"userid"`
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if in.UserID == "" {
		return nil, apiErr(CodeMissingUserID, "missing userid")
	}
	u, ok := s.dir.User(in.UserID)
	if !ok {
		return nil, apiErr(CodeUserNotFound, "userid not found")
	}
	if u.Status != 1 {
		// Only activated members use WeChat/the plugin (ASSUMPTION for the status rule).
		return nil, apiErr(CodeNotFollowed, "user not bind wechat or not follow plugin")
	}
	return struct {
		base
		OpenID string `json:"openid"`
	}{okBase, s.dir.OpenID(u)}, nil
}

func (s *Server) userConvertToUserID(c *Call) (any, error) {
	var in struct {
		OpenID string `json:"openid"`
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	u, ok := s.dir.UserByOpenID(in.OpenID)
	if !ok {
		return nil, apiErr(CodeInvalidParameter, "invalid openid")
	}
	return struct {
		base
		UserID string `json:"userid"`
	}{okBase, u.UserID}, nil
}

// userAuthSucc activates a not-yet-activated member (status 4 -> 1), without a callback
// unless the console secret made the call.
func (s *Server) userAuthSucc(c *Call) (any, error) {
	id := c.Query("userid")
	if id == "" {
		return nil, apiErr(CodeMissingUserID, "missing userid")
	}
	err := s.update(c, func(tx *Tx) error {
		u, ok := tx.User(id)
		if !ok {
			return apiErr(CodeUserNotFound, "userid not found")
		}
		if u.Status != 4 {
			return nil
		}
		return tx.setStatus(u, 1)
	})
	if err != nil {
		return nil, err
	}
	return okBase, nil
}

func (s *Server) batchInvite(c *Call) (any, error) {
	var in struct {
		User  []string `json:"user"`
		Party []int    `json:"party"`
		Tag   []int    `json:"tag"`
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if len(in.User) == 0 && len(in.Party) == 0 && len(in.Tag) == 0 {
		return nil, apiErr(81013, "user & party & tag all invalid")
	}
	if len(in.User) > 1000 || len(in.Party) > 100 || len(in.Tag) > 100 {
		return nil, apiErr(CodeInvalidParameter, "too many invitees")
	}
	resp := struct {
		base
		InvalidUser  []string `json:"invaliduser"`
		InvalidParty []int    `json:"invalidparty"`
		InvalidTag   []int    `json:"invalidtag"`
	}{base: okBase, InvalidUser: []string{}, InvalidParty: []int{}, InvalidTag: []int{}}
	for _, u := range in.User {
		if _, ok := s.dir.User(u); !ok {
			resp.InvalidUser = append(resp.InvalidUser, u)
		}
	}
	for _, p := range in.Party {
		if _, ok := s.dir.Department(p); !ok {
			resp.InvalidParty = append(resp.InvalidParty, p)
		}
	}
	for _, t := range in.Tag {
		if _, ok := s.dir.Tag(t); !ok {
			resp.InvalidTag = append(resp.InvalidTag, t)
		}
	}
	if len(resp.InvalidUser) == len(in.User) && len(resp.InvalidParty) == len(in.Party) && len(resp.InvalidTag) == len(in.Tag) {
		return nil, apiErr(81013, "user & party & tag all invalid")
	}
	return resp, nil
}

func (s *Server) joinQRCode(c *Call) (any, error) {
	size := c.Query("size_type")
	if size == "" {
		size = "1"
	}
	if n, err := strconv.Atoi(size); err != nil || n < 1 || n > 4 {
		return nil, apiErr(CodeInvalidParameter, "invalid size_type")
	}
	return struct {
		base
		JoinQRCode string `json:"join_qrcode"`
	}{okBase, "https://work.weixin.qq.com/wework_admin/genqrcode?action=join&vcode=" + s.cfg.CorpID + "&size=" + size}, nil
}

func (s *Server) activeStat(c *Call) (any, error) {
	var in struct {
		Date string `json:"date"`
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	day, err := time.Parse("2006-01-02", in.Date)
	now := s.now()
	if err != nil || day.After(now) || now.Sub(day) > 31*24*time.Hour {
		return nil, apiErr(CodeInvalidParameter, "invalid date")
	}
	// Active members: the activated ones (a stable, plausible number).
	n := s.dir.CountStatus(1)
	return struct {
		base
		ActiveCnt int `json:"active_cnt"`
	}{okBase, n}, nil
}

func (s *Server) getUserIDByMobile(c *Call) (any, error) {
	var in struct {
		Mobile string `json:"mobile"`
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if !validMobile(in.Mobile) {
		return nil, apiErr(CodeInvalidMobile, "invalid mobile")
	}
	u, ok := s.dir.UserByMobile(in.Mobile)
	if !ok {
		return nil, apiErr(46004, "user no exist")
	}
	return struct {
		base
		UserID string `json:"userid"`
	}{okBase, u.UserID}, nil
}

func (s *Server) getUserIDByEmail(c *Call) (any, error) {
	var in struct {
		Email     string `json:"email"`
		EmailType int    `json:"email_type"`
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if !validEmail(in.Email) {
		return nil, apiErr(CodeInvalidEmail, "invalid email")
	}
	u, ok := s.dir.UserByEmail(in.Email)
	if !ok {
		return nil, apiErr(46004, "user no exist")
	}
	return struct {
		base
		UserID string `json:"userid"`
	}{okBase, u.UserID}, nil
}
