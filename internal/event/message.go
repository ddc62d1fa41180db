package event

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Message is the JSON body published to the WECOM_EVENTS stream (DESIGN.md,
// "NATS"). Build one with NewMessage; a consumer unmarshals it with
// encoding/json and reads Data through User, Party, Tag or BatchJob.
type Message struct {
	// ID is the lowercase hex SHA-256 of the decrypted XML; it is also the
	// Nats-Msg-Id, so a callback WeCom retries is stored once.
	ID string `json:"id"`
	// Tenant is the configured tenant name the callback arrived for.
	Tenant string `json:"tenant"`
	// CorpID is the configured corp id (not the wire ToUserName).
	CorpID string `json:"corp_id"`
	// Event is Event.Event, such as "change_contact"; "" when absent.
	Event string `json:"event"`
	// ChangeType is Event.ChangeType; omitted from JSON when "".
	ChangeType string `json:"change_type,omitempty"`
	// CreateTime is the event's CreateTime in unix seconds.
	CreateTime int64 `json:"create_time"`
	// ReceivedAt is when the callback server received the callback, in UTC.
	// It is encoded as RFC 3339 with nanoseconds.
	ReceivedAt time.Time `json:"received_at"`
	// Data is a JSON object of the fields the callback carried, keyed by
	// snake_case element name (see NewMessage).
	Data json.RawMessage `json:"data"`
	// XML is the decrypted XML.
	XML string `json:"xml"`
}

// receivedAtLayout is RFC 3339 with a fixed nine-digit fraction, so every
// message has sub-second precision and round-trips exactly.
const receivedAtLayout = "2006-01-02T15:04:05.000000000Z07:00"

// NewMessage builds the bus message for e, parsed from raw (the decrypted
// XML; its SHA-256 is the message ID), received for tenant and corpID at
// receivedAt (stored in UTC).
//
// Data holds every top-level element except Event, ChangeType and
// CreateTime, which are message fields (a CreateTime that is not an integer
// is kept in data as its raw string). Known fields are typed: for member
// changes user_id, new_user_id, name, position, mobile, email, biz_mail,
// avatar, alias, telephone, address are strings; main_department, gender,
// status are integers; department and is_leader_in_dept are integer arrays;
// direct_leader is a string array; ext_attr is an array of
// {"name","type",("text":{"value"}|"web":{"title","url"})} objects, items of
// other types keeping their child elements. For departments id, parent_id,
// order are integers and name a string. For update_tag tag_id is an integer,
// add_user_items and del_user_items string arrays, add_party_items and
// del_party_items integer arrays. For batch_job_result batch_job is
// {"job_id","job_type","err_code","err_msg"} with err_code an integer.
// Every other element, and every element of an unknown event, is a string,
// or an object of its children when it has any; repeated elements become an
// array. A value that does not fit its type is kept as its raw string. When
// an element is repeated, a known field takes the first occurrence.
//
// NewMessage never fails; a nil e gives a message with empty data.
func NewMessage(e *Event, raw []byte, tenant, corpID string, receivedAt time.Time) *Message {
	sum := sha256.Sum256(raw)
	m := &Message{
		ID:         hex.EncodeToString(sum[:]),
		Tenant:     validUTF8(tenant),
		CorpID:     validUTF8(corpID),
		ReceivedAt: receivedAt.UTC(),
	}
	if e == nil {
		m.XML = string(raw)
		m.Data = json.RawMessage("{}")
		return m
	}
	m.Event, m.ChangeType, m.CreateTime = e.Event, e.ChangeType, e.CreateTime
	// Reuse the Event's copy of the XML when it is the same text, which it is
	// on the callback path; the comparison does not allocate.
	if string(raw) == e.raw {
		m.XML = e.raw
	} else {
		m.XML = string(raw)
	}
	m.Data = e.appendData(make([]byte, 0, len(e.raw)))
	return m
}

// MarshalJSON encodes the message without reflection; Data is copied as is
// and must be a JSON object (it is when built by NewMessage). Unlike
// encoding/json's default it does not escape '<', '>' and '&', which keeps
// the xml field short. It fails only for a ReceivedAt year outside 0..9999.
func (m Message) MarshalJSON() ([]byte, error) {
	if y := m.ReceivedAt.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("encoding message %s: received_at year %d outside 0..9999", m.ID, y)
	}
	return m.AppendJSON(make([]byte, 0, len(m.Data)+len(m.XML)+len(m.XML)/8+256)), nil
}

// AppendJSON appends the message's JSON encoding (as MarshalJSON, without
// the year check) to dst and returns the extended slice, so a caller can
// reuse a buffer.
func (m *Message) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, m.ID)
	dst = append(dst, `,"tenant":`...)
	dst = appendString(dst, m.Tenant)
	dst = append(dst, `,"corp_id":`...)
	dst = appendString(dst, m.CorpID)
	dst = append(dst, `,"event":`...)
	dst = appendString(dst, m.Event)
	if m.ChangeType != "" {
		dst = append(dst, `,"change_type":`...)
		dst = appendString(dst, m.ChangeType)
	}
	dst = append(dst, `,"create_time":`...)
	dst = strconv.AppendInt(dst, m.CreateTime, 10)
	dst = append(dst, `,"received_at":"`...)
	dst = m.ReceivedAt.UTC().AppendFormat(dst, receivedAtLayout)
	dst = append(dst, `","data":`...)
	if len(m.Data) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, m.Data...)
	}
	dst = append(dst, `,"xml":`...)
	dst = appendString(dst, m.XML)
	return append(dst, '}')
}
