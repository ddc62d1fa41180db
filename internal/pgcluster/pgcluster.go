// Package pgcluster starts a throwaway PostgreSQL cluster with the installed initdb and
// pg_ctl, for tests and the demo when no DATABASE_URL is given.
package pgcluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Cluster is a running throwaway Postgres cluster.
type Cluster struct {
	// URL connects to the postgres database as the postgres superuser (trust auth).
	URL string
	// Stop stops the server and removes its files unless they were in a caller-given dir.
	Stop func()
}

// Start runs initdb (unless dir already holds a cluster) and pg_ctl in dir (a new temp dir,
// removed by Stop, when dir is ""), listening on a free loopback port, and returns once the
// server accepts connections. As root it runs them as the "postgres" user, since initdb
// refuses to run as root. It returns an error naming what is missing when it cannot.
func Start(dir string) (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	keep := dir != ""
	if !keep {
		if dir, err = os.MkdirTemp("", "wecomsync-pg-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	removeAll := func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}
	var prefix []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			removeAll()
			return nil, errors.New("running as root and there is no postgres user to run initdb as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			removeAll()
			return nil, err
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			removeAll()
			return nil, errors.New("running as root and runuser is not installed")
		}
		prefix = []string{runuser, "-u", "postgres", "--"}
	}
	runCmd := func(args ...string) error {
		full := append(append([]string{}, prefix...), args...)
		out, err := exec.Command(full[0], full[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", filepath.Base(args[0]), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	// A dir holding a cluster from an earlier run is started again, not re-initialised.
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		if err := runCmd(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
			removeAll()
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		removeAll()
		return nil, err
	}
	opts := fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c max_connections=300 -c shared_buffers=256MB", port, dir)
	if err := runCmd(filepath.Join(bin, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		removeAll()
		return nil, err
	}
	stop := func() {
		_ = runCmd(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop")
		removeAll()
	}
	return &Cluster{URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), Stop: stop}, nil
}

// findBin locates the directory holding initdb and pg_ctl: PATH, pg_config --bindir, or
// Debian's /usr/lib/postgresql/<version>/bin (newest first).
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("TEST_DATABASE_URL is not set and initdb was not found (PATH, pg_config, /usr/lib/postgresql/*/bin)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
