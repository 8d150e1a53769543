package consul

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/ringside-proxy/ringside/discovery"
)

// ErrMalformed is wrapped by the error reported for a catalog entry that cannot be turned
// into an endpoint.
var ErrMalformed = errors.New("malformed consul entry")

// EndpointID returns the ID of the endpoint of the service instance serviceID on node:
// "<service ID>@<node name>", for example "cart-7f9c@ip-10-0-3-17". A service ID is unique
// only on its own node (two nodes may both run "cart-1"); with the node name it is unique in
// the datacenter, and stable for as long as the instance stays registered.
func EndpointID(serviceID, node string) string {
	return serviceID + "@" + node
}

// toEndpoint maps one entry of /v1/health/service onto an endpoint:
//
//   - ID: EndpointID(Service.ID, Node.Node);
//   - Address: Service.Address, or Node.Address when that is empty, joined with Service.Port;
//   - Health: the worst of the entry's checks, node checks included (maintenance and unknown
//     statuses count as critical);
//   - Weight: Service.Weights.Passing when passing, .Warning when warning, 1 when critical,
//     and at least 1;
//   - Zone: the node's datacenter, else defaultZone;
//   - Tags and Meta: the service's, shared with the entry (discovery.NewSnapshot copies them).
//
// An entry without service or node, ID, host or a port in 1..65535 is an error wrapping
// ErrMalformed; key then names the entry as well as it can, for the log.
func toEndpoint(e *api.ServiceEntry, defaultZone string) (ep discovery.Endpoint, key string, err error) {
	if e == nil || e.Service == nil || e.Node == nil {
		return ep, "(incomplete entry)", fmt.Errorf("%w: no service or node", ErrMalformed)
	}
	s, n := e.Service, e.Node
	key = EndpointID(s.ID, n.Node)
	if s.ID == "" || n.Node == "" {
		return ep, key, fmt.Errorf("%w: empty service id or node name", ErrMalformed)
	}
	host := s.Address
	if host == "" {
		host = n.Address
	}
	if err := checkHost(host); err != nil {
		return ep, key, err
	}
	if s.Port < 1 || s.Port > 65535 {
		return ep, key, fmt.Errorf("%w: port %d, want 1..65535", ErrMalformed, s.Port)
	}
	health := checksHealth(e.Checks)
	zone := n.Datacenter
	if zone == "" {
		zone = defaultZone
	}
	return discovery.Endpoint{
		ID:      key,
		Address: net.JoinHostPort(host, strconv.Itoa(s.Port)),
		Weight:  weightFor(s.Weights, health),
		Health:  health,
		Zone:    zone,
		Tags:    s.Tags,
		Meta:    s.Meta,
	}, key, nil
}

// checkHost accepts a host name or an IP address, and refuses what would make a wrong
// host:port once joined with the port: nothing at all, a host that already carries a port,
// a path or a URL.
func checkHost(host string) error {
	switch {
	case host == "":
		return fmt.Errorf("%w: no address (neither service nor node has one)", ErrMalformed)
	case strings.ContainsAny(host, "/@ \t\r\n[]"):
		return fmt.Errorf("%w: address %q is not a host", ErrMalformed, host)
	case strings.Contains(host, ":"):
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return fmt.Errorf("%w: address %q is neither a host nor an IPv6 address", ErrMalformed, host)
		}
	}
	return nil
}

// checksHealth returns the worst status among checks: passing when there are none,
// critical for a maintenance check or a status it does not know.
func checksHealth(checks api.HealthChecks) discovery.Health {
	h := discovery.HealthPassing
	for _, c := range checks {
		if c == nil {
			continue
		}
		if c.CheckID == api.NodeMaint || strings.HasPrefix(c.CheckID, api.ServiceMaintPrefix) {
			return discovery.HealthCritical
		}
		switch c.Status {
		case api.HealthPassing:
		case api.HealthWarning:
			h = discovery.HealthWarning
		default: // critical, maintenance, or something newer than this code
			return discovery.HealthCritical
		}
	}
	return h
}

// weightFor returns the ring weight for an instance in health h: Consul's weight for that
// state, at least 1 (an instance registered through the catalog may have none).
func weightFor(w api.AgentWeights, h discovery.Health) int {
	n := 1
	switch h {
	case discovery.HealthPassing:
		n = w.Passing
	case discovery.HealthWarning:
		n = w.Warning
	}
	return max(n, 1)
}

// keeps reports whether the policy keeps an instance in health h.
func (p HealthPolicy) keeps(h discovery.Health) bool {
	switch p {
	case PassingOnly:
		return h == discovery.HealthPassing
	case AnyHealth:
		return true
	}
	return h != discovery.HealthCritical
}

// String returns the policy's name as a configuration file would spell it.
func (p HealthPolicy) String() string {
	switch p {
	case PassingOrWarning:
		return "passing_or_warning"
	case PassingOnly:
		return "passing_only"
	case AnyHealth:
		return "any"
	}
	return "health_policy(" + strconv.Itoa(int(p)) + ")"
}
