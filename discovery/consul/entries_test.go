package consul

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ringside-proxy/ringside/discovery"
)

// entry builds a health entry of service web on node n1 in dc1.
func entry(id, addr string, port int, mod func(*api.ServiceEntry)) *api.ServiceEntry {
	e := &api.ServiceEntry{
		Node: &api.Node{Node: "n1", Address: "10.0.0.1", Datacenter: "dc1"},
		Service: &api.AgentService{
			ID: id, Service: "web", Address: addr, Port: port,
			Tags:    []string{"v1"},
			Meta:    map[string]string{"version": "1"},
			Weights: api.AgentWeights{Passing: 3, Warning: 1},
		},
		Checks: api.HealthChecks{
			{CheckID: "serfHealth", Status: api.HealthPassing},
			{CheckID: "service:" + id, Status: api.HealthPassing},
		},
	}
	if mod != nil {
		mod(e)
	}
	return e
}

func withStatus(status string) func(*api.ServiceEntry) {
	return func(e *api.ServiceEntry) { e.Checks[1].Status = status }
}

func TestToEndpoint(t *testing.T) {
	tests := []struct {
		name    string
		give    *api.ServiceEntry
		want    discovery.Endpoint
		wantErr bool
	}{
		{
			name: "service address and passing weight",
			give: entry("web-1", "10.1.1.1", 8080, nil),
			want: discovery.Endpoint{ID: "web-1@n1", Address: "10.1.1.1:8080", Weight: 3,
				Health: discovery.HealthPassing, Zone: "dc1", Tags: []string{"v1"}, Meta: map[string]string{"version": "1"}},
		},
		{
			name: "node address when the service has none",
			give: entry("web-1", "", 8080, nil),
			want: discovery.Endpoint{ID: "web-1@n1", Address: "10.0.0.1:8080", Weight: 3,
				Health: discovery.HealthPassing, Zone: "dc1", Tags: []string{"v1"}, Meta: map[string]string{"version": "1"}},
		},
		{
			name: "warning uses the warning weight",
			give: entry("web-1", "10.1.1.1", 80, withStatus(api.HealthWarning)),
			want: discovery.Endpoint{ID: "web-1@n1", Address: "10.1.1.1:80", Weight: 1,
				Health: discovery.HealthWarning, Zone: "dc1", Tags: []string{"v1"}, Meta: map[string]string{"version": "1"}},
		},
		{
			name: "critical has weight 1",
			give: entry("web-1", "10.1.1.1", 80, func(e *api.ServiceEntry) {
				e.Checks[1].Status = api.HealthCritical
				e.Service.Weights = api.AgentWeights{Passing: 5, Warning: 4}
			}),
			want: discovery.Endpoint{ID: "web-1@n1", Address: "10.1.1.1:80", Weight: 1,
				Health: discovery.HealthCritical, Zone: "dc1", Tags: []string{"v1"}, Meta: map[string]string{"version": "1"}},
		},
		{
			name: "ipv6, no weights, zone from config, no tags",
			give: entry("web-6", "fd00::7", 443, func(e *api.ServiceEntry) {
				e.Node.Datacenter = ""
				e.Service.Weights = api.AgentWeights{}
				e.Service.Tags, e.Service.Meta = nil, nil
			}),
			want: discovery.Endpoint{ID: "web-6@n1", Address: "[fd00::7]:443", Weight: 1,
				Health: discovery.HealthPassing, Zone: "default-zone"},
		},
		{name: "no service", give: &api.ServiceEntry{Node: &api.Node{Node: "n1"}}, wantErr: true},
		{name: "no node", give: &api.ServiceEntry{Service: &api.AgentService{ID: "x", Port: 1}}, wantErr: true},
		{name: "nil entry", give: nil, wantErr: true},
		{name: "empty id", give: entry("", "10.1.1.1", 80, nil), wantErr: true},
		{name: "no address at all", give: entry("web-1", "", 80, func(e *api.ServiceEntry) { e.Node.Address = "" }), wantErr: true},
		{name: "port 0", give: entry("web-1", "10.1.1.1", 0, nil), wantErr: true},
		{name: "port too large", give: entry("web-1", "10.1.1.1", 65536, nil), wantErr: true},
		{name: "negative port", give: entry("web-1", "10.1.1.1", -1, nil), wantErr: true},
		{name: "address with a port", give: entry("web-1", "10.1.1.1:90", 80, nil), wantErr: true},
		{name: "address is a URL", give: entry("web-1", "http://x/", 80, nil), wantErr: true},
		{name: "address with a space", give: entry("web-1", "a b", 80, nil), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := toEndpoint(tt.give, "default-zone")
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("toEndpoint: err %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("toEndpoint: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("toEndpoint =\n %+v\nwant\n %+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("endpoint does not validate: %v", err)
			}
		})
	}
}

func TestChecksHealth(t *testing.T) {
	c := func(id, status string) *api.HealthCheck { return &api.HealthCheck{CheckID: id, Status: status} }
	tests := []struct {
		name string
		give api.HealthChecks
		want discovery.Health
	}{
		{"no checks", nil, discovery.HealthPassing},
		{"all passing", api.HealthChecks{c("serfHealth", "passing"), c("s", "passing")}, discovery.HealthPassing},
		{"one warning", api.HealthChecks{c("serfHealth", "passing"), c("s", "warning")}, discovery.HealthWarning},
		{"warning then critical", api.HealthChecks{c("a", "warning"), c("b", "critical")}, discovery.HealthCritical},
		{"node check critical", api.HealthChecks{c("serfHealth", "critical"), c("s", "passing")}, discovery.HealthCritical},
		{"node maintenance", api.HealthChecks{c(api.NodeMaint, "critical")}, discovery.HealthCritical},
		{"service maintenance", api.HealthChecks{c(api.ServiceMaintPrefix+"web-1", "critical"), c("s", "passing")}, discovery.HealthCritical},
		{"maintenance status", api.HealthChecks{c("s", api.HealthMaint)}, discovery.HealthCritical},
		{"unknown status", api.HealthChecks{c("s", "bogus")}, discovery.HealthCritical},
		{"nil check ignored", api.HealthChecks{nil, c("s", "warning")}, discovery.HealthWarning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checksHealth(tt.give); got != tt.want {
				t.Errorf("checksHealth = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNextWaitIndex(t *testing.T) {
	tests := []struct {
		name       string
		asked, got uint64
		want       uint64
	}{
		{"first read", 0, 42, 42},
		{"moved on", 42, 57, 57},
		{"unchanged", 57, 57, 57},
		{"went backwards: start over", 57, 12, 0},
		{"zero index is kept at 1", 0, 0, 1},
		{"backwards to zero", 9, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextWaitIndex(tt.asked, tt.got); got != tt.want {
				t.Errorf("nextWaitIndex(%d, %d) = %d, want %d", tt.asked, tt.got, got, tt.want)
			}
		})
	}
}

func TestHealthPolicyKeeps(t *testing.T) {
	all := []discovery.Health{discovery.HealthPassing, discovery.HealthWarning, discovery.HealthCritical}
	tests := []struct {
		give HealthPolicy
		want []bool // for passing, warning, critical
	}{
		{PassingOrWarning, []bool{true, true, false}},
		{PassingOnly, []bool{true, false, false}},
		{AnyHealth, []bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.give.String(), func(t *testing.T) {
			for i, h := range all {
				if got := tt.give.keeps(h); got != tt.want[i] {
					t.Errorf("%v.keeps(%v) = %v, want %v", tt.give, h, got, tt.want[i])
				}
			}
		})
	}
}

// TestPublishSkipsMalformed checks that malformed entries are skipped one by one, reported
// once while they stay malformed, and never take the good entries with them.
func TestPublishSkipsMalformed(t *testing.T) {
	logger, logs := observedLogger()
	obs := &countingObserver{}
	src, err := NewSource(Config{Address: "127.0.0.1:1"}, logger, obs)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	w := newServiceWatch(src, "web", offerTo(discovery.Dedup(rec.update)))
	entries := []*api.ServiceEntry{
		entry("web-1", "10.1.1.1", 80, nil),
		entry("web-bad-port", "10.1.1.2", 0, nil),
		entry("web-2", "10.1.1.3", 80, nil),
		entry("web-no-addr", "", 80, func(e *api.ServiceEntry) { e.Node.Address = "" }),
	}
	w.publish(entries, 10, time.Now())
	w.publish(entries, 11, time.Now()) // still malformed: not reported again

	snap := rec.last("web")
	if snap == nil || len(snap.Endpoints) != 2 || snap.Endpoints[0].ID != "web-1@n1" || snap.Endpoints[1].ID != "web-2@n1" {
		t.Fatalf("snapshot: %s, want web-1@n1 and web-2@n1", describe(snap))
	}
	if got, want := obs.malformedEntries(), []string{"web-bad-port@n1", "web-no-addr@n1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Malformed reports %v, want %v", got, want)
	}
	if n := logs.FilterMessage("consul entry skipped").Len(); n != 2 {
		t.Errorf("%d log lines for skipped entries, want 2", n)
	}
	if n := rec.count("web"); n != 1 {
		t.Errorf("%d snapshots delivered, want 1 (the second publish changed nothing)", n)
	}

	// Fixed, then broken again: reported again.
	entries[1] = entry("web-bad-port", "10.1.1.2", 81, nil)
	w.publish(entries, 12, time.Now())
	entries[1] = entry("web-bad-port", "10.1.1.2", 0, nil)
	w.publish(entries, 13, time.Now())
	if got := len(obs.malformedEntries()); got != 3 {
		t.Errorf("%d Malformed reports after the entry broke again, want 3", got)
	}
}
