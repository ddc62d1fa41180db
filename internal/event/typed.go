package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ErrWrongKind is wrapped by a typed accessor called on a message of another
// kind, such as Message.User on a create_party message.
var ErrWrongKind = errors.New("message is of another kind")

// ErrInvalidData is wrapped by a typed accessor when the message's data is
// not a JSON object, or lacks a valid required field (user_id, id, tag_id,
// batch_job).
var ErrInvalidData = errors.New("invalid message data")

// Opt is a field a callback may or may not carry: Set is false when the
// element was absent, which is not the same as present and empty.
type Opt[T any] struct {
	// Value is the carried value; the zero value when Set is false.
	Value T
	// Set reports whether the callback carried the field.
	Set bool
}

// Some returns an Opt carrying v.
func Some[T any](v T) Opt[T] { return Opt[T]{Value: v, Set: true} }

// Get returns the value and whether the callback carried it.
func (o Opt[T]) Get() (T, bool) { return o.Value, o.Set }

// UserChange is a create_user, update_user or delete_user event. UserID is
// always set; every other field is set only when the callback carried it
// (update_user carries only changed fields, delete_user only UserID, and
// post-2022 callbacks only UserID, Department and NewUserID).
//
// The typed structs are views for Go consumers, not a wire format: the
// message's data is the contract other consumers read.
type UserChange struct {
	// UserID is the member's userid (before the change, for update_user).
	UserID string
	// NewUserID is the member's new userid when update_user changed it.
	NewUserID Opt[string]
	// Name and the fields below mirror the callback elements of the same
	// name (see NewMessage for their data keys).
	Name Opt[string]
	// Department holds the ids of the member's departments visible to the app.
	Department     Opt[[]int64]
	MainDepartment Opt[int64]
	// IsLeaderInDept holds 0 or 1 per Department entry, in the same order.
	IsLeaderInDept Opt[[]int]
	DirectLeader   Opt[[]string]
	Position       Opt[string]
	Mobile         Opt[string]
	// Gender is 0 undefined, 1 male, 2 female.
	Gender  Opt[int]
	Email   Opt[string]
	BizMail Opt[string]
	// Status is 1 active, 2 disabled, 4 not activated, 5 left the corp.
	Status    Opt[int]
	Avatar    Opt[string]
	Alias     Opt[string]
	Telephone Opt[string]
	Address   Opt[string]
	ExtAttr   Opt[[]ExtAttr]
	// Extra holds carried elements this type does not model, by data key,
	// as decoded from JSON (string, map[string]any or []any); nil if none.
	Extra map[string]any
	// Invalid holds carried fields whose text did not fit their type
	// (such as gender "x"), by data key, with their raw text; nil if none.
	// Such a field is left unset.
	Invalid map[string]string
}

// ExtAttr is one custom member attribute (ExtAttr/Item).
type ExtAttr struct {
	// Name is the attribute name.
	Name string
	// Type is 0 for text, 1 for web; other types are kept too.
	Type int
	// Text is the value of a text attribute, nil when not carried.
	Text *ExtAttrText
	// Web is the value of a web attribute, nil when not carried.
	Web *ExtAttrWeb
	// Extra holds the item's other elements by data key, such as those of
	// types this package does not model, or a type that is not an integer;
	// nil if none.
	Extra map[string]any
}

// ExtAttrText is the value of a text attribute.
type ExtAttrText struct {
	Value string
}

// ExtAttrWeb is the value of a web attribute.
type ExtAttrWeb struct {
	Title string
	URL   string
}

// PartyChange is a create_party, update_party or delete_party event. ID is
// always set; update_party carries only changed fields, delete_party only Id.
type PartyChange struct {
	// ID is the department id.
	ID       int64
	Name     Opt[string]
	ParentID Opt[int64]
	Order    Opt[int64]
	// Extra and Invalid are as in UserChange.
	Extra   map[string]any
	Invalid map[string]string
}

// TagChange is an update_tag event: members added to or removed from a tag.
type TagChange struct {
	// TagID is the tag id.
	TagID         int64
	AddUserItems  Opt[[]string]
	DelUserItems  Opt[[]string]
	AddPartyItems Opt[[]int64]
	DelPartyItems Opt[[]int64]
	// Extra and Invalid are as in UserChange.
	Extra   map[string]any
	Invalid map[string]string
}

// BatchJob is a batch_job_result event: an import or export job finished.
type BatchJob struct {
	// JobID is the job id returned when the job was submitted.
	JobID string
	// JobType is one of the Job* constants (unknown types are kept).
	JobType string
	// ErrCode and ErrMsg are the job-level result; 0 is success.
	ErrCode int
	ErrMsg  string
	// Extra holds other elements of the event and of BatchJob (the latter
	// under "batch_job.<key>"); Invalid is as in UserChange, keyed likewise.
	Extra   map[string]any
	Invalid map[string]string
}

// User returns the member change the message carries. It returns an error
// wrapping ErrWrongKind for a message that is not create_user, update_user
// or delete_user, and ErrInvalidData when data is not an object or user_id
// is missing, empty or not a string.
func (m *Message) User() (*UserChange, error) {
	r, err := m.reader("member", ChangeCreateUser, ChangeUpdateUser, ChangeDeleteUser)
	if err != nil {
		return nil, err
	}
	u := &UserChange{}
	for k, v := range r.data {
		switch k {
		case "user_id":
			s, ok := v.(string)
			if !ok {
				r.bad(k, v)
			}
			u.UserID = s
		case "new_user_id":
			readString(r, k, v, &u.NewUserID)
		case "name":
			readString(r, k, v, &u.Name)
		case "department":
			readIntList(r, k, v, &u.Department)
		case "main_department":
			readInt(r, k, v, &u.MainDepartment)
		case "is_leader_in_dept":
			readIntList(r, k, v, &u.IsLeaderInDept)
		case "direct_leader":
			readStringList(r, k, v, &u.DirectLeader)
		case "position":
			readString(r, k, v, &u.Position)
		case "mobile":
			readString(r, k, v, &u.Mobile)
		case "gender":
			readInt(r, k, v, &u.Gender)
		case "email":
			readString(r, k, v, &u.Email)
		case "biz_mail":
			readString(r, k, v, &u.BizMail)
		case "status":
			readInt(r, k, v, &u.Status)
		case "avatar":
			readString(r, k, v, &u.Avatar)
		case "alias":
			readString(r, k, v, &u.Alias)
		case "telephone":
			readString(r, k, v, &u.Telephone)
		case "address":
			readString(r, k, v, &u.Address)
		case "ext_attr":
			readExtAttrs(r, k, v, &u.ExtAttr)
		default:
			r.other(k, v)
		}
	}
	u.Extra, u.Invalid = r.extra, r.invalid
	if _, bad := u.Invalid["user_id"]; bad || u.UserID == "" {
		return nil, m.missing("user_id")
	}
	return u, nil
}

// Party returns the department change the message carries. It returns an
// error wrapping ErrWrongKind for a message that is not create_party,
// update_party or delete_party, and ErrInvalidData when data is not an
// object or id is missing or not an integer.
func (m *Message) Party() (*PartyChange, error) {
	r, err := m.reader("department", ChangeCreateParty, ChangeUpdateParty, ChangeDeleteParty)
	if err != nil {
		return nil, err
	}
	p := &PartyChange{}
	var id Opt[int64]
	for k, v := range r.data {
		switch k {
		case "id":
			readInt(r, k, v, &id)
		case "name":
			readString(r, k, v, &p.Name)
		case "parent_id":
			readInt(r, k, v, &p.ParentID)
		case "order":
			readInt(r, k, v, &p.Order)
		default:
			r.other(k, v)
		}
	}
	p.Extra, p.Invalid = r.extra, r.invalid
	if !id.Set {
		return nil, m.missing("id")
	}
	p.ID = id.Value
	return p, nil
}

// Tag returns the tag change the message carries. It returns an error
// wrapping ErrWrongKind for a message that is not update_tag, and
// ErrInvalidData when data is not an object or tag_id is missing or not an
// integer.
func (m *Message) Tag() (*TagChange, error) {
	r, err := m.reader("tag", ChangeUpdateTag)
	if err != nil {
		return nil, err
	}
	t := &TagChange{}
	var id Opt[int64]
	for k, v := range r.data {
		switch k {
		case "tag_id":
			readInt(r, k, v, &id)
		case "add_user_items":
			readStringList(r, k, v, &t.AddUserItems)
		case "del_user_items":
			readStringList(r, k, v, &t.DelUserItems)
		case "add_party_items":
			readIntList(r, k, v, &t.AddPartyItems)
		case "del_party_items":
			readIntList(r, k, v, &t.DelPartyItems)
		default:
			r.other(k, v)
		}
	}
	t.Extra, t.Invalid = r.extra, r.invalid
	if !id.Set {
		return nil, m.missing("tag_id")
	}
	t.TagID = id.Value
	return t, nil
}

// BatchJob returns the job result the message carries. It returns an error
// wrapping ErrWrongKind for a message that is not batch_job_result, and
// ErrInvalidData when data is not an object or batch_job is missing or not
// an object. Missing members of batch_job are left zero.
func (m *Message) BatchJob() (*BatchJob, error) {
	if m.Event != EventBatchJobResult {
		return nil, fmt.Errorf("reading job result from message %s (%s): %w", m.ID, m.kind(), ErrWrongKind)
	}
	r, err := m.decode()
	if err != nil {
		return nil, err
	}
	j := &BatchJob{}
	var job map[string]any
	for k, v := range r.data {
		if k != "batch_job" {
			r.other(k, v)
			continue
		}
		if job, _ = v.(map[string]any); job == nil {
			r.bad(k, v)
		}
	}
	for k, v := range job {
		key := "batch_job." + k
		switch k {
		case "job_id":
			var o Opt[string]
			readString(r, key, v, &o)
			j.JobID = o.Value
		case "job_type":
			var o Opt[string]
			readString(r, key, v, &o)
			j.JobType = o.Value
		case "err_code":
			var o Opt[int]
			readInt(r, key, v, &o)
			j.ErrCode = o.Value
		case "err_msg":
			var o Opt[string]
			readString(r, key, v, &o)
			j.ErrMsg = o.Value
		default:
			r.other(key, v)
		}
	}
	j.Extra, j.Invalid = r.extra, r.invalid
	if job == nil {
		return nil, m.missing("batch_job")
	}
	return j, nil
}

func (m *Message) kind() string {
	if m.ChangeType == "" {
		return m.Event
	}
	return m.Event + "/" + m.ChangeType
}

func (m *Message) missing(key string) error {
	return fmt.Errorf("reading message %s (%s): %s missing or invalid: %w", m.ID, m.kind(), key, ErrInvalidData)
}

// reader checks the message kind and decodes its data.
func (m *Message) reader(what string, changeTypes ...string) (*reader, error) {
	ok := false
	if m.Event == EventChangeContact {
		for _, ct := range changeTypes {
			ok = ok || m.ChangeType == ct
		}
	}
	if !ok {
		return nil, fmt.Errorf("reading %s change from message %s (%s): %w", what, m.ID, m.kind(), ErrWrongKind)
	}
	return m.decode()
}

func (m *Message) decode() (*reader, error) {
	r := &reader{}
	var err error
	// Numbers stay json.Number: integers exact, and their text as sent.
	if r.data, err = decodeData(m.Data); err != nil {
		return nil, fmt.Errorf("decoding data of message %s: %w: %w", m.ID, ErrInvalidData, err)
	}
	return r, nil
}

// reader collects a decoded data object's extra and invalid fields.
type reader struct {
	data    map[string]any
	extra   map[string]any
	invalid map[string]string
}

// commonKeys are data keys every event has; they are not reported as Extra.
var commonKeys = map[string]bool{"to_user_name": true, "from_user_name": true, "msg_type": true, "create_time": true}

func (r *reader) other(k string, v any) {
	if commonKeys[k] {
		return
	}
	if r.extra == nil {
		r.extra = map[string]any{}
	}
	r.extra[k] = v
}

func (r *reader) bad(k string, v any) {
	if r.invalid == nil {
		r.invalid = map[string]string{}
	}
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	r.invalid[k] = s
}

func readString(r *reader, k string, v any, dst *Opt[string]) {
	s, ok := v.(string)
	if !ok {
		r.bad(k, v)
		return
	}
	*dst = Some(s)
}

func toInt[T int | int64](v any) (T, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || int64(T(i)) != i {
		return 0, false
	}
	return T(i), true
}

func readInt[T int | int64](r *reader, k string, v any, dst *Opt[T]) {
	i, ok := toInt[T](v)
	if !ok {
		r.bad(k, v)
		return
	}
	*dst = Some(i)
}

func readIntList[T int | int64](r *reader, k string, v any, dst *Opt[[]T]) {
	items, ok := v.([]any)
	if !ok {
		r.bad(k, v)
		return
	}
	out := make([]T, 0, len(items))
	for _, it := range items {
		i, ok := toInt[T](it)
		if !ok {
			r.bad(k, v)
			return
		}
		out = append(out, i)
	}
	*dst = Some(out)
}

func readStringList(r *reader, k string, v any, dst *Opt[[]string]) {
	items, ok := v.([]any)
	if !ok {
		r.bad(k, v)
		return
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			r.bad(k, v)
			return
		}
		out = append(out, s)
	}
	*dst = Some(out)
}

func readExtAttrs(r *reader, k string, v any, dst *Opt[[]ExtAttr]) {
	items, ok := v.([]any)
	if !ok {
		r.bad(k, v)
		return
	}
	out := make([]ExtAttr, 0, len(items))
	for _, it := range items {
		obj, ok := it.(map[string]any)
		if !ok {
			r.bad(k, v)
			return
		}
		out = append(out, extAttr(obj))
	}
	*dst = Some(out)
}

func extAttr(obj map[string]any) ExtAttr {
	var a ExtAttr
	other := func(k string, v any) {
		if a.Extra == nil {
			a.Extra = map[string]any{}
		}
		a.Extra[k] = v
	}
	for k, v := range obj {
		switch k {
		case "name":
			s, ok := v.(string)
			if !ok {
				other(k, v)
			}
			a.Name = s
		case "type":
			t, ok := toInt[int](v)
			if !ok {
				other(k, v)
			}
			a.Type = t
		case "text":
			o, ok := v.(map[string]any)
			t := &ExtAttrText{}
			for tk, tv := range o {
				s, isString := tv.(string)
				if tk != "value" || !isString {
					ok = false
				}
				t.Value = s
			}
			if !ok {
				other(k, v)
				continue
			}
			a.Text = t
		case "web":
			// Title or Url may be missing; anything else keeps the raw value.
			o, ok := v.(map[string]any)
			w := &ExtAttrWeb{}
			for wk, wv := range o {
				s, isString := wv.(string)
				switch {
				case wk == "title" && isString:
					w.Title = s
				case wk == "url" && isString:
					w.URL = s
				default:
					ok = false
				}
			}
			if !ok {
				other(k, v)
				continue
			}
			a.Web = w
		default:
			other(k, v)
		}
	}
	return a
}
