//go:build !linux

package portpick

// abstractSockets: no abstract Unix sockets here; nothing is reserved.
const abstractSockets = false
