package event

// SubjectPrefix starts every subject this package names; the WECOM_EVENTS
// stream binds SubjectPrefix + ">".
const SubjectPrefix = "wecom.events."

// maxToken bounds a subject token taken from the wire: NATS limits the whole
// control line (4 KiB by default), and a subject that cannot be published
// would make WeCom retry the callback forever.
const maxToken = 64

// Subject returns the NATS subject the event is published under:
// wecom.events.<corp_id>.change_contact.<change_type> for contact changes,
// wecom.events.<corp_id>.batch_job_result for job results, and
// wecom.events.<corp_id>.<event> for anything else. Every token is passed
// through Token, so the result is always a valid literal subject. A nil
// Event gives wecom.events.<corp_id>.unknown.
func (e *Event) Subject(corpID string) string {
	if e == nil {
		return subject(corpID, "", "")
	}
	return subject(corpID, e.Event, e.ChangeType)
}

// Subject returns the subject the message is (or was) published under; it
// equals Event.Subject(m.CorpID) for the event the message was built from.
func (m *Message) Subject() string {
	return subject(m.CorpID, m.Event, m.ChangeType)
}

func subject(corpID, event, changeType string) string {
	corp := Token(corpID)
	switch event {
	case EventChangeContact:
		return SubjectPrefix + corp + "." + EventChangeContact + "." + Token(changeType)
	case EventBatchJobResult:
		return SubjectPrefix + corp + "." + EventBatchJobResult
	}
	return SubjectPrefix + corp + "." + Token(event)
}

// Token returns s as a single valid NATS subject token: every byte other
// than ASCII letters, digits, '_' and '-' (so '.', '*', '>', whitespace,
// control and non-ASCII bytes) becomes '_', the result is cut to 64 bytes,
// and "" becomes "unknown". It does not allocate when s is already valid.
func Token(s string) string {
	if s == "" {
		return "unknown"
	}
	if len(s) > maxToken {
		s = s[:maxToken]
	}
	i := 0
	for i < len(s) && tokenByte[s[i]] {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if !tokenByte[b[i]] {
			b[i] = '_'
		}
	}
	return string(b)
}

var tokenByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	t['_'], t['-'] = true, true
	return t
}()
