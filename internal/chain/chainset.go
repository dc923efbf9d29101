package chain

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/relaychain/relaychain/internal/daemon"
)

// Kinds are the daemons built on this package, in the order of the tree
// from the root out.
var Kinds = []Kind{EPProxy, Relay, GWProxy, EventSink}

// KindOf returns the kind whose configuration file is named name
// ("relay.yaml" is a relay's), and whether there is one.
func KindOf(name string) (Kind, bool) {
	for _, k := range Kinds {
		if name == k.Name+".yaml" {
			return k, true
		}
	}
	return Kind{}, false
}

// Set is the configurations of a whole chain, one per node, as an admin
// host holds them: for checking that they agree (Check) and for the
// firewall rules they need (Crossings). See ExampleLoadSet.
type Set struct {
	// Nodes are the configurations, in the order they were found.
	Nodes []*Config
}

// LoadSet loads the configurations of a chain from paths, each an
// instance folder holding one NAME.yaml (the folders of configs/example),
// a folder of such folders (configs/example itself), or a NAME.yaml file.
// The files are loaded with SkipTLSFiles: the TLS files they name need not
// be on this host, and nothing loaded may run. Every problem of every file
// is reported at once, each as "FILE:LINE: KEY: problem".
func LoadSet(paths ...string) (*Set, error) {
	if len(paths) == 0 {
		return nil, errors.New("no configuration given: name the instance folders of the chain, or the folder that holds them")
	}
	var files []string
	var errs []error
	seen := map[string]bool{}
	for _, p := range paths {
		found, err := findConfigs(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range found {
			abs, err := filepath.Abs(f)
			if err != nil {
				abs = f
			}
			if !seen[abs] {
				seen[abs] = true
				files = append(files, f)
			}
		}
	}
	s := &Set{}
	for _, f := range files {
		k, _ := KindOf(filepath.Base(f))
		c, err := LoadWith(k, f, LoadOptions{SkipTLSFiles: true})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Nodes = append(s.Nodes, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// findConfigs returns the configuration files that path names: itself, the
// one NAME.yaml in it, or the one in each of its folders.
func findConfigs(path string) ([]string, error) {
	fail := func(format string, args ...any) error {
		return &daemon.ConfigError{File: path, Err: fmt.Errorf(format, args...)}
	}
	fi, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fail("cannot read: %w", err)
	}
	if !fi.IsDir() {
		if _, ok := KindOf(filepath.Base(path)); !ok {
			return nil, fail("not a configuration: its name is not %s", fileNames())
		}
		return []string{path}, nil
	}
	own, err := instanceConfig(path)
	if err != nil || own != "" {
		if err != nil {
			return nil, fail("%w", err)
		}
		return []string{own}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fail("cannot read: %w", err)
	}
	var out []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(path, e.Name())
		f, err := instanceConfig(sub)
		switch {
		case err != nil:
			errs = append(errs, &daemon.ConfigError{File: sub, Err: err})
		case f != "":
			out = append(out, f)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(out) == 0 {
		return nil, fail("no configuration (%s) in it or in its folders", fileNames())
	}
	return out, nil
}

// instanceConfig returns the one configuration file of the instance folder
// dir, "" when it holds none.
func instanceConfig(dir string) (string, error) {
	var found []string
	for _, k := range Kinds {
		f := filepath.Join(dir, k.Name+".yaml")
		if fi, err := os.Stat(f); err == nil && !fi.IsDir() {
			found = append(found, f)
		}
	}
	if len(found) > 1 {
		names := make([]string, len(found))
		for i, f := range found {
			names[i] = filepath.Base(f)
		}
		return "", fmt.Errorf("holds %s: an instance folder holds one node's configuration", strings.Join(names, ", "))
	}
	if len(found) == 0 {
		return "", nil
	}
	return found[0], nil
}

func fileNames() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = k.Name + ".yaml"
	}
	return strings.Join(names, ", ")
}

// byLabel maps labels to configurations; the first of a label used twice.
func (s *Set) byLabel() map[string]*Config {
	m := map[string]*Config{}
	for _, c := range s.Nodes {
		if _, dup := m[c.Label]; !dup {
			m[c.Label] = c
		}
	}
	return m
}

// Check checks that the configurations of s agree: labels unique;
// every link's two ends exist, one lists the other under parents and the
// other lists it under children; one dials the port the other listens on,
// never both dial, never both listen; both ends alike in
// insecure_plaintext; every entry's destination in the chain, offering the
// service asked for; every eventsink's destination an epproxy with its
// event service; every network a node serves (and its endpoints, when it
// registers them) accepted by the child link of each parent on its way
// to the root (accept_networks, accept_labels). It returns every problem at once (errors.Join), each a
// *daemon.ConfigError naming the file, line and key at fault, and the
// other end's where there is one. A problem of a link between two nodes is
// reported once, at the end in the file found first (Nodes' order: the
// arguments', and in a folder of folders, by name). The links of a label
// used twice are not checked: which node they lead to is unknown.
func (s *Set) Check() error {
	_, err := s.check()
	return err
}

// check is Check, and returns the links that agree.
func (s *Set) check() ([]setLink, error) {
	var errs []error
	nodes := s.byLabel()
	twice := map[string]bool{} // labels of several nodes: their links are not checked
	for _, c := range s.Nodes {
		if first := nodes[c.Label]; first != c {
			errs = append(errs, c.pos.Errorf("label", "%s is also the label of %s: labels are unique in a chain", c.Label, first.file))
			twice[c.Label] = true
		}
	}
	var links []setLink
	done := map[[2]string]bool{} // link pairs seen from their other end
	for _, c := range s.Nodes {
		if twice[c.Label] {
			continue
		}
		for _, a := range ends(c) {
			if twice[a.link.Label] {
				continue
			}
			peer, ok := nodes[a.link.Label]
			if !ok {
				errs = append(errs, a.errorf("label", "%s has no configuration in the chain given", a.link.Label))
				continue
			}
			b, ok := linkTo(peer, c.Label)
			if !ok {
				under := "children"
				if !a.parent {
					under = "parents"
				}
				errs = append(errs, a.errorf("", "%s (%s) has no link to %s: add one under its %s",
					peer.Label, peer.file, c.Label, under))
				continue
			}
			pair := [2]string{min(c.Label, peer.Label), max(c.Label, peer.Label)}
			if done[pair] {
				continue
			}
			done[pair] = true
			if l, err := agree(a, b); err != nil {
				errs = append(errs, err)
			} else {
				links = append(links, l)
			}
		}
	}
	errs = append(errs, s.checkDestinations(nodes)...)
	errs = append(errs, s.checkServedTies()...)
	errs = append(errs, s.checkAccepted(nodes)...)
	errs = append(errs, s.checkAcceptedLabels(nodes)...)
	return links, errors.Join(errs...)
}

// checkDestinations checks the entries' and the eventsinks' destinations.
func (s *Set) checkDestinations(nodes map[string]*Config) []error {
	var errs []error
	for _, c := range s.Nodes {
		if nodes[c.Label] != c {
			continue
		}
		for i, e := range c.Entries {
			key := fmt.Sprintf("entries[%d]", i)
			if e.Kind == KindPortMap {
				errs = append(errs, checkPortMapChain(c, key, nodes)...)
				continue
			}
			if e.Kind != "" {
				errs = append(errs, checkAddrEntryDest(c, key, e, nodes)...)
				continue
			}
			dest, ok := nodes[e.Dest]
			if !ok {
				errs = append(errs, c.pos.Errorf(key+".dest", "%s has no configuration in the chain given", e.Dest))
				continue
			}
			offered := dest.serviceNames()
			if !slices.Contains(offered, e.Service) {
				errs = append(errs, c.pos.Errorf(key+".service", "%s (%s) offers no service %s (it offers: %s)",
					e.Dest, dest.file, e.Service, cmp.Or(strings.Join(offered, ", "), "none")))
			}
		}
		if c.kind.Name != EventSink.Name || c.Events == nil {
			continue
		}
		dest, ok := nodes[c.Events.Dest]
		switch {
		case !ok:
			errs = append(errs, c.pos.Errorf("events.dest", "%s has no configuration in the chain given", c.Events.Dest))
		case dest.kind.Name != EPProxy.Name || dest.Events == nil:
			errs = append(errs, c.pos.Errorf("events.dest", "%s (%s) is not an epproxy with an events section: events go to the root's event service",
				dest.Label, dest.file))
		case dest.Events.Service != c.Events.Service:
			errs = append(errs, c.pos.Errorf("events.service", "%s (%s) offers its event service as %s, not %s",
				dest.Label, dest.file, dest.Events.Service, c.Events.Service))
		}
	}
	return errs
}

// serviceNames returns the services a node offers to sessions, in order:
// its services, then the epproxy's event service.
func (c *Config) serviceNames() []string {
	var out []string
	for _, s := range c.Services {
		out = append(out, s.Name)
	}
	if c.kind.Name == EPProxy.Name && c.Events != nil {
		out = append(out, c.Events.Service)
	}
	return out
}
