package mux

import "time"

// ParentRTT is the smoothed round trip the node measured to its parent
// peer (0: none yet), for the tests of parent selection.
func (n *Node) ParentRTT(peer string) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.parents.by[peer]; p != nil {
		return p.srtt
	}
	return 0
}
