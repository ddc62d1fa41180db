package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/testutil/natstest"
)

// assumedMetrics are metric names the dashboard and the alert rules use although no
// package defines them yet (the worker's job runner and reconcile schedule). When the
// worker exports them under other names, change the rules and the dashboard and drop them
// from this list.
var assumedMetrics = []string{
	"wecomsync_worker_jobs",                                // gauge {type,state}: jobs in each state
	"wecomsync_worker_jobs_finished_total",                 // counter {type,outcome}: jobs that ended
	"wecomsync_worker_last_sync_success_timestamp_seconds", // gauge {corp}: last successful full sync or reconcile
}

func TestEveryYAMLAndJSONFileParses(t *testing.T) {
	t.Parallel()
	var n int
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch filepath.Ext(path) {
		case ".yml", ".yaml":
			n++
			dec := yaml.NewDecoder(bytes.NewReader(raw))
			for {
				var doc any
				err := dec.Decode(&doc)
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err, "parsing %s", path)
			}
		case ".json":
			n++
			require.True(t, json.Valid(raw), "%s is not valid JSON", path)
		}
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, n, 15, "expected the deploy tree's YAML and JSON files")
}

// readStream decodes a stream definition file strictly: a field the JetStream API does not
// know is an error.
func readStream(t *testing.T, name string) (jetstream.StreamConfig, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("nats", "streams", name+".json"))
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var cfg jetstream.StreamConfig
	require.NoError(t, dec.Decode(&cfg), "decoding %s.json", name)
	return cfg, raw
}

// unlimited turns the CLI's explicit -1 ("no limit") into the zero value the Go
// definitions leave, which the server stores as -1 too.
func unlimited(c jetstream.StreamConfig) jetstream.StreamConfig {
	for _, p := range []*int64{&c.MaxMsgs, &c.MaxBytes, &c.MaxMsgsPerSubject} {
		if *p == -1 {
			*p = 0
		}
	}
	if c.MaxConsumers == -1 {
		c.MaxConsumers = 0
	}
	if c.MaxMsgSize == -1 {
		c.MaxMsgSize = 0
	}
	return c
}

func TestStreamDefinitions(t *testing.T) {
	t.Parallel()

	t.Run("EventsStreamIsTheReceiversDefinitionWithThreeReplicas", func(t *testing.T) {
		t.Parallel()
		got, _ := readStream(t, "WECOM_EVENTS")
		o := callback.DefaultStreamOptions
		o.Replicas = 3
		require.Equal(t, callback.StreamConfig(o), unlimited(got))
		require.Equal(t, []string{callback.StreamSubjects}, got.Subjects)
		require.Equal(t, 2*time.Minute, got.Duplicates)
	})

	t.Run("ChangesStreamIsReplicatedFileStorageWithLimitsRetention", func(t *testing.T) {
		t.Parallel()
		// Mirrors internal/mirror.ChangesStreamConfig(3).
		got, _ := readStream(t, "WECOM_CHANGES")
		require.Equal(t, "WECOM_CHANGES", got.Name)
		require.Equal(t, []string{"wecom.changes.>"}, got.Subjects)
		require.Equal(t, jetstream.FileStorage, got.Storage)
		require.Equal(t, jetstream.LimitsPolicy, got.Retention)
		require.Equal(t, jetstream.DiscardOld, got.Discard)
		require.Equal(t, 30*24*time.Hour, got.MaxAge)
		require.Equal(t, 30*time.Minute, got.Duplicates)
		require.Equal(t, 3, got.Replicas)
	})

	t.Run("ServerAcceptsTheFileAndTheReceiverLeavesItUnchanged", func(t *testing.T) {
		t.Parallel()
		srv := natstest.Start(t)
		nc, js := srv.Connect(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		// Send the file as `nats stream add --config` does, with one replica: this server
		// is not clustered.
		_, raw := readStream(t, "WECOM_EVENTS")
		var doc map[string]any
		require.NoError(t, json.Unmarshal(raw, &doc))
		doc["num_replicas"] = 1
		body, err := json.Marshal(doc)
		require.NoError(t, err)
		resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.CREATE."+callback.StreamName, body)
		require.NoError(t, err)
		var created struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(resp.Data, &created))
		require.Nil(t, created.Error, "the server rejected WECOM_EVENTS.json: %s", resp.Data)

		before, err := js.Stream(ctx, callback.StreamName)
		require.NoError(t, err)
		o := callback.DefaultStreamOptions
		o.Replicas = 1
		require.NoError(t, callback.EnsureStream(ctx, js, o))
		after, err := js.Stream(ctx, callback.StreamName)
		require.NoError(t, err)
		require.Equal(t, before.CachedInfo().Config, after.CachedInfo().Config,
			"the receiver's EnsureStream changed the stream created from WECOM_EVENTS.json")
	})
}

// k8sObject holds the fields of a manifest the invariants look at.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas *int              `yaml:"replicas"`
		Selector *k8sLabelSelector `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
		TopologySpreadConstraints []any `yaml:"topologySpreadConstraints"`
	} `yaml:"spec"`
}

type k8sLabelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type k8sPodSpec struct {
	AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
	SecurityContext              struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    int   `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	TopologySpreadConstraints []any          `yaml:"topologySpreadConstraints"`
	Containers                []k8sContainer `yaml:"containers"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name           string    `yaml:"name"`
	Image          string    `yaml:"image"`
	Args           []string  `yaml:"args"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
}

// loadKustomization returns the objects of every resource kustomization.yaml lists.
func loadKustomization(t *testing.T) (resources []string, objs []k8sObject) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("k8s", "kustomization.yaml"))
	require.NoError(t, err)
	var k struct {
		Resources []string `yaml:"resources"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &k))
	for _, r := range k.Resources {
		raw, err := os.ReadFile(filepath.Join("k8s", r))
		require.NoError(t, err, "kustomization.yaml lists %s", r)
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "parsing %s", r)
			objs = append(objs, o)
		}
	}
	return k.Resources, objs
}

func isTrue(b *bool) bool { return b != nil && *b }

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	resources, objs := loadKustomization(t)

	t.Run("KustomizationListsEveryManifestExceptTheOptionalOnes", func(t *testing.T) {
		t.Parallel()
		optional := []string{"kustomization.yaml", "nats-values.yaml", "secret.example.yaml", "podmonitors.yaml"}
		files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
		require.NoError(t, err)
		for _, f := range files {
			name := filepath.Base(f)
			if !slices.Contains(optional, name) {
				require.Contains(t, resources, name, "%s is not in kustomization.yaml", name)
			}
		}
	})

	byKind := map[string][]k8sObject{}
	for _, o := range objs {
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}

	checkContainer := func(t *testing.T, where string, c k8sContainer, probes bool) {
		t.Helper()
		if probes {
			require.NotNil(t, c.ReadinessProbe, "%s: no readinessProbe", where)
			require.NotNil(t, c.ReadinessProbe.HTTPGet, "%s: readinessProbe is not an HTTP probe", where)
			require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path, "%s: readiness", where)
			require.NotNil(t, c.LivenessProbe, "%s: no livenessProbe", where)
			require.NotNil(t, c.LivenessProbe.HTTPGet, "%s: livenessProbe is not an HTTP probe", where)
			require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path, "%s: liveness", where)
		}
		for _, r := range []string{"cpu", "memory"} {
			require.NotEmpty(t, c.Resources.Requests[r], "%s: no %s request", where, r)
		}
		require.NotEmpty(t, c.Resources.Limits["memory"], "%s: no memory limit", where)
		sc := c.SecurityContext
		require.True(t, isTrue(sc.ReadOnlyRootFilesystem), "%s: readOnlyRootFilesystem", where)
		require.True(t, isTrue(sc.RunAsNonRoot), "%s: runAsNonRoot", where)
		require.NotNil(t, sc.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation unset", where)
		require.False(t, *sc.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation", where)
		require.Equal(t, []string{"ALL"}, sc.Capabilities.Drop, "%s: capabilities", where)
		require.True(t, strings.HasPrefix(c.Image, "wecomsync/"), "%s: image %s is not one of ours", where, c.Image)
	}
	checkPod := func(t *testing.T, where string, p k8sPodSpec) {
		t.Helper()
		require.True(t, isTrue(p.SecurityContext.RunAsNonRoot), "%s: pod runAsNonRoot", where)
		require.NotZero(t, p.SecurityContext.RunAsUser, "%s: pod runs as root", where)
		require.NotNil(t, p.AutomountServiceAccountToken, "%s: automountServiceAccountToken unset", where)
		require.False(t, *p.AutomountServiceAccountToken, "%s: mounts a service account token", where)
	}

	t.Run("DeploymentsHaveProbesResourcesAndRunNonRootReadOnly", func(t *testing.T) {
		t.Parallel()
		require.Len(t, byKind["Deployment"], 2)
		for _, d := range byKind["Deployment"] {
			where := "Deployment " + d.Metadata.Name
			require.NotNil(t, d.Spec.Replicas, where)
			require.GreaterOrEqual(t, *d.Spec.Replicas, 2, "%s: replicas", where)
			require.NotEmpty(t, d.Spec.Template.Spec.TopologySpreadConstraints, "%s: no topology spread", where)
			checkPod(t, where, d.Spec.Template.Spec)
			require.NotEmpty(t, d.Spec.Template.Spec.Containers, where)
			for _, c := range d.Spec.Template.Spec.Containers {
				checkContainer(t, where+" container "+c.Name, c, true)
			}
		}
	})

	t.Run("EveryDeploymentHasAPodDisruptionBudget", func(t *testing.T) {
		t.Parallel()
		for _, d := range byKind["Deployment"] {
			var found bool
			for _, pdb := range byKind["PodDisruptionBudget"] {
				if pdb.Spec.Selector != nil && matches(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
					found = true
				}
			}
			require.True(t, found, "no PodDisruptionBudget selects the pods of %s", d.Metadata.Name)
		}
	})

	t.Run("MigrationJobRunsWorkerMigrateUpNonRoot", func(t *testing.T) {
		t.Parallel()
		require.Len(t, byKind["Job"], 1)
		j := byKind["Job"][0]
		checkPod(t, "Job", j.Spec.Template.Spec)
		require.Len(t, j.Spec.Template.Spec.Containers, 1)
		c := j.Spec.Template.Spec.Containers[0]
		checkContainer(t, "Job container", c, false)
		require.Equal(t, []string{"migrate", "up"}, c.Args)
		require.True(t, strings.HasPrefix(c.Image, "wecomsync/worker"), "the migration runs the worker image")
	})

	t.Run("ServicesAndIngressSelectTheCallbackPods", func(t *testing.T) {
		t.Parallel()
		require.Len(t, byKind["Ingress"], 1)
		require.NotEmpty(t, byKind["Service"])
	})
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type composeService struct {
	Image       string            `yaml:"image"`
	User        string            `yaml:"user"`
	ReadOnly    bool              `yaml:"read_only"`
	Command     any               `yaml:"command"`
	Volumes     []string          `yaml:"volumes"`
	Environment map[string]string `yaml:"environment"`
	Healthcheck *struct {
		Test    []string `yaml:"test"`
		Disable bool     `yaml:"disable"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Deploy struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
	Profiles []string `yaml:"profiles"`
}

func TestComposeStack(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("compose", "docker-compose.yml"))
	require.NoError(t, err)
	var c struct {
		Services map[string]composeService `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &c))
	s := c.Services
	natsConf, err := os.ReadFile(filepath.Join("compose", "nats.conf"))
	require.NoError(t, err)
	caddy, err := os.ReadFile(filepath.Join("compose", "Caddyfile"))
	require.NoError(t, err)
	prom, err := os.ReadFile(filepath.Join("monitoring", "prometheus.yml"))
	require.NoError(t, err)

	var natsNodes, callbacks []string
	for name := range s {
		switch {
		case strings.HasPrefix(name, "nats-") && name != "nats-streams":
			natsNodes = append(natsNodes, name)
		case strings.HasPrefix(name, "callback-"):
			callbacks = append(callbacks, name)
		}
	}

	t.Run("NATSIsAThreeNodeJetStreamClusterWithAVolumeEach", func(t *testing.T) {
		t.Parallel()
		require.Len(t, natsNodes, 3)
		volumes := map[string]bool{}
		for _, n := range natsNodes {
			require.Contains(t, string(natsConf), "nats-route://"+n+":6222", "nats.conf has no route to %s", n)
			require.NotNil(t, s[n].Healthcheck, "%s has no healthcheck", n)
			for _, v := range s[n].Volumes {
				if strings.HasSuffix(v, ":/data") {
					volumes[v] = true
				}
			}
		}
		require.Len(t, volumes, 3, "each node needs its own JetStream volume")
		require.Contains(t, string(natsConf), "jetstream")
	})

	t.Run("WorkersStartAfterTheMigrationCompletes", func(t *testing.T) {
		t.Parallel()
		require.Contains(t, s, "migrate")
		require.Equal(t, []any{"migrate", "up"}, s["migrate"].Command)
		require.Equal(t, "service_completed_successfully", s["worker"].DependsOn["migrate"].Condition)
		require.Equal(t, "service_healthy", s["migrate"].DependsOn["postgres"].Condition)
		require.GreaterOrEqual(t, s["worker"].Deploy.Replicas, 2)
		require.NotNil(t, s["postgres"].Healthcheck)
	})

	t.Run("TwoOrMoreCallbacksBehindTheProxyAndScraped", func(t *testing.T) {
		t.Parallel()
		require.GreaterOrEqual(t, len(callbacks), 2)
		for _, cb := range callbacks {
			require.Contains(t, string(caddy), cb+":8080", "the Caddyfile does not balance to %s", cb)
			require.Contains(t, string(prom), cb+":8080", "prometheus.yml does not scrape %s", cb)
			require.Equal(t, "service_healthy", s["proxy"].DependsOn[cb].Condition)
		}
	})

	t.Run("OurServicesRunNonRootReadOnlyWithReadinessHealthchecks", func(t *testing.T) {
		t.Parallel()
		for name, svc := range s {
			if !strings.Contains(svc.Image, "wecomsync/") && !strings.Contains(svc.Image, "/callback:") &&
				!strings.Contains(svc.Image, "/worker:") && !strings.Contains(svc.Image, "/wecom-emulator:") {
				continue
			}
			require.Equal(t, "65532:65532", svc.User, "%s user", name)
			require.True(t, svc.ReadOnly, "%s read_only", name)
			if name == "migrate" {
				continue
			}
			require.NotNil(t, svc.Healthcheck, "%s has no healthcheck", name)
			require.NotEmpty(t, svc.Healthcheck.Test, name)
			if name != "wecom-emulator" {
				require.True(t, strings.HasSuffix(svc.Healthcheck.Test[len(svc.Healthcheck.Test)-1], "/readyz"),
					"%s healthcheck should probe /readyz, got %v", name, svc.Healthcheck.Test)
			}
		}
	})

	t.Run("SecretsAreFilesNotEnvironmentValues", func(t *testing.T) {
		t.Parallel()
		for name, svc := range s {
			for k := range svc.Environment {
				for _, secret := range []string{"WECOM_CALLBACK_TOKEN", "WECOM_CALLBACK_AES_KEY", "WECOM_CONTACT_SECRET"} {
					require.NotEqual(t, secret, k, "%s sets %s in its environment; use %s_FILE", name, k, k)
				}
			}
		}
	})
}

// unitFile reads a systemd unit into key -> values (keys repeat).
func unitFile(t *testing.T, name string) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("systemd", name))
	require.NoError(t, err)
	defer f.Close()
	kv := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s: malformed line %q", name, line)
		kv[k] = append(kv[k], v)
	}
	require.NoError(t, sc.Err())
	return kv
}

func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	units := map[string]map[string][]string{}
	for _, u := range []string{"wecomsync-callback.service", "wecomsync-worker.service", "wecomsync-migrate.service"} {
		units[u] = unitFile(t, u)
	}

	t.Run("EveryUnitIsSandboxed", func(t *testing.T) {
		t.Parallel()
		for name, kv := range units {
			for k, v := range map[string]string{
				"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
				"ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
			} {
				require.Equal(t, []string{v}, kv[k], "%s: %s", name, k)
			}
		}
	})

	t.Run("WorkerRequiresTheMigrationOneshot", func(t *testing.T) {
		t.Parallel()
		w, m := units["wecomsync-worker.service"], units["wecomsync-migrate.service"]
		require.Contains(t, strings.Join(w["Requires"], " "), "wecomsync-migrate.service")
		require.Contains(t, strings.Join(w["After"], " "), "wecomsync-migrate.service")
		require.Equal(t, []string{"oneshot"}, m["Type"])
		require.Equal(t, []string{"/usr/local/bin/worker migrate up"}, m["ExecStart"])
		require.Equal(t, []string{"/usr/local/bin/worker run"}, w["ExecStart"])
	})

	t.Run("LongRunningUnitsRestartOnFailure", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"wecomsync-callback.service", "wecomsync-worker.service"} {
			require.Equal(t, []string{"on-failure"}, units[name]["Restart"], name)
		}
	})

	t.Run("SecretsAreCredentialsPassedAsFiles", func(t *testing.T) {
		t.Parallel()
		cb := strings.Join(units["wecomsync-callback.service"]["Environment"], "\n")
		require.Contains(t, cb, "WECOM_CALLBACK_TOKEN_FILE=%d/")
		require.Contains(t, cb, "WECOM_CALLBACK_AES_KEY_FILE=%d/")
		require.Contains(t, strings.Join(units["wecomsync-worker.service"]["Environment"], "\n"), "WECOM_CONTACT_SECRET_FILE=%d/")
	})
}

func TestDockerfileBuildsStaticNonRootImages(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("docker", "Dockerfile"))
	require.NoError(t, err)
	df := string(raw)
	for _, target := range []string{"callback", "worker", "wecom-emulator"} {
		require.Contains(t, df, "FROM runtime AS "+target+"\n")
		require.Contains(t, df, "./cmd/"+target+"\n")
		require.Contains(t, df, `ENTRYPOINT ["/usr/local/bin/`+target+`"`)
	}
	require.Contains(t, df, "CGO_ENABLED=0")
	require.Contains(t, df, "-trimpath")
	require.Contains(t, df, "USER 65532:65532")
	require.Contains(t, df, ":nonroot")
}

var (
	// metricRef finds our metric names in PromQL.
	metricRef = regexp.MustCompile(`\b(wecomsync_[a-z0-9_]+|wecom_client_[a-z0-9_]+)\b`)
	// metricDef finds the names the packages define: Name: "wecomsync_..." or the client's
	// Namespace/Subsystem/Name triple.
	metricDef    = regexp.MustCompile(`Name:\s*"(wecomsync_[a-z0-9_]+)"`)
	clientMetric = regexp.MustCompile(`Namespace:\s*"wecom",\s*Subsystem:\s*"client",\s*Name:\s*"([a-z0-9_]+)"`)
	descName     = regexp.MustCompile(`fqName: "([^"]+)"`)
)

// capture is a Registerer that keeps what is registered with it.
type capture struct{ cs []prometheus.Collector }

func (c *capture) Register(col prometheus.Collector) error   { c.cs = append(c.cs, col); return nil }
func (c *capture) MustRegister(cols ...prometheus.Collector) { c.cs = append(c.cs, cols...) }
func (c *capture) Unregister(prometheus.Collector) bool      { return false }

// knownMetrics returns the metric names the code defines: the receiver's from its
// collectors, the others from their source (packages that may not be built with this one).
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	reg := &capture{}
	callback.NewMetrics(reg)
	ch := make(chan *prometheus.Desc, 64)
	for _, c := range reg.cs {
		c.Describe(ch)
	}
	close(ch)
	for d := range ch {
		m := descName.FindStringSubmatch(d.String())
		require.NotNil(t, m, "no fqName in %s", d)
		known[m[1]] = true
	}
	require.True(t, known["wecomsync_callback_requests_total"])
	err := filepath.WalkDir(filepath.Join("..", "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range metricDef.FindAllSubmatch(src, -1) {
			known[string(m[1])] = true
		}
		for _, m := range clientMetric.FindAllSubmatch(src, -1) {
			known["wecom_client_"+string(m[1])] = true
		}
		return nil
	})
	require.NoError(t, err)
	return known
}

func TestMonitoringUsesMetricsTheCodeDefines(t *testing.T) {
	t.Parallel()
	known := knownMetrics(t)
	for _, a := range assumedMetrics {
		if known[a] {
			t.Logf("%s is now defined in internal/: remove it from assumedMetrics", a)
		}
		known[a] = true
	}
	check := func(t *testing.T, file, expr string) {
		t.Helper()
		for _, m := range metricRef.FindAllString(expr, -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(m, suffix); ok && known[b] {
					base = b
				}
			}
			require.True(t, known[base], "%s uses %s, which no package defines and which is not in assumedMetrics", file, m)
		}
	}

	t.Run("AlertRules", func(t *testing.T) {
		t.Parallel()
		raw, err := os.ReadFile(filepath.Join("monitoring", "alerts.yml"))
		require.NoError(t, err)
		var rules struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []struct {
					Alert       string            `yaml:"alert"`
					Expr        string            `yaml:"expr"`
					Labels      map[string]string `yaml:"labels"`
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		require.NoError(t, yaml.Unmarshal(raw, &rules))
		require.NotEmpty(t, rules.Groups)
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				require.NotEmpty(t, r.Alert, "group %s has a rule without a name", g.Name)
				require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], r.Alert)
				require.NotEmpty(t, r.Annotations["summary"], r.Alert)
				require.NotEmpty(t, r.Annotations["runbook_url"], r.Alert)
				check(t, "alert "+r.Alert, r.Expr)
			}
		}
	})

	t.Run("Dashboard", func(t *testing.T) {
		t.Parallel()
		raw, err := os.ReadFile(filepath.Join("monitoring", "grafana-dashboard.json"))
		require.NoError(t, err)
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		require.NoError(t, json.Unmarshal(raw, &d))
		var n int
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				n++
				check(t, "dashboard panel "+p.Title, tg.Expr)
			}
		}
		require.Greater(t, n, 10)
	})
}

// anchor is GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestRunbookLinksResolve(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "docs", "runbook.md"))
	require.NoError(t, err)
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			anchors[anchor(strings.TrimLeft(h, "#"))] = true
		}
	}
	link := regexp.MustCompile(`docs/runbook\.md#([a-z0-9_-]+)`)
	var n int
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range link.FindAllSubmatch(src, -1) {
			n++
			require.True(t, anchors[string(m[1])], "%s links to docs/runbook.md#%s, which has no such heading", path, m[1])
		}
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, n, 10)
}
