package wecom_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

// faultFor turns on emulator faults f until n requests to api have been answered, then
// turns them off (so the client's next request, and any re-read, is served normally).
func faultFor(f *fixture, api string, n int, faults emulator.Faults) {
	var seen atomic.Int64
	if err := f.emu.SetFaults(faults); err != nil {
		panic(err)
	}
	f.rec.setIntercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.URL.Path != "/cgi-bin/"+api {
			return false
		}
		next.ServeHTTP(w, r)
		if seen.Add(1) == int64(n) {
			_ = f.emu.SetFaults(emulator.Faults{})
		}
		return true
	})
}

// dropAnswer makes the emulator execute the first request to api and then cut the
// connection instead of answering: the write happened, the client cannot know.
func dropAnswer(f *fixture, api string) {
	var done atomic.Bool
	f.rec.setIntercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.URL.Path != "/cgi-bin/"+api || done.Swap(true) {
			return false
		}
		next.ServeHTTP(httptest.NewRecorder(), r)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return true
	})
}

func TestRetries(t *testing.T) {
	t.Parallel()

	t.Run("SystemBusyBurstIsRetried", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		faultFor(f, "user/get", 4, emulator.Faults{ErrorRate: 1})
		u, err := f.client.GetUser(ctxT(t), "u000001")
		require.NoError(t, err)
		require.Equal(t, "u000001", u.UserID)
		require.Equal(t, 5, f.rec.count("user/get"))
		require.EqualValues(t, 4, f.emu.Stats().APIErrors["-1"])
	})

	t.Run("ConcurrencyLimitIsRetriedEvenForWrites", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		faultFor(f, "user/create", 3, emulator.Faults{ConcurrencyRate: 1})
		err := f.client.CreateUser(ctxT(t), wecom.UserCreate{UserID: "cc1", Name: "cc", Email: "cc1@example.org", Department: []int{1}})
		require.NoError(t, err)
		require.Equal(t, []string{"user/create", "user/create", "user/create", "user/create"}, f.rec.calls("user/create", "user/get"),
			"45033 is refused before execution: no re-read needed")
	})

	t.Run("FreqLimitStormBacksOffAndSucceeds", func(t *testing.T) {
		t.Parallel()
		f := setup(t, withClient(func(c *wecom.Config) { c.FreqLimitBlock = 30 * time.Millisecond }))
		faultFor(f, "department/simplelist", 3, emulator.Faults{FreqLimitRate: 1})
		ctx := ctxT(t)
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = f.client.SimpleListDepartments(ctx, 0)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond, "held back for the block window")
		require.EqualValues(t, 3, f.emu.Stats().APIErrors["45009"])
	})

	t.Run("FreqLimitReturnsAtOnceWhenDeadlineIsTooClose", func(t *testing.T) {
		t.Parallel()
		f := setup(t, withClient(func(c *wecom.Config) { c.FreqLimitBlock = time.Minute }))
		faultFor(f, "user/get", 100, emulator.Faults{FreqLimitRate: 1})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := f.client.GetUser(ctx, "u000001")
		require.ErrorIs(t, err, wecom.ErrRateLimited)
		require.Less(t, time.Since(start), time.Second, "does not sleep into the deadline")
		require.Equal(t, 1, f.rec.count("user/get"))

		// The API stays blocked for other callers too: they fail fast without calling.
		_, err = f.client.GetUser(ctx, "u000002")
		require.ErrorIs(t, err, wecom.ErrRateLimited)
		require.Equal(t, 1, f.rec.count("user/get"))
		// Other APIs are not blocked.
		require.NoError(t, f.emu.SetFaults(emulator.Faults{}))
		_, err = f.client.SimpleListDepartments(ctx, 0)
		require.NoError(t, err)
	})

	t.Run("CallerDeadlineBoundsSlowCalls", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		require.NoError(t, f.emu.SetFaults(emulator.Faults{LatencyMS: 5000}))
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := f.client.GetUser(ctx, "u000001")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 2*time.Second)
	})

	t.Run("ResponseSizeIsBounded", func(t *testing.T) {
		t.Parallel()
		f := setup(t, withClient(func(c *wecom.Config) { c.MaxResponseBytes = 2048 }))
		_, err := f.client.ListUsers(ctxT(t), 1, true)
		require.ErrorIs(t, err, wecom.ErrResponseTooLarge)
		require.Equal(t, 1, f.rec.count("user/list"), "not retried")
	})
}

func TestUnknownOutcomeWrites(t *testing.T) {
	t.Parallel()

	t.Run("TimedOutCreateIsReReadThenSentAgain", func(t *testing.T) {
		t.Parallel()
		// The emulator's latency fault outlasts the client's per-call timeout: the create
		// is abandoned (the emulator does not apply it). The client must re-read before
		// sending it again.
		f := setup(t, withClient(func(c *wecom.Config) { c.CallTimeout = 150 * time.Millisecond }))
		require.NoError(t, f.emu.SetFaults(emulator.Faults{LatencyMS: 3000}))
		reset := make(chan struct{})
		var first atomic.Bool
		f.rec.setIntercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if r.URL.Path == "/cgi-bin/user/create" && !first.Swap(true) {
				next.ServeHTTP(w, r) // returns once the client gave up
				_ = f.emu.SetFaults(emulator.Faults{})
				close(reset)
				return true
			}
			if r.URL.Path != "/cgi-bin/gettoken" {
				<-reset
			}
			return false
		})
		err := f.client.CreateUser(ctxT(t), wecom.UserCreate{UserID: "slow1", Name: "慢", Email: "slow1@example.org", Department: []int{1}})
		require.NoError(t, err)
		require.Equal(t, []string{"user/create", "user/get", "user/create"}, f.rec.calls("user/create", "user/get"))
		_, ok := f.emu.Directory().User("slow1")
		require.True(t, ok)
	})

	t.Run("CreateAppliedButAnswerLostIsNotSentTwice", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		dropAnswer(f, "user/create")
		err := f.client.CreateUser(ctxT(t), wecom.UserCreate{UserID: "lost1", Name: "丢", Email: "lost1@example.org", Department: []int{1}})
		require.NoError(t, err)
		require.Equal(t, []string{"user/create", "user/get"}, f.rec.calls("user/create", "user/get"))
	})

	t.Run("LostCreateOfATakenUseridIsExists", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		dropAnswer(f, "user/create")
		err := f.client.CreateUser(ctxT(t), wecom.UserCreate{UserID: "u000001", Name: "别人", Email: "other@example.org", Department: []int{1}})
		require.ErrorIs(t, err, wecom.ErrExists)
		require.NotErrorIs(t, err, wecom.ErrUnknownOutcome)
		require.Equal(t, []string{"user/create", "user/get"}, f.rec.calls("user/create", "user/get"))
	})

	t.Run("SystemBusyOnCreateIsReRead", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		faultFor(f, "user/create", 1, emulator.Faults{ErrorRate: 1})
		err := f.client.CreateUser(ctxT(t), wecom.UserCreate{UserID: "busy1", Name: "忙", Email: "busy1@example.org", Department: []int{1}})
		require.NoError(t, err)
		require.Equal(t, []string{"user/create", "user/get", "user/create"}, f.rec.calls("user/create", "user/get"))
	})

	t.Run("DeleteWhoseAnswerWasLostSucceedsOnNotFound", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		dropAnswer(f, "user/delete")
		require.NoError(t, f.client.DeleteUser(ctxT(t), "u000010"))
		require.Equal(t, 2, f.rec.count("user/delete"))
	})

	t.Run("BatchDeleteResolvesToTheRemainingUsers", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		dropAnswer(f, "user/batchdelete")
		require.NoError(t, f.client.BatchDeleteUsers(ctxT(t), []string{"u000011", "u000012"}))
		require.Equal(t, 1, f.rec.count("user/batchdelete"), "both gone after the lost call: nothing left to delete")
		require.Equal(t, 2, f.rec.count("user/get"))
	})

	t.Run("DepartmentCreateWithIDIsResolved", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		dropAnswer(f, "department/create")
		id, err := f.client.CreateDepartment(ctxT(t), wecom.DepartmentCreate{Name: "丢失部门", ParentID: 1, ID: 8001})
		require.NoError(t, err)
		require.Equal(t, 8001, id)
		require.Equal(t, 1, f.rec.count("department/create"))
	})

	t.Run("DepartmentCreateWithoutIDIsUnknown", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		dropAnswer(f, "department/create")
		_, err := f.client.CreateDepartment(ctxT(t), wecom.DepartmentCreate{Name: "无ID部门", ParentID: 1})
		require.ErrorIs(t, err, wecom.ErrUnknownOutcome)
		require.Equal(t, 1, f.rec.count("department/create"))
	})

	t.Run("TagCreateIsResolvedByName", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		dropAnswer(f, "tag/create")
		id, err := f.client.CreateTag(ctxT(t), "丢失标签", 0)
		require.NoError(t, err)
		require.Positive(t, id)
		require.Equal(t, 1, f.rec.count("tag/create"))
		tag, err := f.client.GetTag(ctxT(t), id)
		require.NoError(t, err)
		require.Equal(t, "丢失标签", tag.TagName)
	})

	t.Run("InviteAndImportAreNotRepeated", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		dropAnswer(f, "batch/invite")
		_, err := f.client.BatchInvite(ctxT(t), wecom.Invite{User: []string{"u000001"}})
		require.ErrorIs(t, err, wecom.ErrUnknownOutcome)
		require.Equal(t, 1, f.rec.count("batch/invite"))
	})

	t.Run("IdempotentUpdateIsRepeated", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		dropAnswer(f, "user/update")
		require.NoError(t, f.client.UpdateUser(ctxT(t), wecom.UserUpdate{UserID: "u000005", Position: wecom.Ptr("架构师")}))
		require.Equal(t, 2, f.rec.count("user/update"))
	})
}

func TestTokenBucketPacesCallsPerAPI(t *testing.T) {
	t.Parallel()
	// 1200/min = 20/s with a burst of 20: 30 calls to one API need at least 10/20 s more.
	f := setup(t, withClient(func(c *wecom.Config) { c.RateLimitPerMinute = 1200 }))
	ctx := ctxT(t)
	start := time.Now()
	for range 30 {
		_, err := f.client.GetDepartment(ctx, 1)
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, time.Since(start), 450*time.Millisecond)

	// A deadline the bucket cannot meet fails fast with ErrRateLimited, without a call.
	for range 25 {
		// Past the burst of 20, each call waits for its token: the bucket ends empty.
		_, _ = f.client.GetUser(ctx, "u000001")
	}
	before := f.rec.count("user/get")
	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	_, err := f.client.GetUser(short, "u000001")
	require.ErrorIs(t, err, wecom.ErrRateLimited)
	require.Equal(t, before, f.rec.count("user/get"))
}
