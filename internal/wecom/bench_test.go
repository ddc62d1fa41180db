package wecom_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

const benchUsers = 100_000

// benchFixture is an emulator seeded with benchUsers members and a client without
// client-side or emulator-side rate limits (so the numbers are the client's and the
// emulator's speed, not WeCom's 10,000/min budget).
func benchFixture(b *testing.B) *fixture {
	b.Helper()
	return setup(b, withSeed(benchUsers), withEmulator(func(e *emulator.Config) {
		e.RateLimitPerMinute = -1
		e.ConcurrencyLimit = -1
	}), withClient(func(c *wecom.Config) { c.RateLimitPerMinute = -1 }))
}

// enumerate returns every member's departments using user/list_id and the department tree
// using department/simplelist: what a full sync needs from the post-2022 APIs.
func enumerate(ctx context.Context, c *wecom.Client) (map[string][]int, []wecom.SimpleDepartment, int, error) {
	users := make(map[string][]int, benchUsers)
	calls := 0
	for p, err := range c.ListIDPages(ctx, "", wecom.MaxListIDsLimit) {
		if err != nil {
			return nil, nil, calls, err
		}
		calls++
		for _, du := range p.DeptUser {
			users[du.UserID] = append(users[du.UserID], du.Department)
		}
	}
	deps, err := c.SimpleListDepartments(ctx, 0)
	calls++
	return users, deps, calls, err
}

// BenchmarkEnumerateOrg measures one full enumeration (all userids with their departments,
// plus the department tree) of a 100,000-member org; ns/op is the time to enumerate it.
func BenchmarkEnumerateOrg(b *testing.B) {
	f := benchFixture(b)
	ctx := context.Background()
	calls := 0
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		users, deps, n, err := enumerate(ctx, f.client)
		require.NoError(b, err)
		require.Len(b, users, benchUsers)
		require.NotEmpty(b, deps)
		calls += n
	}
	b.ReportMetric(float64(calls)/time.Since(start).Seconds(), "calls/s")
	b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
}

// BenchmarkListIDsPage measures one user/list_id call of 10,000 rows.
func BenchmarkListIDsPage(b *testing.B) {
	f := benchFixture(b)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		p, err := f.client.ListIDsPage(ctx, "", wecom.MaxListIDsLimit)
		require.NoError(b, err)
		require.Len(b, p.DeptUser, wecom.MaxListIDsLimit)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	b.ReportMetric(float64(wecom.MaxListIDsLimit*b.N)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkDepartmentSimpleList measures department/simplelist of the whole tree.
func BenchmarkDepartmentSimpleList(b *testing.B) {
	f := benchFixture(b)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		_, err := f.client.SimpleListDepartments(ctx, 0)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// BenchmarkEnumerateBySimpleList enumerates the org the pre-2022 way: department/simplelist,
// then user/simplelist per department (fetch_child=0), 8 calls in flight.
func BenchmarkEnumerateBySimpleList(b *testing.B) {
	f := benchFixture(b)
	ctx := context.Background()
	calls := 0
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		deps, err := f.client.SimpleListDepartments(ctx, 0)
		require.NoError(b, err)
		calls++
		type res struct {
			users []wecom.SimpleUser
			err   error
		}
		ids := make(chan int)
		out := make(chan res)
		for range 8 {
			go func() {
				for id := range ids {
					us, err := f.client.SimpleListUsers(ctx, id, false)
					out <- res{us, err}
				}
			}()
		}
		go func() {
			for _, d := range deps {
				ids <- d.ID
			}
			close(ids)
		}()
		seen := make(map[string]bool, benchUsers)
		for range deps {
			r := <-out
			require.NoError(b, r.err)
			for _, u := range r.users {
				seen[u.UserID] = true
			}
		}
		calls += len(deps)
		require.Len(b, seen, benchUsers)
	}
	b.ReportMetric(float64(calls)/time.Since(start).Seconds(), "calls/s")
	b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
}
