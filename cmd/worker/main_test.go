package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/mirror"
)

// editEveryKind makes one console edit of every kind the callbacks carry: members
// created, renamed, moved (with leader flags), given a new userid and deleted;
// departments created, renamed, moved and deleted; tag members added and removed.
func editEveryKind(t *testing.T, w *world) {
	t.Helper()
	w.must(t, "department/create", map[string]any{"name": "E2E研发", "parentid": 1, "id": 9001})
	w.must(t, "department/create", map[string]any{"name": "E2E测试", "parentid": 9001, "id": 9002})
	w.must(t, "department/create", map[string]any{"name": "E2E临时", "parentid": 1, "id": 9003})
	w.must(t, "user/create", map[string]any{"userid": "e2e_zhang", "name": "张三", "department": []int{9001},
		"email": "zhang@e2e.example", "mobile": "13900000001", "position": "工程师", "gender": "1"})
	w.must(t, "user/create", map[string]any{"userid": "e2e_li", "name": "李四", "department": []int{9001, 9002},
		"is_leader_in_dept": []int{0, 1}, "email": "li@e2e.example"})
	w.must(t, "user/create", map[string]any{"userid": "e2e_wang", "name": "王五", "department": []int{9003}, "email": "wang@e2e.example"})
	w.must(t, "user/update", map[string]any{"userid": "e2e_zhang", "name": "张三丰", "position": "架构师", "alias": "sanfeng"})
	w.must(t, "user/update", map[string]any{"userid": "e2e_zhang", "department": []int{9002, 1}, "is_leader_in_dept": []int{1, 0}, "main_department": 9002})
	w.must(t, "user/update", map[string]any{"userid": "e2e_li", "new_userid": "e2e_lisi"})
	w.must(t, "department/update", map[string]any{"id": 9002, "name": "E2E质量"})
	w.must(t, "department/update", map[string]any{"id": 9002, "parentid": 1})
	w.must(t, "user/delete?userid=e2e_wang", nil)
	w.must(t, "department/delete?id=9003", nil)
	var tag struct {
		TagID int `json:"tagid"`
	}
	require.Zero(t, w.call(t, "tag/create", map[string]any{"tagname": "E2E标签", "tagid": 901}, &tag))
	w.must(t, "tag/addtagusers", map[string]any{"tagid": 901, "userlist": []string{"e2e_zhang", "e2e_lisi"}, "partylist": []int{9001}})
	w.must(t, "tag/deltagusers", map[string]any{"tagid": 901, "userlist": []string{"e2e_lisi"}})
}

func TestRunEndToEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{seedUsers: 30})
	_, err := w.cmd(t, nil, "migrate", "up")
	require.NoError(t, err)
	p := w.startWorker(t, nil)

	// The initial sync filled the empty mirror before the worker said it was ready.
	w.requireConverged(t)
	require.Equal(t, http.StatusOK, getStatus(t, p.admin+"/readyz"))
	require.Equal(t, http.StatusOK, getStatus(t, p.admin+"/healthz"))

	editEveryKind(t, w)
	w.waitDrained(t)
	w.requireConverged(t)

	// The relay publishes the mirror's changes to WECOM_CHANGES.
	changes, err := w.js.Stream(context.Background(), mirror.ChangesStreamName)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		m, err := changes.GetLastMsgForSubject(context.Background(), "wecom.changes."+corpID+".user.deleted")
		return err == nil && strings.Contains(string(m.Data), "e2e_wang")
	}, 30*time.Second, 20*time.Millisecond, "the deletion reached WECOM_CHANGES")

	metrics := getBody(t, p.admin+"/metrics")
	require.Regexp(t, `wecomsync_worker_events_total\{corp="`+corpID+`",kind="create_user",outcome="applied"\} [1-9]`, metrics)
	require.Contains(t, metrics, `wecomsync_worker_lag_events{lane="wecomsync-mirror"} 0`)
	require.Contains(t, metrics, `wecomsync_worker_syncs_total{corp="`+corpID+`",outcome="ok"} 1`)
	require.Contains(t, metrics, `wecomsync_mirror_apply_seconds_count`)

	p.stop(t)
	require.NotEqual(t, http.StatusOK, statusOrZero(p.admin+"/healthz"), "the admin server is closed after run returns")
}

func statusOrZero(u string) int {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRunMinimalEventsUseLookups(t *testing.T) {
	t.Parallel()
	// Post-2022 callbacks carry ids only (and are sent only for department and userid
	// changes): details come from user/get and department/get lookups. Each edit is
	// applied before the next, so a lookup sees the state its event announced (a member
	// renamed before its create_user is applied is looked up too late: the mirror then
	// keeps what the event carried until the next sync).
	w := newWorld(t, worldOptions{seedUsers: 10, minimal: true})
	p := w.startWorker(t, nil)
	step := func(path string, body any) {
		t.Helper()
		w.must(t, path, body)
		w.waitDrained(t)
	}
	step("department/create", map[string]any{"name": "E2E研发", "parentid": 1, "id": 9001})
	step("department/create", map[string]any{"name": "E2E测试", "parentid": 9001, "id": 9002})
	step("user/create", map[string]any{"userid": "e2e_zhang", "name": "张三", "department": []int{9001},
		"is_leader_in_dept": []int{1}, "email": "zhang@e2e.example", "mobile": "13900000001", "position": "工程师", "gender": "1"})
	// Minimal update_user carries the departments only: the leader flags and the main
	// department (both changed here) come from a user/get lookup.
	step("user/update", map[string]any{"userid": "e2e_zhang", "department": []int{9001, 9002}, "is_leader_in_dept": []int{0, 1}, "main_department": 9002})
	step("user/update", map[string]any{"userid": "e2e_zhang", "new_userid": "e2e_zhang2"})
	step("department/update", map[string]any{"id": 9002, "parentid": 1})
	step("user/create", map[string]any{"userid": "e2e_wang", "name": "王五", "department": []int{9002}, "email": "wang@e2e.example"})
	step("user/delete?userid=e2e_wang", nil)
	step("department/create", map[string]any{"name": "E2E临时", "parentid": 1, "id": 9003})
	step("department/delete?id=9003", nil)
	require.Zero(t, w.call(t, "tag/create", map[string]any{"tagname": "E2E标签", "tagid": 901}, nil))
	step("tag/addtagusers", map[string]any{"tagid": 901, "userlist": []string{"e2e_zhang2"}, "partylist": []int{9001}})
	step("tag/deltagusers", map[string]any{"tagid": 901, "partylist": []int{9001}})
	w.requireConverged(t)
	require.Regexp(t, `wecomsync_mirror_lookups_total\{entity="user",result="ok"\} [1-9]`, getBody(t, p.admin+"/metrics"))
	require.Regexp(t, `wecomsync_mirror_lookups_total\{entity="department",result="ok"\} [1-9]`, getBody(t, p.admin+"/metrics"))
	p.stop(t)
}

func TestRunDeadLettersAndReplay(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	p := w.startWorker(t, nil)
	nc, err := nats.Connect(w.ns.URL)
	require.NoError(t, err)
	defer nc.Close()
	// An authentic callback whose XML was malformed, as the receiver stores it.
	unparsed := `{"id":"` + strings.Repeat("ab", 32) + `","tenant":"default","corp_id":"` + corpID +
		`","event":"unparsed","create_time":0,"received_at":"2026-01-01T00:00:00.000000000Z","data":{},"xml":"<xml><Event>change_contact"}`
	_, err = w.js.Publish(context.Background(), "wecom.events."+corpID+".unparsed", []byte(unparsed))
	require.NoError(t, err)
	// The lane carries on after it.
	w.must(t, "user/create", map[string]any{"userid": "after_poison", "name": "后来", "department": []int{1}, "email": "a@p.example"})
	w.waitDrained(t)
	w.requireConverged(t)

	out, err := w.cmd(t, nil, "events", "dead")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	require.Contains(t, lines[1], "wecom.events."+corpID+".unparsed")
	id := strings.Fields(lines[1])[0]

	out, err = w.cmd(t, nil, "events", "dead", "--corp", "someothercorp")
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(out, "\n"), "only the header for a corp without dead letters")

	// Replaying an event that can never apply fails again: the old letter is marked
	// replayed and the new one listed.
	out, err = w.cmd(t, nil, "events", "replay", id)
	require.ErrorContains(t, err, "1 of 1 dead letters failed again")
	require.Regexp(t, `^`+id+`\tfailed again: .*\(new dead letter [0-9]+\)`, out)
	out, err = w.cmd(t, nil, "events", "dead")
	require.NoError(t, err)
	require.NotContains(t, out, "\n"+id+" ")
	_, err = w.cmd(t, nil, "events", "replay", id)
	require.ErrorContains(t, err, "already replayed")

	// A dead letter that applies now (recorded while, say, a bug was fixed): insert one
	// as the mirror would have, then replay everything.
	good := `{"id":"` + strings.Repeat("cd", 32) + `","tenant":"default","corp_id":"` + corpID +
		`","event":"change_contact","change_type":"delete_user","create_time":1700000000,"received_at":"2026-01-01T00:00:00.000000000Z","data":{"user_id":"after_poison"},"xml":"<xml/>"}`
	_, err = w.pool.Exec(context.Background(), `INSERT INTO wecom.dead_letters (corp_id, stream_seq, event_id, subject, reason, payload)
		VALUES ($1, 99, $2, $3, 'test', $4)`, corpID, strings.Repeat("cd", 32), "wecom.events."+corpID+".change_contact.delete_user", []byte(good))
	require.NoError(t, err)
	out, err = w.cmd(t, nil, "events", "replay", "--all")
	require.ErrorContains(t, err, "1 of 2 dead letters failed again")
	require.Regexp(t, `(?m)^[0-9]+\tapplied$`, out)
	require.NotContains(t, w.mirrorDir(t).Users, "after_poison", "the replayed delete applied")

	_, err = w.cmd(t, nil, "events", "replay")
	require.ErrorContains(t, err, "one dead letter ID, or --all")
	_, err = w.cmd(t, nil, "events", "replay", "x")
	require.ErrorContains(t, err, "positive integer")
	p.stop(t)
}

func TestRunMigrations(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	out, err := w.cmd(t, nil, "migrate", "status")
	require.NoError(t, err)
	require.NotContains(t, out, "pending")
	out, err = w.cmd(t, nil, "migrate", "down")
	require.NoError(t, err)
	require.Contains(t, out, "rolled back")

	// run refuses a schema with pending migrations, and so do the other commands.
	err = run(context.Background(), []string{"worker", "run"}, w.getenv, io.Discard, io.Discard)
	require.ErrorContains(t, err, "pending migrations: run `worker migrate up` first")
	_, err = w.cmd(t, nil, "events", "dead")
	require.ErrorContains(t, err, "pending migrations")

	out, err = w.cmd(t, nil, "migrate", "up")
	require.NoError(t, err)
	require.Contains(t, out, "applied")
	out, err = w.cmd(t, nil, "migrate", "up")
	require.NoError(t, err)
	require.Contains(t, out, "no pending migrations")
	_, err = w.cmd(t, nil, "migrate", "sideways")
	require.ErrorContains(t, err, "up, down or status")
}

func TestRunSyncHealsWhatCallbacksMissed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{seedUsers: 20})
	p := w.startWorker(t, nil)
	p.stop(t)
	// Edits made with the contacts-sync secret are not called back (as in WeCom), and
	// some callbacks are dropped: only a sync can see them.
	require.NoError(t, w.emu.SetFaults(emulator.Faults{CallbackDropRate: 1}))
	w.must(t, "user/create", map[string]any{"userid": "silent", "name": "静默", "department": []int{1}, "email": "s@x.example"})
	w.must(t, "department/create", map[string]any{"name": "无声部", "parentid": 1, "id": 7001})
	require.NotEqual(t, w.emulatorDir(t), w.mirrorDir(t))

	out, err := w.cmd(t, nil, "sync", "--corp", corpID)
	require.NoError(t, err)
	require.Regexp(t, `(?m)^users +created=1 updated=0 deleted=0 unchanged=20$`, out)
	require.Regexp(t, `(?m)^departments +created=1 `, out)
	w.requireConverged(t)

	_, err = w.cmd(t, nil, "sync", "--corp", "notconfigured")
	require.ErrorContains(t, err, "corp notconfigured is not configured")
	_, err = w.cmd(t, nil, "sync")
	require.ErrorContains(t, err, "--corp")
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x", "WECOM_CORP_ID": corpID, "WECOM_CONTACT_SECRET": "s"}
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"NoDatabase":     {map[string]string{"DATABASE_URL": ""}, "DATABASE_URL is required"},
		"NoCorp":         {map[string]string{"WECOM_CORP_ID": ""}, "WECOM_CORP_ID is required"},
		"NoSecret":       {map[string]string{"WECOM_CONTACT_SECRET": ""}, "WECOM_CONTACT_SECRET"},
		"BadAPIURL":      {map[string]string{"WECOM_API_URL": "qyapi.weixin.qq.com"}, "WECOM_API_URL must start with http"},
		"BadBatch":       {map[string]string{"WORKER_BATCH_SIZE": "0"}, "batch size must be 1 to 10000, got 0"},
		"NotANumber":     {map[string]string{"WORKER_BATCH_SIZE": "many"}, "WORKER_BATCH_SIZE must be an integer"},
		"BadDuration":    {map[string]string{"WORKER_ACK_WAIT": "soon"}, "WORKER_ACK_WAIT must be a positive duration"},
		"TinyPinnedTTL":  {map[string]string{"WORKER_PINNED_TTL": "10ms"}, "pinned TTL must be at least three times the max wait"},
		"BadMaxDeliver":  {map[string]string{"WORKER_MAX_DELIVER": "0"}, "max deliver must be -1 (unlimited) or positive"},
		"BadBackoff":     {map[string]string{"WORKER_RETRY_BACKOFF": "1s,,2s"}, "WORKER_RETRY_BACKOFF must be a comma-separated list"},
		"LongBackoff":    {map[string]string{"WORKER_RETRY_BACKOFF": "1s,2m"}, "retry backoff durations must not exceed the ack wait (30s), got 2m0s"},
		"BadLogLevel":    {map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL must be debug, info, warn or error"},
		"BadSyncFlag":    {map[string]string{"WORKER_INITIAL_SYNC": "maybe"}, "WORKER_INITIAL_SYNC must be true or false"},
		"BadConsumer":    {map[string]string{"WORKER_CONSUMER": "a.b"}, "WORKER_CONSUMER may not contain"},
		"BadConcurrency": {map[string]string{"WORKER_LOOKUP_CONCURRENCY": "0"}, "WORKER_LOOKUP_CONCURRENCY must be 1 to 64"},
		"BadReplicas":    {map[string]string{"WECOM_CHANGES_REPLICAS": "7"}, "WECOM_CHANGES_REPLICAS must be 1 to 5"},
		"BadPartitions":  {map[string]string{"WORKER_PARTITIONS": "0"}, "WORKER_PARTITIONS must be 1 to 256"},
		"URLTwice":       {map[string]string{"DATABASE_URL_FILE": "/nonexistent"}, "not both"},
		"MissingURLFile": {map[string]string{"DATABASE_URL": "", "DATABASE_URL_FILE": "/nonexistent/db-url"}, "reading DATABASE_URL_FILE"},
	} {
		env := maps(base, tc.env)
		err := run(context.Background(), []string{"worker", "run"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		require.ErrorContains(t, err, "configuration: ", name)
		require.ErrorContains(t, err, tc.want, name)
	}
	for _, args := range [][]string{{"worker"}, {"worker", "fly"}, {"worker", "run", "extra"}, {"worker", "events"}, {"worker", "events", "undead"}, {"worker", "migrate"}} {
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard)
		require.Error(t, err, strings.Join(args, " "))
	}
}

// The worker is not ready until the initial sync is done: a WeCom answering errors keeps
// it unready and retrying, rather than failing.
func TestRunWaitsForWeComBeforeReady(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{seedUsers: 5})
	require.NoError(t, w.emu.SetFaults(emulator.Faults{ErrorRate: 1}))
	env := maps(w.env, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	pr, pw := io.Pipe()
	go func() {
		done <- run(ctx, []string{"worker", "run"}, func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
	}()
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(pr).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, pr)
	}()
	// Wait until the worker has been refused a few times.
	require.Eventually(t, func() bool { return w.emu.Stats().APIErrors["-1"] >= 3 }, 30*time.Second, 10*time.Millisecond)
	select {
	case line := <-ready:
		t.Fatalf("ready while WeCom fails: %q", line)
	default:
	}
	require.NoError(t, w.emu.SetFaults(emulator.Faults{}))
	select {
	case line := <-ready:
		require.True(t, strings.HasPrefix(line, "worker ready admin="), line)
	case <-time.After(60 * time.Second):
		t.Fatal("not ready after WeCom recovered")
	}
	w.requireConverged(t)
	cancel()
	require.NoError(t, <-done)
}
