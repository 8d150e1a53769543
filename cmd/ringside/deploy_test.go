package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/cmd/internal/sidecar"
)

// The deploy/ folder cannot be run here (no Docker engine, no cluster), so these tests hold
// its files to the facts that matter: they parse, they agree with the configuration they
// ship, and the shutdown timings fit inside each other.

const deployDir = "../../deploy"

func TestExampleConfigsValidate(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(deployDir, "examples", "*.yaml"))
	if err != nil || len(paths) < 3 {
		t.Fatalf("want the file, consul and etcd examples, got %v (%v)", paths, err)
	}
	for _, p := range paths {
		if filepath.Base(p) == "services.yaml" {
			continue
		}
		t.Run(filepath.Base(p), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(p, data, func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("example does not validate:\n%v", err)
			}
			t.Chdir("../..") // the examples name files relative to the repository's root
			if err := sidecar.Check(cfg); err != nil {
				t.Fatalf("example is refused by the sidecar:\n%v", err)
			}
		})
	}
}

// k8sContainer holds the fields of a container this test checks.
type k8sContainer struct {
	Name  string   `yaml:"name"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop struct {
			Exec struct {
				Command []string `yaml:"command"`
			} `yaml:"exec"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sDoc struct {
	Kind string            `yaml:"kind"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int            `yaml:"terminationGracePeriodSeconds"`
				Containers                    []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func TestKubernetesManifestAgreesWithConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "ringside.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm, dep *k8sDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var d k8sDoc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("manifest does not parse: %v", err)
		}
		switch d.Kind {
		case "ConfigMap":
			cm = &d
		case "Deployment":
			dep = &d
		}
	}
	if cm == nil || dep == nil {
		t.Fatal("want a ConfigMap and a Deployment")
	}
	env := map[string]string{"POD_IP": "10.1.2.3", "POD_NAME": "web-abc"}
	cfg, err := config.Parse("configmap ringside.yaml", []byte(cm.Data["ringside.yaml"]),
		func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the ConfigMap's config does not validate:\n%v", err)
	}
	pod := dep.Spec.Template.Spec
	var app, side *k8sContainer
	for i := range pod.Containers {
		switch pod.Containers[i].Name {
		case "ringside":
			side = &pod.Containers[i]
		default:
			app = &pod.Containers[i]
		}
	}
	if side == nil || app == nil {
		t.Fatal("want an app container and a ringside container")
	}
	adminPort := portOf(t, cfg.Admin.Listen)
	if got := containerPort(side, "admin"); got != adminPort {
		t.Errorf("ringside containerPort admin = %d, config admin.listen port = %d", got, adminPort)
	}
	for name, p := range map[string]*k8sProbe{"readinessProbe": side.ReadinessProbe, "livenessProbe": side.LivenessProbe} {
		if p == nil {
			t.Errorf("ringside has no %s", name)
			continue
		}
		if probePort(t, side, p) != adminPort {
			t.Errorf("ringside %s port %v is not the admin port %d", name, p.HTTPGet.Port, adminPort)
		}
	}
	if side.ReadinessProbe != nil && side.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe path %q, want /readyz", side.ReadinessProbe.HTTPGet.Path)
	}
	if host, _, _ := net.SplitHostPort(cfg.Admin.Listen); host == "127.0.0.1" || host == "localhost" {
		t.Errorf("admin listens on %s: the kubelet's probes cannot reach loopback", cfg.Admin.Listen)
	}
	if cfg.Register == nil || containerPort(app, "http") != cfg.Register.Port {
		t.Errorf("register.port does not match the app's http containerPort %d", containerPort(app, "http"))
	}
	for _, e := range app.Env {
		if strings.HasPrefix(e.Value, "http://127.0.0.1:") {
			port := portOf(t, strings.TrimPrefix(e.Value, "http://"))
			found := false
			for _, u := range cfg.Upstreams {
				found = found || portOf(t, u.Listen) == port
			}
			if !found {
				t.Errorf("app env %s=%s points at no upstream listener", e.Name, e.Value)
			}
		}
	}
	grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second
	preStop := sleepOf(t, app.Lifecycle.PreStop.Exec.Command)
	switch {
	case cfg.Lifecycle.GracePeriod < cfg.Lifecycle.DrainDelay:
		t.Errorf("ringside grace_period %s < drain_delay %s", cfg.Lifecycle.GracePeriod, cfg.Lifecycle.DrainDelay)
	case grace < cfg.Lifecycle.GracePeriod:
		t.Errorf("terminationGracePeriodSeconds %s < ringside grace_period %s", grace, cfg.Lifecycle.GracePeriod)
	case preStop < cfg.Lifecycle.DrainDelay:
		t.Errorf("app preStop sleep %s < drain_delay %s: the app would stop while callers still arrive", preStop, cfg.Lifecycle.DrainDelay)
	case grace <= preStop:
		t.Errorf("terminationGracePeriodSeconds %s leaves no time after the app's preStop %s", grace, preStop)
	}
}

func TestDockerfileAndSystemdUnit(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := regexp.MustCompile(`(?m)^FROM `).FindAllIndex(df, -1)
	if len(stages) < 2 {
		t.Error("Dockerfile: want a multi-stage build")
	}
	final := string(df[stages[len(stages)-1][0]:])
	for _, want := range []string{"USER 65532", "COPY --from=build"} {
		if !strings.Contains(final, want) {
			t.Errorf("Dockerfile final stage lacks %q", want)
		}
	}
	if !strings.Contains(string(df), "CGO_ENABLED=0") {
		t.Error("Dockerfile: the binary must be static (CGO_ENABLED=0)")
	}
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "ringside.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/ringside -config", "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM", "TimeoutStopSec="} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("systemd unit lacks %q", want)
		}
	}
}

func portOf(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	return n
}

func containerPort(c *k8sContainer, name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return -1
}

func probePort(t *testing.T, c *k8sContainer, p *k8sProbe) int {
	switch v := p.HTTPGet.Port.(type) {
	case int:
		return v
	case string:
		return containerPort(c, v)
	}
	t.Fatalf("probe port %v of unknown form", p.HTTPGet.Port)
	return 0
}

func sleepOf(t *testing.T, cmd []string) time.Duration {
	if len(cmd) != 2 || cmd[0] != "sleep" {
		t.Fatalf("app preStop %v: want [sleep N]", cmd)
	}
	n, err := strconv.Atoi(cmd[1])
	if err != nil {
		t.Fatalf("app preStop %v: %v", cmd, err)
	}
	return time.Duration(n) * time.Second
}
