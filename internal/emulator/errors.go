package emulator

import "fmt"

// APIError is a WeCom API error: an errcode and its errmsg, answered with HTTP 200 as
// {"errcode":N,"errmsg":"..."}. Directory methods return *APIError for every validation
// failure, so a batch importer can report the per-row errcode.
type APIError struct {
	Code int
	Msg  string
}

// Error returns "wecom errcode N: msg".
func (e *APIError) Error() string { return fmt.Sprintf("wecom errcode %d: %s", e.Code, e.Msg) }

// apiErr builds an *APIError with a formatted errmsg.
func apiErr(code int, format string, a ...any) *APIError {
	return &APIError{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// WeCom error codes used by the emulator (API-FACTS §7.1).
const (
	CodeSystemBusy          = -1
	CodeInvalidSecret       = 40001
	CodeInvalidUserID       = 40003
	CodeInvalidCorpID       = 40013
	CodeInvalidToken        = 40014
	CodeInvalidUserList     = 40031
	CodeInvalidUserListSize = 40032
	CodeInvalidParameter    = 40058
	CodeInvalidDeptList     = 40066
	CodeInvalidTagID        = 40068
	CodeTagAllInvalid       = 40070
	CodeTagNameExists       = 40071
	CodeTagNameLength       = 40072
	CodeMissingToken        = 41001
	CodeMissingCorpID       = 41002
	CodeMissingSecret       = 41004
	CodeMissingUserID       = 41009
	CodeTokenExpired        = 42001
	CodeNotFollowed         = 43004
	CodeFreqLimit           = 45009
	CodeConcurrencyLimit    = 45033
	CodeDataFormat          = 47001
	CodeNoPermission        = 48002
	CodeNewIPForbidden      = 48009
	CodeDeptNameLength      = 60001
	CodeDeptNotFound        = 60003
	CodeParentNotFound      = 60004
	CodeDeptHasMembers      = 60005
	CodeDeptHasChildren     = 60006
	CodeDeleteRoot          = 60007
	CodeDeptExists          = 60008
	CodeDeptNameChars       = 60009
	CodeDeptCycle           = 60010
	CodeUserIDExists        = 60102
	CodeInvalidMobile       = 60103
	CodeMobileExists        = 60104
	CodeInvalidEmail        = 60105
	CodeEmailExists         = 60106
	CodeTooManyDepts        = 60110
	CodeUserNotFound        = 60111
	CodeInvalidName         = 60112
	CodeInvalidDeptID       = 60123
	CodeMobileEmailEmpty    = 60129
	CodeLeaderCountMismatch = 60132
	CodeDeptTooDeep         = 81002
	CodeTagTooManyMembers   = 81003
	CodeTagTooManyInCall    = 81014
	CodeInvalidPosition     = 301012
	CodeSchoolDeptType      = 65007
	CodeSchoolParentType    = 65015
)
