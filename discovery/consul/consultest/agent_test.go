package consultest

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestStartRestart checks the agent serves its API, and comes back empty on the same port
// after Restart, as an agent that lost its state does.
func TestStartRestart(t *testing.T) {
	start := time.Now()
	a := Start(t)
	t.Logf("agent on %s up in %v", a.Addr(), time.Since(start))
	c := a.Client()
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "s1", Name: "s", Port: 80}); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 5*time.Second, "s1 in the catalog", func() bool {
		entries, _, err := c.Health().Service("s", "", false, nil)
		return err == nil && len(entries) == 1
	})

	a.Stop()
	if _, err := c.Status().Leader(); err == nil {
		t.Fatal("the API still answers after Stop")
	}
	start = time.Now()
	a.Restart()
	t.Logf("agent restarted in %v", time.Since(start))
	entries, _, err := c.Health().Service("s", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("%d instances of s after Restart, want 0 (a -dev agent keeps no state)", len(entries))
	}
	a.Restart() // from running, too
	if _, err := c.Status().Leader(); err != nil {
		t.Errorf("API after the second Restart: %v", err)
	}
}

// TestParallelAgents checks that two agents run side by side on their own ports.
func TestParallelAgents(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("both agents on %s", a.Addr())
	}
	for _, ag := range []*Agent{a, b} {
		if _, err := ag.Client().Agent().Self(); err != nil {
			t.Errorf("agent %s: %v", ag.Addr(), err)
		}
	}
}
