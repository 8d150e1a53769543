package file

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/ringside-proxy/ringside/discovery"
)

// ErrEdit is wrapped by the errors of an Editor that come from the request or the file's
// shape, not from the filesystem.
var ErrEdit = errors.New("services file edit")

// Editor adds, replaces and removes endpoints in a services file, for the admin API. The file
// stays the source of truth: an edit is read, changed, checked with Parse and written whole to
// a temporary file that is renamed over the old one (so a Source never sees it half-written),
// and the Source's watcher applies it as it would a hand edit. Comments and the order of
// entries are kept; a file written as JSON comes back as YAML (which the Source reads alike),
// and a service written with YAML anchors or aliases is refused (edit it by hand).
//
// Edits through one Editor are serialised; an edit by hand at the same moment may be lost,
// as with any two writers.
type Editor struct {
	path string
	mu   sync.Mutex
}

// NewEditor returns an Editor of the services file at path.
func NewEditor(path string) *Editor { return &Editor{path: path} }

// Put adds e to service (creating the service if the file has none) or replaces the endpoint
// of service whose ID is e.ID; e.ID must be set and e must pass Validate. It reports whether
// the endpoint is new.
func (ed *Editor) Put(service string, e discovery.Endpoint) (bool, error) {
	if e.ID == "" || service == "" {
		return false, fmt.Errorf("%w: the service and the endpoint id must not be empty", ErrEdit)
	}
	if err := e.Validate(); err != nil {
		return false, fmt.Errorf("%w: %w", ErrEdit, err)
	}
	created := false
	err := ed.edit(func(list *yaml.Node, at int) error {
		n := endpointNode(e)
		if at < 0 {
			list.Content = append(list.Content, n)
			created = true
		} else {
			list.Content[at] = n
		}
		return nil
	}, service, e.ID, true)
	return created, err
}

// Delete removes the endpoint of service whose ID is id; it reports whether there was one.
func (ed *Editor) Delete(service, id string) (bool, error) {
	found := false
	err := ed.edit(func(list *yaml.Node, at int) error {
		if at >= 0 {
			list.Content = slices.Delete(list.Content, at, at+1)
			found = true
		}
		return nil
	}, service, id, false)
	if err == errNoService {
		return false, nil
	}
	return found, err
}

// errNoService: the file does not list the service, and the edit does not create it.
var errNoService = errors.New("no such service")

// edit runs change on service's endpoint list and the index of the endpoint with ID id in it
// (-1 if none), then checks and writes the file, unless nothing changed.
func (ed *Editor) edit(change func(list *yaml.Node, at int) error, service, id string, create bool) error {
	ed.mu.Lock()
	defer ed.mu.Unlock()
	data, err := os.ReadFile(ed.path)
	if err != nil {
		return err
	}
	before, err := Parse(ed.path, data)
	if err != nil {
		return fmt.Errorf("%w: the services file is invalid now; fix it first: %w", ErrEdit, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(jsonForYAML(data), &doc); err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return fmt.Errorf("%w: cannot read the services file as one YAML document", ErrEdit)
	}
	services := valueOf(doc.Content[0], "services")
	if services == nil || services.Kind != yaml.MappingNode {
		return fmt.Errorf("%w: services is not a plain mapping (anchors, aliases or flow style?); edit it by hand", ErrEdit)
	}
	list := valueOf(services, service)
	switch {
	case list == nil && !create:
		return errNoService
	case list == nil:
		list = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		services.Content = append(services.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: service}, list)
	case list.Kind == yaml.ScalarNode && list.Tag == "!!null":
		list.Kind, list.Tag, list.Value = yaml.SequenceNode, "!!seq", ""
	case list.Kind != yaml.SequenceNode:
		return fmt.Errorf("%w: service %q is not a plain list (an alias?); edit it by hand", ErrEdit, service)
	}
	services.Style, list.Style = 0, 0 // a flow-style "services: {}" grows into block style
	if len(before[service]) != len(list.Content) {
		return fmt.Errorf("%w: service %q has entries that are not plain mappings; edit it by hand", ErrEdit, service)
	}
	at := slices.IndexFunc(before[service], func(e discovery.Endpoint) bool { return e.ID == id })
	if err := change(list, at); err != nil {
		return err
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrEdit, err)
	}
	if _, err := Parse(ed.path, out); err != nil {
		return fmt.Errorf("%w: the edit would make the file invalid: %w", ErrEdit, err)
	}
	return writeAtomic(ed.path, out)
}

// valueOf returns the value of key in mapping m, or nil.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// endpointNode returns e as a services-file entry, leaving defaults out.
func endpointNode(e discovery.Endpoint) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
	add := func(k string, v *yaml.Node) {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, v)
	}
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	add("id", str(e.ID))
	add("address", str(e.Address))
	if e.Weight > 1 {
		add("weight", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(e.Weight)})
	}
	if e.Health != discovery.HealthPassing {
		add("health", str(e.Health.String()))
	}
	if e.Zone != "" {
		add("zone", str(e.Zone))
	}
	if len(e.Tags) > 0 {
		tags := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, t := range e.Tags {
			tags.Content = append(tags.Content, str(t))
		}
		add("tags", tags)
	}
	if len(e.Meta) > 0 {
		meta := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
		keys := make([]string, 0, len(e.Meta))
		for k := range e.Meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			meta.Content = append(meta.Content, str(k), str(e.Meta[k]))
		}
		add("meta", meta)
	}
	return n
}

// writeAtomic replaces path with data: a temporary file in the same directory, synced, given
// path's mode and (as far as this process may) its owner, renamed over it, the directory
// synced. A symbolic link is followed: the file it points to is replaced, and the link stays.
func writeAtomic(path string, data []byte) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	mode := os.FileMode(0o644)
	uid, gid := -1, -1
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
		uid, gid = fileOwner(fi)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if uid >= 0 {
		_ = tmp.Chown(uid, gid) // best effort: only root may give a file away
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil { // the rename itself survives a crash
		_ = d.Sync()
		d.Close()
	}
	return nil
}
