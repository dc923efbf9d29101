package mux

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
)

// This file is the served networks' part of the routing table
// (PROTOCOL.md section 3, "Served networks"): what the children announce,
// checked as their labels are, kept in the netTable, told upwards, and
// looked up for a destination address.

// replaceNets takes the networks of a child's full announcement: what it
// announced before and no longer does is removed, the rest added. The
// child's labels of the same message are taken first.
func (t *routingTable) replaceNets(child string, ads []NetAd) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := make(map[NetAd]struct{}, len(ads))
	size := 0
	for _, a := range ads {
		if _, dup := want[a]; !dup && !isEndpointAd(a) {
			size++
		}
		want[a] = struct{}{}
	}
	var removed []NetAd
	for a := range t.nets.byChild[child] {
		if _, keep := want[a]; !keep {
			removed = append(removed, a)
		}
	}
	return t.applyNetsLocked(child, ads, removed, size)
}

// applyNets takes the networks of a child's delta.
func (t *routingTable) applyNets(child string, added, removed []NetAd) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	had := t.nets.byChild[child]
	size := len(had) - t.nets.epCount[child] // host routes have their own cap
	seen := map[NetAd]bool{}
	for _, a := range added {
		if _, ok := had[a]; !ok && !seen[a] && !isEndpointAd(a) {
			size++
			seen[a] = true
		}
	}
	for _, a := range removed {
		if _, ok := had[a]; ok && !isEndpointAd(a) {
			size--
		}
	}
	return t.applyNetsLocked(child, added, removed, size)
}

// applyNetsLocked changes the networks child announces. A child may only
// announce networks of labels in its subtree (itself or a label it
// announced and this node accepted), and only networks within what its
// link accepts (accept.go); others are refused and logged. An
// announcement that would take the child's networks over the cap is
// refused whole. Two nodes that serve the same network as specifically
// (a tie) are a configuration error, logged at level 1.
func (t *routingTable) applyNetsLocked(child string, added, removed []NetAd, size int) error {
	if size > t.maxNetsPerLink {
		t.refused++
		return fmt.Errorf("%w: %d networks through one link, at most %d", errOverCap, size, t.maxNetsPerLink)
	}
	var up, down []NetAd
	for _, a := range removed {
		if t.nets.remove(child, a) {
			down = append(down, a)
		}
	}
	var refused []string
	overEndpoints := 0
	for _, a := range added {
		if !t.labelAcceptedLocked(child, a.Owner) {
			t.refuseLabelNetLocked(child, a)
			continue
		}
		if _, in := t.below[child][a.Owner]; a.Owner != child && !in {
			refused = append(refused, a.String())
			continue
		}
		n, err := parseAdNetwork(a.Network)
		if err != nil { // decodeCtrl parsed it already
			refused = append(refused, a.String())
			continue
		}
		if ok, why := t.acceptsLocked(child, n); !ok {
			t.refuseNetLocked(child, a, why)
			continue
		}
		if _, had := t.nets.byChild[child][a]; isEndpointAd(a) && !had && t.nets.epCount[child] >= t.maxEndpointsPerLink {
			overEndpoints++
			continue
		}
		fresh, ties := t.nets.add(child, a, n)
		if fresh {
			up = append(up, a)
		}
		if len(ties) > 0 {
			sort.Strings(ties)
			// Flood-proof: a child announcing copies of others' networks
			// by the hundred makes a summary a minute, not a line each.
			t.tieLog.note(child, t.log.WithFields(logrus.Fields{"l": child, "network": a.Network}),
				fmt.Sprintf("configuration error: network %s is served by both %s and %s, equally specific; destinations in it are refused until one of them stops serving it", a.Network, a.Owner, strings.Join(ties, ",")))
		}
	}
	if len(refused) > 0 {
		t.refused++
		sort.Strings(refused)
		t.log.WithFields(logrus.Fields{"l": child, "networks": firstFew(refused)}).Errorf("refused %d networks announced by child %s: their owners are not in its subtree", len(refused), child)
	}
	if overEndpoints > 0 {
		t.refusedEndpoints += uint64(overEndpoints)
		t.log.WithField("l", child).Warnf("refused %d endpoints announced by child %s: %d host routes through one link, at most %d", overEndpoints, child, t.nets.epCount[child], t.maxEndpointsPerLink)
	}
	t.netsChangedLocked(child, up, down)
	return nil
}

// dropNetsLocked forgets the networks a child announced: its link is down.
func (t *routingTable) dropNetsLocked(child string) {
	var down []NetAd
	for a := range t.nets.byChild[child] {
		if t.nets.remove(child, a) {
			down = append(down, a)
		}
	}
	t.netsChangedLocked(child, nil, down)
}

// netsChangedLocked logs a change of the networks and passes it upwards.
func (t *routingTable) netsChangedLocked(child string, up, down []NetAd) {
	if len(up) == 0 && len(down) == 0 {
		return
	}
	sortAds(up)
	sortAds(down)
	t.log.WithFields(logrus.Fields{"l": child, "added": firstFewAds(up), "removed": firstFewAds(down), "networks": len(t.nets.entries)}).
		Infof("networks changed through %s: %d added, %d removed", child, len(up), len(down))
	for _, p := range t.parents {
		p.noteNetsLocked(up, down)
	}
	if t.onNets != nil {
		t.onNets(up, down)
	}
}

func firstFewAds(ads []NetAd) string {
	s := make([]string, len(ads))
	for i, a := range ads {
		s[i] = a.String()
	}
	return firstFew(s)
}

// setServes puts this node's own networks in the table.
func (t *routingTable) setServes(ads []NetAd, nets []Network) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, a := range ads {
		t.nets.add("", a, nets[i])
	}
}

// lookupNet picks the node that serves host:port: the owner of the most
// specific network that holds it, among this node's own and those of the
// labels it routes to, where the route to the owner goes through a child
// that announced the network (and whose link accepted it): a child that
// holds the owner's route by claiming its label, not the network, gets
// none of its sessions. Two owners equally specific are a tie: no owner.
func (t *routingTable) lookupNet(host string, port uint16) (owner string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	best := t.nets.lookupBy(host, port, func(e *netEntry) bool {
		if e.ad.Owner == t.self {
			return true
		}
		child, ok := t.routes[e.ad.Owner]
		if !ok {
			return false
		}
		_, via := e.via[child]
		return via
	})
	owners := map[string]bool{}
	for _, e := range best {
		owners[e.ad.Owner] = true
	}
	switch len(owners) {
	case 0:
		return "", fmt.Errorf("%s is in no network served below %s", hostPort(host, port), t.self)
	case 1:
		return best[0].ad.Owner, nil
	}
	names := make([]string, 0, len(owners))
	for o := range owners {
		names = append(names, o)
	}
	sort.Strings(names)
	return "", fmt.Errorf("%s is served by %s equally (%s): a configuration error", hostPort(host, port), strings.Join(names, " and "), best[0].ad.Network)
}

// noteNetsLocked records a change of the networks for the parent l. The
// caller holds the routing table's lock.
func (l *link) noteNetsLocked(added, removed []NetAd) {
	if l.pendFull {
		return
	}
	if l.pendNetAdd == nil {
		l.pendNetAdd, l.pendNetDel = map[NetAd]struct{}{}, map[NetAd]struct{}{}
	}
	for _, a := range added {
		delete(l.pendNetDel, a)
		l.pendNetAdd[a] = struct{}{}
	}
	for _, a := range removed {
		delete(l.pendNetAdd, a)
		l.pendNetDel[a] = struct{}{}
	}
	l.wantTell()
}

// takePendingNetsLocked returns and clears the network changes pending
// for the parent l.
func (l *link) takePendingNetsLocked() (add, del []NetAd) {
	for a := range l.pendNetAdd {
		add = append(add, a)
	}
	for a := range l.pendNetDel {
		del = append(del, a)
	}
	l.pendNetAdd, l.pendNetDel = nil, nil
	sortAds(add)
	sortAds(del)
	return add, del
}

// netCount is how many networks the table holds.
func (t *routingTable) netCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.nets.entries)
}

// Networks returns every network this node knows, its own and those
// announced below it, in their text form, with the label that serves each.
func (n *Node) Networks() []NetAd {
	n.table.mu.Lock()
	defer n.table.mu.Unlock()
	return n.table.nets.all()
}

// ServedBy returns the label of the node that serves host:port, as the
// networks this node knows decide it.
func (n *Node) ServedBy(host string, port uint16) (string, error) {
	return n.table.lookupNet(host, port)
}
