// Package wecom is the WeCom (企业微信) REST client every worker path uses: tokens shared
// per (corp id, secret) across processes, typed calls for the contacts APIs (members,
// departments, tags, media upload, import and export jobs with block download, linked
// corps, school departments), WeCom errcodes as *Error with errors.Is classes, retries
// with jittered backoff, 45009 block windows, a per-corp-per-API token bucket, bounded
// answers and Prometheus metrics. No token or secret ever appears in an error or a log
// line.
//
// A worker builds one Client per (corp, secret) with a PGTokenStore, and shares one
// Limits between the clients of a process:
//
//	c, err := wecom.New(wecom.Config{CorpID: id, Secret: secret, Store: wecom.NewPGTokenStore(pool),
//		Limits: limits, Logger: log, Registerer: reg})
//	for du, err := range c.ListIDs(ctx, 0) { ... }
//
// # Writes whose answer is lost
//
// A write sent without a usable answer (timeout, broken connection, HTTP 5xx, -1) may or
// may not have taken effect. The client never repeats such a write blindly:
//
//	repeated (same effect twice is harmless): UpdateUser (no rename), UpdateDepartment,
//	  UpdateTag, AddTagUsers, DelTagUsers, AuthSucc, UploadMedia, SubmitExport,
//	  UpdateSchoolDepartment (no renumbering), GraduateSchoolClass, SetSchoolUpgradeInfo
//	repeated, and "not found" on the repeat means the first one did it: DeleteUser,
//	  DeleteDepartment, DeleteTag, DeleteSchoolDepartment
//	re-read first, repeated only if the re-read shows no effect: CreateUser (user/get),
//	  UpdateUser with NewUserID (user/get of the new id), BatchDeleteUsers (user/get of
//	  each; only the remaining ones are deleted), CreateDepartment with an ID
//	  (department/get), CreateTag (tag/list, names are unique), CreateSchoolDepartment
//	  with an ID and UpdateSchoolDepartment with NewID (school/department/list)
//	never repeated, ErrUnknownOutcome: CreateDepartment and CreateSchoolDepartment
//	  without an ID, BatchInvite, SyncUsers, ReplaceUsers, ReplaceParties
//
// 45009 and 45033 are refused before execution, so every call, writes included, is
// repeated after them. See retry.go for the full rules.
package wecom
