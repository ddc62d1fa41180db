// Package event turns the decrypted XML of a WeCom (企业微信) callback into a
// typed Event, names the NATS subject it is published under, and builds the
// JSON bus Message described in DESIGN.md ("NATS").
//
// The callback server calls Parse on the decrypted bytes, Event.Subject for
// the subject and NewMessage for the body; the worker unmarshals a Message and
// reads it through the typed accessors Message.User, Message.Party,
// Message.Tag and Message.BatchJob.
//
// Parsing is done by a small hand-written scanner for the flat XML WeCom
// sends (one <xml> root, leaf elements holding CDATA or plain text, a few
// nested elements such as ExtAttr and BatchJob), because encoding/xml costs
// tens of microseconds per callback. The scanner accepts CDATA and plain
// text, the five predefined entities and numeric character references,
// comments, processing instructions, a DOCTYPE in the prolog, attributes
// (ignored) and any whitespace between elements. A leaf whose content is
// CDATA surrounded only by whitespace takes the CDATA content alone; any other
// leaf takes its whole text. Only input that is not well-formed XML with an
// <xml> root is rejected, with an error wrapping ErrMalformed.
//
// Nothing a callback carries is dropped: an unknown Event or ChangeType is
// parsed like any other, published under its own subject, and every top-level
// element appears in the message data under its snake_case name. Presence is
// kept exactly: a field is in the data if and only if the callback carried it,
// so an update_user that changed only the name carries only user_id and name.
//
// The callback path costs about 2µs for Parse and 4µs for NewMessage plus
// Message.MarshalJSON on the official create_user sample (see the
// benchmarks). Call m.MarshalJSON or m.AppendJSON directly: json.Marshal(m)
// gives the same JSON but re-scans it, which costs about 10µs more.
//
// Values whose text does not fit their type (for example <Gender>x</Gender>,
// or a department list with a non-numeric entry) are kept in the data as the
// raw JSON string instead of a number, so the message stays publishable; the
// typed accessors report them in the Invalid map of the returned struct.
package event

// Event names (the <Event> element).
const (
	// EventChangeContact is the contact-change callback (通讯录回调通知).
	EventChangeContact = "change_contact"
	// EventBatchJobResult is the completion of an async import or export job.
	EventBatchJobResult = "batch_job_result"
)

// Change types (the <ChangeType> element of a change_contact event).
const (
	// ChangeCreateUser reports a new member.
	ChangeCreateUser = "create_user"
	// ChangeUpdateUser reports a changed member; it carries only changed fields.
	ChangeUpdateUser = "update_user"
	// ChangeDeleteUser reports a deleted member; it carries only UserID.
	ChangeDeleteUser = "delete_user"
	// ChangeCreateParty reports a new department.
	ChangeCreateParty = "create_party"
	// ChangeUpdateParty reports a changed department; it carries only changed fields.
	ChangeUpdateParty = "update_party"
	// ChangeDeleteParty reports a deleted department; it carries only Id.
	ChangeDeleteParty = "delete_party"
	// ChangeUpdateTag reports changed tag members.
	ChangeUpdateTag = "update_tag"
)

// Job types (BatchJob/JobType of a batch_job_result event).
const (
	// JobSyncUser is an incremental member import (batch/syncuser).
	JobSyncUser = "sync_user"
	// JobReplaceUser is a full member import (batch/replaceuser).
	JobReplaceUser = "replace_user"
	// JobInviteUser is a member invitation job.
	JobInviteUser = "invite_user"
	// JobReplaceParty is a full department import (batch/replaceparty).
	JobReplaceParty = "replace_party"
	// JobExportUser is a detailed member export (export/user).
	JobExportUser = "export_user"
	// JobExportSimpleUser is a simple member export (export/simple_user).
	JobExportSimpleUser = "export_simple_user"
	// JobExportDepartment is a department export (export/department).
	JobExportDepartment = "export_department"
	// JobExportTag is a tag-member export as named by doc 96298.
	JobExportTag = "export_tag"
	// JobExportTagUser is a tag-member export as named by doc 94956.
	JobExportTagUser = "export_taguser"
)
