package file

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/ringside-proxy/ringside/discovery"
)

// MaxWeight is the largest weight the file accepts, as for DNS SRV records: a guard against a
// typo that would make one endpoint take over the ring.
const MaxWeight = 65535

// ParseError is the error Parse returns: where in the file the problem is, and what it is.
type ParseError struct {
	File string
	// Line is 1-based; 0 when the YAML parser did not say.
	Line int
	// Path names the offending value, such as services.cart[1].address; "" for a syntax error.
	Path string
	Err  error
}

// Error formats e as file:line: path: problem.
func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying problem, such as discovery.ErrBadHealth.
func (e *ParseError) Unwrap() error { return e.Err }

// endpointFields are the keys an endpoint may have, for the unknown-field message.
const endpointFields = "id, address, weight, health, zone, tags, meta"

// Parse decodes a services file (YAML or JSON) named name, which is used in error messages
// only. It returns each service's endpoints in file order; a service listed with no endpoints
// maps to an empty slice. Every endpoint it returns passes Endpoint.Validate, and IDs are
// unique within a service. Errors are *ParseError. Parse is safe for concurrent use.
func Parse(name string, data []byte) (map[string][]discovery.Endpoint, error) {
	p := &parser{name: name, budget: 1000 + 10*len(data)}
	root, err := p.document(data)
	if err != nil {
		return nil, err
	}
	fields, err := p.mapping(root, "")
	if err != nil {
		return nil, err
	}
	var services *yaml.Node
	for _, f := range fields {
		if f.name != "services" {
			return nil, p.errorf(f.key, join("", f.name), "unknown field (want services)")
		}
		services = f.value
	}
	if services == nil {
		return nil, p.errorf(root, "", "no services key (write \"services: {}\" to list none)")
	}
	return p.services(services)
}

// parser walks a decoded YAML tree by hand, rather than unmarshalling into structs, so that
// every error can name its line and path.
type parser struct {
	name string
	// budget is how many more nodes the walk may visit; aliases can make a small document
	// expand into a huge tree, or a cycle, and this bounds the work.
	budget int
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &ParseError{File: p.name, Line: line, Path: path, Err: fmt.Errorf(format, args...)}
}

// document decodes data into a node tree and returns its root, which is never nil.
func (p *parser) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(jsonForYAML(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, p.errorf(nil, "", "empty file (write \"services: {}\" to list no services)")
		}
		return nil, p.syntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, p.syntaxError(err)
		}
		return nil, p.errorf(&extra, "", "a second YAML document; want one")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, p.errorf(&doc, "", "empty file (write \"services: {}\" to list no services)")
	}
	return doc.Content[0], nil
}

// syntaxError turns yaml.v3's "yaml: line 3: problem" into a ParseError for line 3.
func (p *parser) syntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, problem, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, problem
			}
		}
	}
	return &ParseError{File: p.name, Line: line, Err: errors.New(msg)}
}

// services decodes the value of the services key.
func (p *parser) services(n *yaml.Node) (map[string][]discovery.Endpoint, error) {
	out := make(map[string][]discovery.Endpoint)
	r, err := p.resolve(n, "services")
	if err != nil || isNull(r) {
		return out, err
	}
	fields, err := p.mapping(n, "services")
	if err != nil {
		return nil, err
	}
	for _, f := range fields {
		path := join("services", f.name)
		if f.name == "" {
			return nil, p.errorf(f.key, path, "empty service name")
		}
		eps, err := p.endpoints(f.value, path)
		if err != nil {
			return nil, err
		}
		out[f.name] = eps
	}
	return out, nil
}

// endpoints decodes the list of one service's endpoints, checking that IDs are unique.
func (p *parser) endpoints(n *yaml.Node, path string) ([]discovery.Endpoint, error) {
	r, err := p.resolve(n, path)
	if err != nil {
		return nil, err
	}
	if isNull(r) {
		return []discovery.Endpoint{}, nil
	}
	if r.Kind != yaml.SequenceNode {
		return nil, p.errorf(n, path, "want a list of endpoints, got %s", describe(r))
	}
	type first struct {
		path string
		line int
	}
	eps := make([]discovery.Endpoint, 0, len(r.Content))
	seen := make(map[string]first, len(r.Content))
	for i, item := range r.Content {
		itemPath := path + "[" + strconv.Itoa(i) + "]"
		e, blame, blamePath, err := p.endpoint(item, itemPath)
		if err != nil {
			return nil, err
		}
		if f, dup := seen[e.ID]; dup {
			return nil, p.errorf(blame, blamePath, "duplicate id %q (also %s, line %d)", e.ID, f.path, f.line)
		}
		seen[e.ID] = first{path: itemPath, line: blame.Line}
		eps = append(eps, e)
	}
	return eps, nil
}

// endpoint decodes one endpoint. It also returns the node and path that gave the endpoint its
// ID (the id field, or the address it defaults to), for a duplicate-id message.
func (p *parser) endpoint(n *yaml.Node, path string) (discovery.Endpoint, *yaml.Node, string, error) {
	e := discovery.Endpoint{Weight: 1}
	fields, err := p.mapping(n, path)
	if err != nil {
		return e, nil, "", err
	}
	var idNode, addrNode *yaml.Node
	for _, f := range fields {
		fp := join(path, f.name)
		switch f.name {
		case "id":
			e.ID, err = p.str(f.value, fp)
			idNode = f.value
		case "address":
			e.Address, err = p.address(f.value, fp)
			addrNode = f.value
		case "weight":
			e.Weight, err = p.weight(f.value, fp)
		case "health":
			e.Health, err = p.health(f.value, fp)
		case "zone":
			e.Zone, err = p.str(f.value, fp)
		case "tags":
			e.Tags, err = p.strList(f.value, fp)
		case "meta":
			e.Meta, err = p.strMap(f.value, fp)
		default:
			err = p.errorf(f.key, fp, "unknown field (want one of %s)", endpointFields)
		}
		if err != nil {
			return e, nil, "", err
		}
	}
	if addrNode == nil {
		return e, nil, "", p.errorf(n, path, "no address")
	}
	blame, blamePath := idNode, join(path, "id")
	if e.ID == "" {
		e.ID = e.Address
		blame, blamePath = addrNode, join(path, "address")
	}
	// The checks above should imply Validate; this keeps Parse's promise if they ever drift.
	if err := e.Validate(); err != nil {
		return e, nil, "", p.errorf(n, path, "%w", err)
	}
	return e, blame, blamePath, nil
}

// address decodes host:port, with a port in 1..65535 and a host with no spaces.
func (p *parser) address(n *yaml.Node, path string) (string, error) {
	s, err := p.str(n, path)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", p.errorf(n, path, "empty address, want host:port")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", p.errorf(n, path, "%w", err)
	}
	if host == "" {
		return "", p.errorf(n, path, "%q: empty host", s)
	}
	if strings.IndexFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "", p.errorf(n, path, "host %q: has a space or control character", host)
	}
	if err := discovery.ValidatePort(port); err != nil {
		return "", p.errorf(n, path, "%w", err)
	}
	return s, nil
}

// weight decodes a YAML integer in 1..MaxWeight; null means the default, 1.
func (p *parser) weight(n *yaml.Node, path string) (int, error) {
	r, err := p.scalar(n, path)
	if err != nil {
		return 0, err
	}
	if isNull(r) {
		return 1, nil
	}
	var w int64
	if r.ShortTag() != "!!int" || r.Decode(&w) != nil || w < 1 || w > MaxWeight {
		return 0, p.errorf(n, path, "%q: want a whole number in 1..%d", r.Value, MaxWeight)
	}
	return int(w), nil
}

// health decodes passing, warning or critical; null or empty means passing.
func (p *parser) health(n *yaml.Node, path string) (discovery.Health, error) {
	s, err := p.str(n, path)
	if err != nil {
		return 0, err
	}
	h, err := discovery.ParseHealth(s)
	if err != nil {
		return 0, p.errorf(n, path, "%w", err)
	}
	return h, nil
}
