// Package worker is the runtime that keeps the Postgres mirror in step with the
// WECOM_EVENTS stream: ordered apply lanes over durable JetStream pull consumers, the
// initial sync of an empty mirror, and the WeCom-backed Lookup and SyncSource the mirror
// needs.
//
// # Ordering and failover
//
// A Lane is one durable pull consumer (a name and its filter subjects). Events of a corp
// must be applied in stream order, so a lane must never be pulled by two replicas at the
// same time. The consumer uses JetStream's pinned-client priority policy
// (PriorityPolicyPinned with one priority group): the server delivers to exactly one
// pulling client, the pinned one, and pins another waiting client when the pinned one
// has not pulled for PinnedTTL. No coordinator or leader election of our own is needed.
//
// Pinning alone does not keep order across a failover or a retry: a message delivered to
// a replica that died (or one we Nak'ed with a delay) stays outstanding until its ack
// wait or delay ends, while newer messages can be delivered meanwhile. The mirror treats
// an event older than the corp's last applied stream sequence as a duplicate, so applying
// out of order would lose it. A Consumer therefore applies only when it holds every
// outstanding message of its consumer (ConsumerInfo.NumAckPending equals the number it
// holds, counting the last batch, committed, whose acks it sends only after this check):
// until then it keeps what it has, keeps fetching (redeliveries come first) and
// applies the whole held set sorted by stream sequence. While a batch is applied the
// next is fetched; if any message of the applied batch had to be retried, what was
// fetched behind it is given back (Nak) so the gate waits for the retried messages.
// MaxAckPending is twice the batch size, so what can be outstanding is bounded.
//
// # Scaling out across corps
//
// One deployment may serve many corps (WECOM_TENANTS_FILE). Their events are spread
// over P partitions (WORKER_PARTITIONS): a corp's partition is FNV-1a of its corp id
// modulo P (Partition), and partition i is the lane "wecomsync-mirror-p<i>" whose
// consumer filters the subjects of exactly its corps, "wecom.events.<corp>.>" each
// (PartitionLanes). Every replica runs every lane (a Group of Consumers); each lane
// consumer is pinned as above, so one replica applies a partition at a time and the
// partitions spread over the replicas. P bounds the replicas that share the work. P = 1
// is the one whole-stream lane "wecomsync-mirror" of a single-corp install (and of
// earlier versions).
//
// Why filters from the tenant list rather than NATS subject mapping: the mapping
// function partition(P, wildcard) works by rewriting the subject (a stream
// SubjectTransform, or an account mapping on publish), and the stored subject
// "wecom.events.<corp_id>...." is a public contract users consume; a second stream
// sourcing WECOM_EVENTS with a transform would store every event twice and give it other
// stream sequences than the ones the mirror's lane positions count. Every worker knows
// the tenant list, so it can compute the same filters. The cost: with P > 1 an event of
// a corp that is not in the workers' tenant list is consumed by no lane (the receiver
// only publishes its configured tenants, so give both the same list), and a consumer
// lists one filter per corp (fine for thousands of corps).
//
// Balance (see Group): a pinned consumer stays with the first replica that pulled it, so
// on its own the replica that starts first, or the ones that survive a failure, would
// keep every lane. A replica that holds more than its share, ceil(lanes/replicas), hands
// the excess over (it gives back what it holds, unpins the lane with UnpinConsumer and
// stops pulling it for three pinned TTLs), and the server pins a replica waiting on the
// lane. The replica count is read from the pulls waiting on the lanes, so there is no
// coordinator, membership list or lease of our own. A handover is a failover without the
// wait: the gate above keeps the order. Measured in TestGroupBalancesLanes (three
// replicas, eight lanes, pinned TTL 500ms): 3/3/2 within one to five seconds of starting
// together, 4/4 within one to five seconds of one stopping, 3/3/2 again within two to five
// seconds of it coming back. With the default pinned TTL (10s) balancing is judged every
// 20s, so it takes a minute or two.
//
// # Changing the partition count or the tenant list
//
// Stop the workers, change WORKER_PARTITIONS (or the tenant list) everywhere, start them.
// At start EnsureLanes compares each lane's consumer with the lane: one with the same
// corps keeps its place; one whose corps changed (or that is new) is created anew,
// starting at the lowest stream sequence any of its corps still needs (just after the
// corp's lane position in the mirror, or its first event in the stream for a corp
// without one); consumers of lanes no longer configured are deleted. Updating a
// consumer's filters in place would skip the earlier events of a corp that moved in.
// Events a new consumer redelivers at or below a corp's position are duplicates to the
// mirror, so starting early only costs time. A rolling change is safe too, only slower:
// while old and new lanes overlap, a corp's events are applied by two consumers, each
// delivering all of the corp's events in order from at or below its position, and the
// corp's advisory lock and lane position make the second application a duplicate; but
// replicas with different lists recreate each other's consumers until all agree.
//
// # Initial sync
//
// InitialSync fills an empty mirror from the WeCom API before the lanes apply. It notes
// the stream's last sequence before reading WeCom and afterwards raises the corp's lane
// position to it (mirror.Store.AdvanceLane), so the events queued before the sync, whose
// effects the snapshot holds, are not replayed over it.
//
// # Settling
//
// One function, decide, maps an item's outcome or the batch's error to how the message
// is settled: applied, duplicate and ignored items are acked, poison items (already
// dead-lettered by the mirror in the same transaction) are terminated with the reason,
// and a transient batch error or a recovered panic naks the batch with a backoff. A
// committed batch's settlements are sent once the ordering gate of the next batch has
// been checked, while that batch applies; the last ack waits for the server's
// confirmation, and the next check waits for it. A batch with naks is settled at once.
package worker
