// Package emulator is a faithful, in-memory WeCom (企业微信) contacts server for tests,
// demos and load tests.
//
// It serves the WeCom REST API under /cgi-bin/ with the official request and response
// shapes, error codes and errmsg values (see /work/shared/wecom/API-FACTS.md), keeps the
// directory (users, departments, tags) in memory behind one mutex, and calls back
// encrypted change_contact events to a configured URL with WeCom's retry rules.
//
// Three secrets are configured for the main corp:
//   - the contacts-sync secret (通讯录同步): reads and writes; its writes are NOT called
//     back, as in WeCom ("由通讯录同步助手通过api发起的…不回调给通讯录同步助手");
//   - the console secret: an emulator-only notion; writes made with its token act like
//     an administrator's edits in the admin console and ARE called back;
//   - an app secret: a read-only self-built app; writes answer 48002.
//
// Emulator choices where WeCom's behaviour is not documented are marked "ASSUMPTION" in
// comments. The main ones:
//   - A POST-only endpoint called with GET is handled as if its body were empty, so it
//     answers the endpoint's missing-parameter error (a WeCom probe saw 40003 for
//     user/create over GET). GET endpoints also accept POST (query parameters are read).
//   - Order-only changes of a member or department produce no callback.
//   - Deleting a tag or removing a deleted member/department from tags sends no update_tag.
//   - user/update may change mobile and userid any number of times (WeCom restricts both).
//
// Extending the package: the async import/export jobs live in their own files and call
// registerExtension from an init func; see Extension. A bulk importer works through
// Directory.Update (or UpdateNotify) with the Tx methods, which validate exactly like the
// REST handlers and return *APIError per row:
//
//	Tx.CreateUser / UpdateUser / DeleteUsers / User / UserIDs
//	Tx.CreateDepartment / UpdateDepartment / DeleteDepartment / Department / DepartmentIDs /
//	   DepartmentHasMembers
//	Tx.CreateTag / UpdateTag / DeleteTag / AddTagMembers / DelTagMembers
//
// The events returned are delivered as change_contact callbacks by Server.Notify (skip it
// for contacts-sync-secret jobs, as WeCom does). Server.SendCallback queues any plaintext
// XML (BatchJobResultXML) to the configured URL or to a NewCallbackTarget built from a
// job's callback{url,token,encodingaeskey}; every callback shares one ordered queue.
//
// Admin endpoints (no token): GET /healthz, GET /admin/state, GET /admin/stats,
// GET|POST /admin/faults, POST /admin/tokens/expire[?mode=invalidate],
// POST /admin/state/save, POST /admin/callback/verify.
package emulator
