package emulator

import (
	"encoding/json"
	"strconv"
	"strings"
)

// User is one member as user/get returns it (JSON names are WeCom's). Values stored in a
// Directory are immutable: every change replaces the *User, so a pointer read under the
// lock stays valid after it is released.
type User struct {
	UserID           string          `json:"userid"`
	Name             string          `json:"name"`
	Alias            string          `json:"alias"`
	Position         string          `json:"position"`
	Mobile           string          `json:"mobile"`
	Email            string          `json:"email"`
	BizMail          string          `json:"biz_mail"`
	Gender           string          `json:"gender"`
	Status           int             `json:"status"`
	Avatar           string          `json:"avatar"`
	Telephone        string          `json:"telephone"`
	Address          string          `json:"address"`
	OpenUserID       string          `json:"open_userid"`
	MainDepartment   int             `json:"main_department"`
	Departments      []int           `json:"department"`
	Orders           []uint32        `json:"order"`
	IsLeaderInDept   []int           `json:"is_leader_in_dept"`
	DirectLeader     []string        `json:"direct_leader"`
	ExtAttr          ExtAttr         `json:"extattr"`
	ExternalPosition string          `json:"external_position,omitempty"`
	ExternalProfile  json.RawMessage `json:"external_profile,omitempty"`
}

// ExtAttr is a member's custom attributes (extattr).
type ExtAttr struct {
	Attrs []ExtAttrItem `json:"attrs"`
}

// ExtAttrItem is one custom attribute: Type 0 text, 1 web, 2 miniprogram.
type ExtAttrItem struct {
	Type        int             `json:"type"`
	Name        string          `json:"name"`
	Text        *ExtText        `json:"text,omitempty"`
	Web         *ExtWeb         `json:"web,omitempty"`
	Miniprogram json.RawMessage `json:"miniprogram,omitempty"`
}

// ExtText is the value of a text attribute.
type ExtText struct {
	Value string `json:"value"`
}

// ExtWeb is the value of a web attribute.
type ExtWeb struct {
	URL   string `json:"url"`
	Title string `json:"title"`
}

// Department is one department. DepartmentLeader is derived from the members whose
// is_leader_in_dept flag is 1 for it, sorted by userid.
type Department struct {
	ID               int      `json:"id"`
	Name             string   `json:"name"`
	NameEn           string   `json:"name_en,omitempty"`
	ParentID         int      `json:"parentid"`
	Order            uint32   `json:"order"`
	DepartmentLeader []string `json:"department_leader"`
}

// Tag is a tag with its member users (userids, sorted) and parties (department ids, sorted).
type Tag struct {
	TagID   int      `json:"tagid"`
	TagName string   `json:"tagname"`
	Users   []string `json:"users"`
	Parties []int    `json:"parties"`
}

// UserInput is the body of user/create and user/update; a nil field was not given. Create
// requires UserID, Name and Department; update requires UserID and changes only the given
// fields. A CSV importer fills it directly.
type UserInput struct {
	UserID           string          `json:"userid"`
	NewUserID        *string         `json:"new_userid"`
	Name             *string         `json:"name"`
	Alias            *string         `json:"alias"`
	Mobile           *string         `json:"mobile"`
	Department       *[]int          `json:"department"`
	Order            *[]uint32       `json:"order"`
	Position         *string         `json:"position"`
	Gender           *FlexString     `json:"gender"`
	Email            *string         `json:"email"`
	BizMail          *string         `json:"biz_mail"`
	IsLeaderInDept   *[]int          `json:"is_leader_in_dept"`
	DirectLeader     *[]string       `json:"direct_leader"`
	Enable           *FlexInt        `json:"enable"`
	AvatarMediaID    *string         `json:"avatar_mediaid"`
	Telephone        *string         `json:"telephone"`
	Address          *string         `json:"address"`
	MainDepartment   *FlexInt        `json:"main_department"`
	ExtAttr          *ExtAttr        `json:"extattr"`
	ExternalPosition *string         `json:"external_position"`
	ExternalProfile  json.RawMessage `json:"external_profile"`
	ToInvite         *bool           `json:"to_invite"`
}

// DepartmentInput is the body of department/create and department/update; nil = not given.
type DepartmentInput struct {
	ID       *FlexInt `json:"id"`
	Name     *string  `json:"name"`
	NameEn   *string  `json:"name_en"`
	ParentID *FlexInt `json:"parentid"`
	Order    *FlexInt `json:"order"`
}

// FlexString decodes a JSON string or number as a string (WeCom accepts gender as "1" or 1).
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
		return err
	}
	*f = FlexString(n.String())
	return nil
}

// FlexInt decodes a JSON number or a numeric string as an int64.
type FlexInt int64

// UnmarshalJSON accepts 1, "1" or null.
func (f *FlexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return err
	}
	*f = FlexInt(n)
	return nil
}

// Int returns the value as an int.
func (f FlexInt) Int() int { return int(f) }

func ptr[T any](v T) *T { return &v }

func lower(s string) string { return strings.ToLower(s) }
