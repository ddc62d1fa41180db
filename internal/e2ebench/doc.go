// Package e2ebench holds the whole-system benchmark (`make bench-e2e`): console edits on
// the WeCom emulator travel as encrypted callbacks through the callback receiver into the
// WECOM_EVENTS JetStream stream, and the worker applies them to the Postgres mirror. It
// measures sustained events/s and the latency from the edit to the committed mirror row,
// and puts them beside the callback-only and apply-only baselines measured in the same run.
//
// The package has no non-test code; everything is in the _test.go files. Run it with
//
//	go test -run='^$' -bench=E2E -benchtime=1x -timeout=15m ./internal/e2ebench
//
// # What runs
//
// Everything runs in the benchmark process, wired as the binaries wire it:
//   - E2EBENCH_CORPS (default 8) emulator servers, one per corp, each on its own loopback
//     listener with 1,000 seeded members and its callback URL set to the receiver. The
//     emulator delivers a corp's callbacks strictly one at a time (one ordered queue per
//     corp, as WeCom does), so one corp is capped by one callback round trip (emulator
//     encrypt → HTTP → verify, decrypt, parse → JetStream PubAck): about 3,000 to 5,000
//     callbacks/s on the 2-core machine, depending on what else runs. Several corps
//     (tenants) keep that queue from being what limits the flat-out rate, and are what a
//     load of thousands of events/s means in practice (one WeCom corp's callbacks cross
//     the internet one at a time). Their rate and concurrency limits
//     are off: the load is the emulated admin console, not API calls.
//   - the callback receiver (internal/callback.Handler, every corp a tenant at
//     /callback/{tenant}) on a net/http server with cmd/callback's timeouts and its own
//     NATS connection;
//   - an in-process nats-server with JetStream file storage in a temp dir (the server's
//     default sync policy, as a production server runs);
//   - the worker as `worker run` builds it: one NATS connection, the corps spread over
//     8 partition lanes (worker.PartitionLanes and EnsureLanes, run as a worker.Group:
//     cmd/worker's WORKER_PARTITIONS default with several tenants; 1 with one corp), the
//     initial sync of every corp from the emulator through internal/wecom, the lanes
//     applying through a mirror.Store (worker.DefaultOptions), and the mirror.Relay
//     publishing the change log to WECOM_CHANGES, over a pgxpool of a fresh database with
//     pgxpool's default size (max(4, CPUs)), as DATABASE_URL without pool_max_conns gives;
//   - Postgres from internal/testutil/pgtest (TEST_DATABASE_URL, or a throwaway cluster
//     with default settings: fsync and synchronous_commit on).
//
// In-process rather than separate binaries so that one CPU profile
// (go test -cpuprofile) shows where the whole system spends its time; the components
// still talk only over loopback TCP (HTTP, NATS, Postgres), as they do in production.
// Postgres is a separate process either way. On the project's 2-core machine every part
// competes for the same two cores, so the flat-out figure is the whole system's CPU
// budget, not one component's.
//
// # Load and measurement
//
// Every edit is a console-token REST call over HTTP: user/update of a seeded member's
// position (four in five) or user/create of a new member (one in five), spread round
// robin over the corps. Each edit writes a unique position ("e2e-<n>"), so the mirror's
// change row names the edit that caused it.
//
// An edit is seen when its change row is visible: a detector holds its own connection
// LISTENing on the mirror's NOTIFY channel (mirror.NotifyChannel; the apply transaction
// calls pg_notify, delivered at commit) and, on each notification, reads the corp's new
// wecom.changes rows (seq above its cursor). The detection time is taken after that read
// returns, so it is an upper bound of the commit time (by one local query, well under a
// millisecond). changes.at is not used: it is now() of the transaction, i.e. its start,
// before the batch was even written. WECOM_CHANGES is not used either: the relay publishes
// after the commit, which would add its delay.
//
// The paced runs (100/s and 1,000/s) are open loop: edit i has a scheduled time
// start+i/rate, is sent at that time from its own goroutine, and its latency counts from
// the schedule, so a stall anywhere (the load generator included) shows. The flat-out run
// is closed loop: 64 editors send as fast as they can while at most E2EBENCH_WINDOW
// (default 2,000) edits are unseen, so the queues stay bounded and the latency is that of
// a saturated system (Little's law: window / throughput); its latency counts from when
// the edit's HTTP request was sent. Throughput is edits / (last seen − first sent).
//
// # Baselines
//
// Measured in the same run, before the system starts, each on its own fresh broker (and
// database):
//   - callback_only: internal/callback's BenchmarkEndToEnd: distinct signed callbacks
//     POSTed by 64 concurrent senders to the receiver into file-backed JetStream;
//   - apply_only: internal/worker's BenchmarkLaneThroughput (batch=500): its event mix
//     (creates, and position/mobile updates of earlier members) published to
//     WECOM_EVENTS first, then drained by a worker.Consumer into a mirror.Store.
//
// The ratios reported by the flat-out run are its events/s over each baseline's rate.
//
// # Reading the figures
//
// Besides the reported metrics, the benchmark prints a table per run: the worker's
// ApplyBatch calls (one transaction per corp per batch), events per call, time per call
// and the share of the run spent in them; the CPUs the machine, this process and the
// mirror database's Postgres backends used; the latency split at the broker (a plain NATS
// subscriber on the events' subjects timestamps each event as the broker takes it): edit
// → broker (emulator, callback round trip, receiver) and broker → mirror (JetStream,
// worker, Postgres); and the mean backlog in the emulators' callback queues and in
// WECOM_EVENTS. On a shared machine, "machine" well above "process" + "postgres" means
// other work competed for the CPUs during the run.
//
// Goroutines carry a pprof label component=emulator|callback|nats-server|worker|harness,
// so a profile splits by component:
//
//	go test -run='^$' -bench='E2E/flat' -benchtime=1x -cpuprofile=cpu.out ./internal/e2ebench
//	go tool pprof -tags internal/e2ebench.test cpu.out   # or -tagfocus=component=worker
//
// Variables for experiments: E2EBENCH_PARTITIONS, E2EBENCH_MAX_WAIT and E2EBENCH_BATCH
// are WORKER_PARTITIONS, WORKER_MAX_WAIT and WORKER_BATCH_SIZE; E2EBENCH_POOL_MAX_CONNS
// is DATABASE_URL's pool_max_conns; E2EBENCH_CORPS the number of corps.
package e2ebench
