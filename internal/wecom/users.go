package wecom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// User is a member as user/get and user/list return it (JSON names are WeCom's). Since
// 2022-06-20 newer apps get no avatar, gender, mobile, email, biz_mail, qr_code or address:
// those are then empty.
type User struct {
	UserID           string           `json:"userid"`
	Name             string           `json:"name"`
	Department       []int            `json:"department"`
	Order            []uint32         `json:"order"`
	Position         string           `json:"position"`
	Mobile           string           `json:"mobile"`
	Gender           FlexString       `json:"gender"` // "0" unknown, "1" male, "2" female (a string on the wire)
	Email            string           `json:"email"`
	BizMail          string           `json:"biz_mail"`
	IsLeaderInDept   []int            `json:"is_leader_in_dept"`
	DirectLeader     []string         `json:"direct_leader"`
	Avatar           string           `json:"avatar"`
	ThumbAvatar      string           `json:"thumb_avatar"`
	Telephone        string           `json:"telephone"`
	Alias            string           `json:"alias"`
	Address          string           `json:"address"`
	OpenUserID       string           `json:"open_userid"`
	MainDepartment   int              `json:"main_department"`
	ExtAttr          *ExtAttr         `json:"extattr,omitempty"`
	Status           int              `json:"status"` // 1 active, 2 disabled, 4 not activated, 5 left
	QRCode           string           `json:"qr_code"`
	ExternalPosition string           `json:"external_position"`
	ExternalProfile  *ExternalProfile `json:"external_profile,omitempty"`
	EnglishName      string           `json:"english_name,omitempty"` // older samples
	HideMobile       int              `json:"hide_mobile,omitempty"`  // older samples
}

// ExtAttr is a member's custom attributes.
type ExtAttr struct {
	Attrs []ExtAttrItem `json:"attrs"`
}

// ExtAttrItem is one custom attribute: Type 0 text, 1 web, 2 miniprogram. Value is set
// by the linked-corp APIs.
type ExtAttrItem struct {
	Type        int          `json:"type"`
	Name        string       `json:"name"`
	Value       string       `json:"value,omitempty"`
	Text        *ExtText     `json:"text,omitempty"`
	Web         *ExtWeb      `json:"web,omitempty"`
	Miniprogram *ExtMiniprog `json:"miniprogram,omitempty"`
}

// ExtText is a text attribute's value.
type ExtText struct {
	Value string `json:"value"`
}

// ExtWeb is a web attribute's value.
type ExtWeb struct {
	URL   string `json:"url"`
	Title string `json:"title"`
}

// ExtMiniprog is a miniprogram attribute's value.
type ExtMiniprog struct {
	AppID    string `json:"appid"`
	PagePath string `json:"pagepath"`
	Title    string `json:"title"`
}

// ExternalProfile is a member's external profile (对外资料).
type ExternalProfile struct {
	ExternalCorpName string          `json:"external_corp_name"`
	WechatChannels   *WechatChannels `json:"wechat_channels,omitempty"`
	ExternalAttr     []ExtAttrItem   `json:"external_attr"`
}

// WechatChannels is the video account shown on the external profile.
type WechatChannels struct {
	Nickname string `json:"nickname"`
	Status   int    `json:"status"`
}

// FlexString is a string on the wire that some answers send as a number (gender,
// created_at); it decodes either.
type FlexString string

// UnmarshalJSON accepts "x", 1 or null.
func (f *FlexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = FlexString(s)
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("decoding string or number: %w", err)
	}
	*f = FlexString(n.String())
	return nil
}

// String returns the value.
func (f FlexString) String() string { return string(f) }

// UserCreate is the body of user/create. Zero fields are not sent. UserID, Name,
// Department and one of Mobile or Email are required by WeCom.
type UserCreate struct {
	UserID           string           `json:"userid"`
	Name             string           `json:"name"`
	Alias            string           `json:"alias,omitempty"`
	Mobile           string           `json:"mobile,omitempty"`
	Department       []int            `json:"department,omitempty"`
	Order            []uint32         `json:"order,omitempty"`
	Position         string           `json:"position,omitempty"`
	Gender           string           `json:"gender,omitempty"`
	Email            string           `json:"email,omitempty"`
	BizMail          string           `json:"biz_mail,omitempty"`
	IsLeaderInDept   []int            `json:"is_leader_in_dept,omitempty"`
	DirectLeader     []string         `json:"direct_leader,omitempty"`
	Enable           *int             `json:"enable,omitempty"`
	AvatarMediaID    string           `json:"avatar_mediaid,omitempty"`
	Telephone        string           `json:"telephone,omitempty"`
	Address          string           `json:"address,omitempty"`
	MainDepartment   int              `json:"main_department,omitempty"`
	ExtAttr          *ExtAttr         `json:"extattr,omitempty"`
	ToInvite         *bool            `json:"to_invite,omitempty"`
	ExternalPosition string           `json:"external_position,omitempty"`
	ExternalProfile  *ExternalProfile `json:"external_profile,omitempty"`
	Nickname         string           `json:"nickname,omitempty"`
}

// UserUpdate is the body of user/update: nil fields are not sent (and so not changed);
// a pointer to "" clears a field. NewUserID renames a system-generated userid (once).
type UserUpdate struct {
	UserID           string           `json:"userid"`
	NewUserID        *string          `json:"new_userid,omitempty"`
	Name             *string          `json:"name,omitempty"`
	Alias            *string          `json:"alias,omitempty"`
	Mobile           *string          `json:"mobile,omitempty"`
	Department       *[]int           `json:"department,omitempty"`
	Order            *[]uint32        `json:"order,omitempty"`
	Position         *string          `json:"position,omitempty"`
	Gender           *string          `json:"gender,omitempty"`
	Email            *string          `json:"email,omitempty"`
	BizMail          *string          `json:"biz_mail,omitempty"`
	IsLeaderInDept   *[]int           `json:"is_leader_in_dept,omitempty"`
	DirectLeader     *[]string        `json:"direct_leader,omitempty"`
	Enable           *int             `json:"enable,omitempty"`
	AvatarMediaID    *string          `json:"avatar_mediaid,omitempty"`
	Telephone        *string          `json:"telephone,omitempty"`
	Address          *string          `json:"address,omitempty"`
	MainDepartment   *int             `json:"main_department,omitempty"`
	ExtAttr          *ExtAttr         `json:"extattr,omitempty"`
	ExternalPosition *string          `json:"external_position,omitempty"`
	ExternalProfile  *ExternalProfile `json:"external_profile,omitempty"`
}

// Ptr returns a pointer to v (for UserUpdate and other optional fields).
func Ptr[T any](v T) *T { return &v }

var (
	epUserCreate      = ep("user/create", http.MethodPost, retryResolve)
	epUserGet         = ep("user/get", http.MethodGet, retryIdempotent)
	epUserUpdate      = ep("user/update", http.MethodPost, retryIdempotent)
	epUserRename      = ep("user/update", http.MethodPost, retryResolve)
	epUserDelete      = ep("user/delete", http.MethodGet, retryIdempotent)
	epUserBatchDelete = ep("user/batchdelete", http.MethodPost, retryResolve)
	epUserSimpleList  = ep("user/simplelist", http.MethodGet, retryIdempotent)
	epUserList        = ep("user/list", http.MethodGet, retryIdempotent)
	epUserListID      = ep("user/list_id", http.MethodPost, retryIdempotent)
	epToOpenID        = ep("user/convert_to_openid", http.MethodPost, retryIdempotent)
	epToUserID        = ep("user/convert_to_userid", http.MethodPost, retryIdempotent)
	epAuthSucc        = ep("user/authsucc", http.MethodGet, retryIdempotent)
	epBatchInvite     = ep("batch/invite", http.MethodPost, retryResolve)
	epJoinQRCode      = ep("corp/get_join_qrcode", http.MethodGet, retryIdempotent)
	epActiveStat      = ep("user/get_active_stat", http.MethodPost, retryIdempotent)
	epGetUserID       = ep("user/getuserid", http.MethodPost, retryIdempotent)
	epGetUserIDEmail  = ep("user/get_userid_by_email", http.MethodPost, retryIdempotent)
)

type userAnswer struct {
	status
	User
}

// GetUser returns the member userid (user/get). Errors: ErrNotFound (60111), ErrNoPermission.
func (c *Client) GetUser(ctx context.Context, userid string) (*User, error) {
	var a userAnswer
	if err := c.do(ctx, &call{ep: epUserGet, query: url.Values{"userid": {userid}}}, &a); err != nil {
		return nil, err
	}
	u := a.User
	return &u, nil
}

// CreateUser creates a member (user/create). If the answer is lost after the request was
// sent, the client re-reads the member with user/get: present with the same name means
// created (no second create), present with another name is ErrExists (60102), absent
// means the create is sent again. Errors: ErrExists (60102 userid, 60104
// mobile, 60106 email), *Error for invalid fields.
func (c *Client) CreateUser(ctx context.Context, u UserCreate) error {
	cl := &call{ep: epUserCreate, body: u}
	cl.resolve = func(ctx context.Context) (bool, error) {
		got, err := c.GetUser(ctx, u.UserID)
		found, err := c.exists(got, err)
		if found && got.Name != u.Name {
			return false, existsElsewhere("user/create", 60102, "userid "+u.UserID)
		}
		return found, err
	}
	var a status
	return c.do(ctx, cl, &a)
}

// exists turns a read into the answer of a resolver: found, not found, or an error.
func (c *Client) exists(_ any, err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	}
	return false, err
}

// UpdateUser changes the given fields of a member (user/update). It is retried like a
// read (setting the same values twice changes nothing), except a rename (NewUserID),
// which after a lost answer is resolved by re-reading the new userid. Errors: ErrNotFound,
// ErrExists (mobile/email taken), *Error.
func (c *Client) UpdateUser(ctx context.Context, u UserUpdate) error {
	cl := &call{ep: epUserUpdate, body: u}
	if u.NewUserID != nil && *u.NewUserID != u.UserID {
		cl.ep = epUserRename
		cl.resolve = func(ctx context.Context) (bool, error) { return c.exists(c.GetUser(ctx, *u.NewUserID)) }
	}
	var a status
	return c.do(ctx, cl, &a)
}

// DeleteUser deletes a member (user/delete). A repeated delete after a lost answer that
// finds the member gone counts as success. Errors: ErrNotFound.
func (c *Client) DeleteUser(ctx context.Context, userid string) error {
	var a status
	return c.do(ctx, &call{ep: epUserDelete, query: url.Values{"userid": {userid}}, goneOK: true}, &a)
}

// BatchDeleteUsers deletes up to 200 members (user/batchdelete); one unknown userid fails
// the whole call. After a lost answer, the client re-reads each member and deletes only
// those still present. Errors: ErrNotFound, *Error (40032 list size).
func (c *Client) BatchDeleteUsers(ctx context.Context, userids []string) error {
	body := struct {
		UserIDList []string `json:"useridlist"`
	}{userids}
	cl := &call{ep: epUserBatchDelete, body: &body}
	cl.resolve = func(ctx context.Context) (bool, error) {
		var left []string
		for _, id := range body.UserIDList {
			found, err := c.exists(c.GetUser(ctx, id))
			if err != nil {
				return false, err
			}
			if found {
				left = append(left, id)
			}
		}
		body.UserIDList = left
		return len(left) == 0, nil
	}
	var a status
	return c.do(ctx, cl, &a)
}

// SimpleUser is a user/simplelist entry.
type SimpleUser struct {
	UserID     string `json:"userid"`
	Name       string `json:"name"`
	Department []int  `json:"department"`
	OpenUserID string `json:"open_userid"`
}

type simpleUsersAnswer struct {
	status
	UserList []SimpleUser `json:"userlist"`
}

type usersAnswer struct {
	status
	UserList []User `json:"userlist"`
}

func deptQuery(id int, fetchChild bool) url.Values {
	q := url.Values{"department_id": {strconv.Itoa(id)}}
	if fetchChild {
		q.Set("fetch_child", "1")
	}
	return q
}

// SimpleListUsers returns the members of a department (user/simplelist), of its whole
// subtree with fetchChild. Errors: ErrNotFound (60003), ErrNoPermission (48009 for the
// contacts-sync secret from a new IP: use ListIDs instead).
func (c *Client) SimpleListUsers(ctx context.Context, departmentID int, fetchChild bool) ([]SimpleUser, error) {
	var a simpleUsersAnswer
	if err := c.do(ctx, &call{ep: epUserSimpleList, query: deptQuery(departmentID, fetchChild)}, &a); err != nil {
		return nil, err
	}
	return a.UserList, nil
}

// ListUsers returns the members of a department with details (user/list). Errors as
// SimpleListUsers.
func (c *Client) ListUsers(ctx context.Context, departmentID int, fetchChild bool) ([]User, error) {
	var a usersAnswer
	if err := c.do(ctx, &call{ep: epUserList, query: deptQuery(departmentID, fetchChild)}, &a); err != nil {
		return nil, err
	}
	return a.UserList, nil
}

// DeptUser is one (member, department) pair of user/list_id.
type DeptUser struct {
	UserID     string `json:"userid"`
	Department int    `json:"department"`
}

// ListIDsPage is one page of user/list_id. NextCursor is "" on the last page.
type ListIDsPage struct {
	NextCursor string     `json:"next_cursor"`
	DeptUser   []DeptUser `json:"dept_user"`
}

type listIDsAnswer struct {
	status
	ListIDsPage
}

// MaxListIDsLimit is the largest page user/list_id serves.
const MaxListIDsLimit = 10000

// ListIDsPage returns one page of user/list_id from cursor ("" = the start) with up to
// limit rows (1..10000; 0 = 10000). Only the contacts-sync secret may call it (else 48002).
func (c *Client) ListIDsPage(ctx context.Context, cursor string, limit int) (ListIDsPage, error) {
	if limit <= 0 {
		limit = MaxListIDsLimit
	}
	body := map[string]any{"limit": limit}
	if cursor != "" {
		body["cursor"] = cursor
	}
	var a listIDsAnswer
	if err := c.do(ctx, &call{ep: epUserListID, body: body}, &a); err != nil {
		return ListIDsPage{}, err
	}
	return a.ListIDsPage, nil
}

// ListIDPages iterates over the pages of user/list_id from cursor ("" = the start), each
// with up to limit rows. It stops after the last page, or after yielding an error (the
// page is then zero). The NextCursor of each page lets a caller resume later.
func (c *Client) ListIDPages(ctx context.Context, cursor string, limit int) iter.Seq2[ListIDsPage, error] {
	return func(yield func(ListIDsPage, error) bool) {
		for {
			p, err := c.ListIDsPage(ctx, cursor, limit)
			if err != nil {
				yield(ListIDsPage{}, fmt.Errorf("listing user ids after cursor %q: %w", cursor, err))
				return
			}
			if !yield(p, nil) || p.NextCursor == "" {
				return
			}
			cursor = p.NextCursor
		}
	}
}

// ListIDs iterates over every (member, department) pair of the corp, paging through
// user/list_id with pages of limit rows (0 = 10000). A member in several departments
// appears once per department. Iteration stops after yielding an error.
func (c *Client) ListIDs(ctx context.Context, limit int) iter.Seq2[DeptUser, error] {
	return func(yield func(DeptUser, error) bool) {
		for p, err := range c.ListIDPages(ctx, "", limit) {
			if err != nil {
				yield(DeptUser{}, err)
				return
			}
			for _, du := range p.DeptUser {
				if !yield(du, nil) {
					return
				}
			}
		}
	}
}

// ConvertToOpenID returns the openid of a member (user/convert_to_openid). Errors:
// ErrNotFound, *Error 43004 (member does not use WeChat).
func (c *Client) ConvertToOpenID(ctx context.Context, userid string) (string, error) {
	var a struct {
		status
		OpenID string `json:"openid"`
	}
	if err := c.do(ctx, &call{ep: epToOpenID, body: map[string]string{"userid": userid}}, &a); err != nil {
		return "", err
	}
	return a.OpenID, nil
}

// ConvertToUserID returns the userid of an openid (user/convert_to_userid).
func (c *Client) ConvertToUserID(ctx context.Context, openid string) (string, error) {
	var a struct {
		status
		UserID string `json:"userid"`
	}
	if err := c.do(ctx, &call{ep: epToUserID, body: map[string]string{"openid": openid}}, &a); err != nil {
		return "", err
	}
	return a.UserID, nil
}

// AuthSucc confirms a member's second-factor verification (user/authsucc). Idempotent.
func (c *Client) AuthSucc(ctx context.Context, userid string) error {
	var a status
	return c.do(ctx, &call{ep: epAuthSucc, query: url.Values{"userid": {userid}}}, &a)
}

// Invite lists whom to invite with batch/invite.
type Invite struct {
	User  []string `json:"user,omitempty"`
	Party []int    `json:"party,omitempty"`
	Tag   []int    `json:"tag,omitempty"`
}

// InviteResult lists the invitees WeCom skipped (unknown or outside the app's range).
type InviteResult struct {
	InvalidUser  []string `json:"invaliduser"`
	InvalidParty []int    `json:"invalidparty"`
	InvalidTag   []int    `json:"invalidtag"`
}

// BatchInvite sends invitations (batch/invite). It is not repeated once sent (a second
// call sends the invitations again): a lost answer gives ErrUnknownOutcome. Errors:
// *Error 81013 (all invalid).
func (c *Client) BatchInvite(ctx context.Context, in Invite) (InviteResult, error) {
	var a struct {
		status
		InviteResult
	}
	if err := c.do(ctx, &call{ep: epBatchInvite, body: in}, &a); err != nil {
		return InviteResult{}, err
	}
	return a.InviteResult, nil
}

// JoinQRCode returns the URL of the corp's join QR code (corp/get_join_qrcode); sizeType
// 1..4 is 171/399/741/2052 px (0 = WeCom's default). Valid 7 days.
func (c *Client) JoinQRCode(ctx context.Context, sizeType int) (string, error) {
	q := url.Values{}
	if sizeType != 0 {
		q.Set("size_type", strconv.Itoa(sizeType))
	}
	var a struct {
		status
		JoinQRCode string `json:"join_qrcode"`
	}
	if err := c.do(ctx, &call{ep: epJoinQRCode, query: q}, &a); err != nil {
		return "", err
	}
	return a.JoinQRCode, nil
}

// ActiveStat returns the number of active members on date ("2006-01-02", at most 30 days
// back) (user/get_active_stat).
func (c *Client) ActiveStat(ctx context.Context, date string) (int, error) {
	var a struct {
		status
		ActiveCnt int `json:"active_cnt"`
	}
	if err := c.do(ctx, &call{ep: epActiveStat, body: map[string]string{"date": date}}, &a); err != nil {
		return 0, err
	}
	return a.ActiveCnt, nil
}

// GetUserIDByMobile returns the userid of a mobile number (user/getuserid). Errors:
// ErrNotFound (46004), *Error 60103 (invalid mobile).
func (c *Client) GetUserIDByMobile(ctx context.Context, mobile string) (string, error) {
	var a struct {
		status
		UserID string `json:"userid"`
	}
	if err := c.do(ctx, &call{ep: epGetUserID, body: map[string]string{"mobile": mobile}}, &a); err != nil {
		return "", err
	}
	return a.UserID, nil
}

// GetUserIDByEmail returns the userid of an email (user/get_userid_by_email); emailType 1
// corp mailbox, 2 personal (0 = WeCom's default).
func (c *Client) GetUserIDByEmail(ctx context.Context, email string, emailType int) (string, error) {
	body := map[string]any{"email": email}
	if emailType != 0 {
		body["email_type"] = emailType
	}
	var a struct {
		status
		UserID string `json:"userid"`
	}
	if err := c.do(ctx, &call{ep: epGetUserIDEmail, body: body}, &a); err != nil {
		return "", err
	}
	return a.UserID, nil
}
