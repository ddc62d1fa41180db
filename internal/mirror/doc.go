// Package mirror keeps the Postgres mirror of a WeCom contact directory (schema wecom)
// and its change log.
//
// Store.ApplyBatch applies callback events of one corp in order, one transaction per
// batch, exactly once in effect (the corp's last applied stream sequence and the ids of
// applied events are stored in the same transaction). Every change that actually alters
// the mirror is appended to wecom.changes with the full before and after rows, and a
// pg_notify in the same transaction wakes the Relay, which publishes the change log to
// the WECOM_CHANGES stream in order (a transactional outbox). Store.Sync merges a complete
// snapshot of a corp (initial sync, reconcile, later exports) with COPY and set-based
// statements. Every writer of a corp's mirror takes the same per-corp advisory lock
// (pg_advisory_xact_lock(hashtextextended('wecom.mirror:'||corp_id, 0))), so
// wecom.changes.seq increases per corp in commit order.
//
// # Rows
//
// Rows in the change log (and in change messages) have these shapes; a null value is a
// field the mirror does not know (it is then listed in unknown_fields):
//
//	user:       {"userid","name","alias","position","mobile","email","biz_mail","gender",
//	             "status","main_department","avatar","telephone","address","open_userid",
//	             "extattr","departments":[{"department_id","sort_order","is_leader"}],
//	             "unknown_fields":[...]}   departments sorted by department_id
//	department: {"id","name","name_en","parent_id","sort_order","unknown_fields":[...]}
//	tag:        {"tag_id","name","users":[userid...],"departments":[id...]}  both sorted
//
// The raw and updated_at columns are not part of these rows. extattr is kept in
// user/get's shape ({"attrs":[{"type","name","text":{"value"}|"web":{"url","title"}}]}).
// raw holds the latest record a lookup or sync returned, merged (jsonb ||) with the data
// of later callbacks; fields the mirror has no column for (direct_leader) live there.
//
// # Applying events
//
//   - create_user stores what the event carried; fields it did not carry are NULL and
//     listed in unknown_fields. Department with IsLeaderInDept (one flag per department,
//     same order) gives the memberships and leader flags. Callbacks never carry a
//     member's per-department order: a new membership gets sort_order 0 and "sort_order"
//     is listed as unknown until a lookup or sync supplies it; a kept membership keeps
//     its order (and its leader flag when IsLeaderInDept is absent).
//   - update_user changes only the fields it carried (event.Opt.Set); NewUserID renames
//     the member in users, user_departments and tag_users in the same transaction (the
//     change row is keyed by the new userid; before shows the old one). A carried
//     Department replaces the memberships.
//   - delete_user removes the member, its memberships and its tag memberships.
//   - create_party / update_party store the carried Name, ParentId (a move) and Order;
//     delete_party removes the department, memberships in it and tag departments naming
//     it (member change rows are logged for the memberships removed).
//   - update_tag applies AddUserItems/DelUserItems/AddPartyItems/DelPartyItems; a tag not
//     seen before gets a row with a NULL name (callbacks never carry it) until a sync.
//   - batch_job_result is recorded in wecom.job_events (Store.JobEvent, Options.OnJobEvent)
//     and reported Applied. Other events (change_external_contact, ...) are Ignored.
//   - Poison, recorded in wecom.dead_letters in the same transaction: an undecodable body,
//     an "unparsed" callback, an unknown change_contact change type, a missing id, a field
//     whose value does not fit its type (applying the rest would silently drop a change),
//     a message of another corp. Replays go through ApplyBatch with StreamSeq 0.
//
// Tag memberships a rename or delete changes are not logged as tag changes (the member's
// change says it); tag changes are logged for update_tag and syncs.
//
// # Lookups and ordering
//
// A post-2022 create_user (no Name), a create_party without Name, and an update of a
// member or department the mirror has never seen carry too little to build a row, so the
// entity is looked up (Lookup) before the transaction: a first pass under the lock finds
// which lookups the batch needs, the transaction is rolled back, the lookups are made
// (LookupConcurrency at a time) and the batch is applied again with their results.
// Lookups return the entity's current state, which may be newer than the event. That is
// safe because events are applied in order over it: the looked-up record replaces the
// carried fields of the event that needed it, and every later event of the batch (or of
// later batches) still applies on top, so a later delete or rename wins and the final
// state is what WeCom holds. A renamed member is looked up by its new userid.
//
// When the lookup says ErrLookupNotPermitted, the mirror stores what the event carried
// and lists every other field in unknown_fields (columns NULL), never inventing values;
// a later event carrying a field, a permitted lookup or a sync fills it in. ErrNotFound
// (deleted or renamed since) is handled the same way: the event's own content is applied
// and the delete_user or rename that follows in the stream settles it. Any other lookup
// error fails the whole ApplyBatch call, which the worker retries.
//
// # Exactly once
//
// Items whose StreamSeq is not above the lane's last applied sequence (wecom.lanes), or
// not above an earlier item of the batch, or whose event id is in wecom.applied_events,
// are Duplicate. Applied and Ignored event ids are recorded in the same transaction as
// their effects (Poison ones are not, so a fixed replay applies). wecom.applied_events is
// pruned by Store.PruneAppliedEvents: ids older than the WECOM_EVENTS max age can no
// longer be redelivered. Re-applying content the mirror already holds (a new event id
// with the same data) changes nothing and writes no change row.
//
// # Talking to Postgres
//
// A batch is two pipelines on one connection (pipeline.go). The first begins the
// transaction, takes the corp's lock, loads what the batch touches and, last, records the
// event ids (INSERT ... ON CONFLICT DO NOTHING RETURNING); results are sent as each
// statement completes, so the batch is applied in memory while Postgres records the ids,
// as if every id were new, and applied again in the rare case one was not. The second
// sends the writes and COMMIT, each statement as soon as it is encoded, so Postgres runs
// one while the next is encoded. Applied events that create many members refresh the
// member tables' statistics (Options.AnalyzeAfter).
//
// # Sync
//
// Store.Sync copies a SyncSource's records into staging tables in chunks (memory bounded),
// without the corp lock, then takes the lock and merges them set-based: inserts, updates,
// deletes, each logged. Entities that events changed after the sync began (per the
// change log) are newer than the snapshot and left alone. Fields a record lists as
// unknown keep the mirror's value.
//
// # Relay
//
// The Relay publishes each corp's change rows in seq order with Nats-Msg-Id
// "<corp_id>:<seq>", then records the last published seq in wecom.relay_cursors. A relay
// that dies between the PubAck and the cursor update re-publishes those rows, which
// WECOM_CHANGES drops as duplicates as long as the restart happens within its duplicate
// window (ChangesDuplicateWindow, 30 minutes); after a longer outage consumers may see a
// row twice and should dedup by seq.
package mirror
