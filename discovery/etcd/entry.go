package etcd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ringside-proxy/ringside/discovery"
)

// MaxWeight is the largest weight an entry may carry. The ring places points in proportion to
// weight, so an absurd weight would cost memory for every proxy that watches the service.
const MaxWeight = 10000

// ErrMalformed is wrapped by every error about a registry entry the source cannot use. Such an
// entry is skipped; the rest of its service is not affected.
var ErrMalformed = errors.New("malformed etcd entry")

// entry is the JSON value stored at <prefix>/<service>/<id>; see the package doc. Unknown
// fields are ignored, so writers may add fields without breaking older readers.
type entry struct {
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Weight  int               `json:"weight,omitempty"`
	Tags    []string          `json:"tags,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
	Health  string            `json:"health,omitempty"`
	Zone    string            `json:"zone,omitempty"`
}

// servicePrefix returns the key prefix that holds the entries of service, with its trailing
// slash, so that "cart" does not also match "cart2".
func servicePrefix(prefix, service string) string {
	return prefix + "/" + service + "/"
}

// entryKey returns the key of one endpoint.
func entryKey(prefix, service, id string) string {
	return servicePrefix(prefix, service) + id
}

// validateName checks a service name or endpoint id: one non-empty path segment of printable
// characters.
func validateName(what, name string) error {
	if name == "" {
		return fmt.Errorf("empty %s", what)
	}
	for _, r := range name {
		if r == '/' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("%s %q: must be one path segment without spaces or control characters", what, name)
		}
	}
	return nil
}

// endpointID returns the endpoint id in key, which must start with servicePrefix. A key with
// an empty id or an extra path segment is malformed: it was not written by this layout.
func endpointID(svcPrefix, key string) (string, error) {
	id, ok := strings.CutPrefix(key, svcPrefix)
	if !ok {
		return "", fmt.Errorf("%w: key %q outside %q", ErrMalformed, key, svcPrefix)
	}
	if id == "" {
		return "", fmt.Errorf("%w: key %q: empty endpoint id", ErrMalformed, key)
	}
	if strings.Contains(id, "/") {
		return "", fmt.Errorf("%w: key %q: extra path segment after the endpoint id", ErrMalformed, key)
	}
	return id, nil
}

// decodeEntry turns the value stored for endpoint id into an Endpoint. The Endpoint owns its
// Tags and Meta (they are freshly decoded), and no one modifies them afterwards.
func decodeEntry(id string, value []byte) (discovery.Endpoint, error) {
	var e entry
	if err := json.Unmarshal(value, &e); err != nil {
		return discovery.Endpoint{}, fmt.Errorf("%w %q: %w", ErrMalformed, id, err)
	}
	if err := validateHost(e.Address); err != nil {
		return discovery.Endpoint{}, fmt.Errorf("%w %q: %w", ErrMalformed, id, err)
	}
	if e.Port < 1 || e.Port > 65535 {
		return discovery.Endpoint{}, fmt.Errorf("%w %q: port %d, want 1..65535", ErrMalformed, id, e.Port)
	}
	switch {
	case e.Weight == 0:
		e.Weight = 1
	case e.Weight < 0 || e.Weight > MaxWeight:
		return discovery.Endpoint{}, fmt.Errorf("%w %q: weight %d, want 1..%d", ErrMalformed, id, e.Weight, MaxWeight)
	}
	health, err := discovery.ParseHealth(e.Health)
	if err != nil {
		return discovery.Endpoint{}, fmt.Errorf("%w %q: %w", ErrMalformed, id, err)
	}
	return discovery.Endpoint{
		ID:      id,
		Address: net.JoinHostPort(e.Address, strconv.Itoa(e.Port)),
		Weight:  e.Weight,
		Health:  health,
		Zone:    e.Zone,
		Tags:    e.Tags,
		Meta:    e.Meta,
	}, nil
}

// validateHost accepts an IP address (IPv6 with or without a zone) or a DNS name. It refuses
// anything that would make host:port ambiguous, such as an address that already has a port.
func validateHost(h string) error {
	if h == "" {
		return errors.New("empty address")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("address %q: longer than 253 characters", h)
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("address %q: want an IP address or a host name", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("address %q: want an IP address or a host name", h)
			}
		}
	}
	return nil
}

// encodeEntry is the value a Registrar writes for reg at the given health: the weight is the
// registration's weight for that health (Weights.Warning while warning, else Weights.Passing,
// 1 when unset).
func encodeEntry(reg discovery.Registration, health discovery.Health) ([]byte, error) {
	weight := reg.Weights.Passing
	if health == discovery.HealthWarning {
		weight = reg.Weights.Warning
	}
	e := entry{
		Address: reg.Address,
		Port:    reg.Port,
		Weight:  max(weight, 1),
		Tags:    reg.Tags,
		Meta:    reg.Meta,
		Health:  health.String(),
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode etcd entry %q: %w", reg.ID, err)
	}
	return b, nil
}
