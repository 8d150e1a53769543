package discovery

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Health is the health of an endpoint as its registry reports it.
type Health uint8

// The health states, ordered from best to worst so that the worst of several checks is the
// largest value.
const (
	HealthPassing Health = iota
	HealthWarning
	HealthCritical
)

// String returns "passing", "warning" or "critical".
func (h Health) String() string {
	switch h {
	case HealthPassing:
		return "passing"
	case HealthWarning:
		return "warning"
	case HealthCritical:
		return "critical"
	}
	return "health(" + strconv.Itoa(int(h)) + ")"
}

// ErrBadHealth is returned by ParseHealth for a word it does not know.
var ErrBadHealth = errors.New("health must be passing, warning or critical")

// ParseHealth parses the words String returns, case-insensitively. An empty string is passing.
func ParseHealth(s string) (Health, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "passing", "":
		return HealthPassing, nil
	case "warning":
		return HealthWarning, nil
	case "critical":
		return HealthCritical, nil
	}
	return HealthCritical, fmt.Errorf("%q: %w", s, ErrBadHealth)
}

// Endpoint is one instance of a service. Values are treated as immutable once they are part
// of a Snapshot: Tags and Meta must not be modified.
type Endpoint struct {
	// ID is stable across updates for the same instance (Consul service ID plus node, the etcd
	// key suffix, the file entry's id). Routing state such as ejection is keyed by it.
	ID string
	// Address is host:port, ready to dial.
	Address string
	// Weight is >= 1: the weight for the endpoint's current health (for Consul, the service's
	// Weights.Passing or Weights.Warning).
	Weight int
	// Health is as the registry reports it.
	Health Health
	// Zone is the datacenter or zone, when known.
	Zone string
	Tags []string
	Meta map[string]string
}

// ErrBadEndpoint is wrapped by every error Endpoint.Validate returns.
var ErrBadEndpoint = errors.New("bad endpoint")

// Validate reports whether e can be routed to: a non-empty ID, an address of the form
// host:port with a port in 1..65535, and a weight of at least 1.
func (e Endpoint) Validate() error {
	if e.ID == "" {
		return fmt.Errorf("%w: empty id (address %q)", ErrBadEndpoint, e.Address)
	}
	if err := ValidateAddress(e.Address); err != nil {
		return fmt.Errorf("%w %q: %w", ErrBadEndpoint, e.ID, err)
	}
	if e.Weight < 1 {
		return fmt.Errorf("%w %q: weight %d, want >= 1", ErrBadEndpoint, e.ID, e.Weight)
	}
	if e.Health > HealthCritical {
		return fmt.Errorf("%w %q: %v, want passing, warning or critical", ErrBadEndpoint, e.ID, e.Health)
	}
	return nil
}

// ValidateAddress checks that addr is host:port with a non-empty host and a port in 1..65535.
func ValidateAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("address %q: empty host", addr)
	}
	if strings.ContainsAny(host, " \t\r\n/") {
		return fmt.Errorf("address %q: the host holds a space or a slash", addr)
	}
	return ValidatePort(port)
}

// ValidatePort checks that port is a decimal number in 1..65535, written without a sign or
// leading zeros (so that one backend has one spelling, and one endpoint ID).
func ValidatePort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] < '1' || port[0] > '9' {
		return fmt.Errorf("port %q: want a number in 1..65535", port)
	}
	return nil
}

// equal reports whether e and o describe the same endpoint in every field.
func (e Endpoint) equal(o Endpoint) bool {
	if e.ID != o.ID || e.Address != o.Address || e.Weight != o.Weight ||
		e.Health != o.Health || e.Zone != o.Zone ||
		len(e.Tags) != len(o.Tags) || len(e.Meta) != len(o.Meta) {
		return false
	}
	for i := range e.Tags {
		if e.Tags[i] != o.Tags[i] {
			return false
		}
	}
	for k, v := range e.Meta {
		if w, ok := o.Meta[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// clone returns a deep copy of e, so a snapshot shares nothing with its caller.
func (e Endpoint) clone() Endpoint {
	if e.Tags != nil {
		e.Tags = append([]string(nil), e.Tags...)
	}
	if e.Meta != nil {
		m := make(map[string]string, len(e.Meta))
		for k, v := range e.Meta {
			m[k] = v
		}
		e.Meta = m
	}
	return e
}
