package emulator

// Change types of change_contact events (API-FACTS §2.2).
const (
	ChangeCreateUser  = "create_user"
	ChangeUpdateUser  = "update_user"
	ChangeDeleteUser  = "delete_user"
	ChangeCreateParty = "create_party"
	ChangeUpdateParty = "update_party"
	ChangeDeleteParty = "delete_party"
	ChangeUpdateTag   = "update_tag"
)

// UserFields is a set of member fields, used to say which fields an update_user changed.
type UserFields uint32

// Member fields that update_user reports only when they changed.
const (
	FieldName           UserFields = 1 << iota
	FieldDepartment                // the department list (Department; sent with IsLeaderInDept)
	FieldIsLeaderInDept            // the leader flags (sent with Department)
	FieldMainDepartment
	FieldPosition
	FieldMobile
	FieldGender
	FieldEmail
	FieldBizMail
	FieldStatus
	FieldAvatar
	FieldAlias
	FieldTelephone
	FieldAddress
	FieldExtAttr
	FieldDirectLeader
	FieldOrder // not evented: order-only changes send nothing
)

// ChangeEvent is one directory change, as a change_contact callback would report it. The
// Directory produces them; the Server turns them into XML (legacy or minimal mode) and
// delivers them when the change was made by the console secret (see Server.Notify).
type ChangeEvent struct {
	ChangeType string
	// Member events.
	UserID    string     // the userid before the change
	NewUserID string     // update_user: set when the userid changed
	User      *User      // create_user/update_user: the member after the change
	Changed   UserFields // update_user: fields that changed
	// Department events.
	Party         *Department // create_party/update_party: the department after the change
	PartyID       int
	NameChanged   bool // update_party
	ParentChanged bool // update_party
	// Tag events.
	TagID      int
	AddUsers   []string
	DelUsers   []string
	AddParties []int
	DelParties []int
}
