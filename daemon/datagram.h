/* Datagram listeners (udp, multicast): every ready datagram to the module. */
#ifndef CHASSISD_DATAGRAM_H
#define CHASSISD_DATAGRAM_H

#include <event2/util.h>

/* The EV_READ|EV_PERSIST callback of a datagram listener's socket. */
void datagram_on_readable(evutil_socket_t fd, short what, void *listener);

#endif
