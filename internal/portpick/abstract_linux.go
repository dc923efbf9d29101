package portpick

// abstractSockets: Linux has abstract Unix sockets, which reserve a port.
const abstractSockets = true
