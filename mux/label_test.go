package mux_test

import (
	"strings"
	"testing"

	"github.com/relaychain/relaychain/mux"
)

func TestCheckLabel(t *testing.T) {
	for _, ok := range []string{"a", "relay-dmz1", "9x", "gwp_dmz2.site", strings.Repeat("a", 64)} {
		if err := mux.CheckLabel(ok); err != nil {
			t.Errorf("CheckLabel(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", ".a", "_a", "a b", "a/b", "é", strings.Repeat("a", 65)} {
		if err := mux.CheckLabel(bad); err == nil {
			t.Errorf("CheckLabel(%q) accepted", bad)
		}
	}
}
