/* Dropping root once every socket is bound (outside systemd, which starts
 * chassisd as a dynamic user with CAP_NET_BIND_SERVICE instead). */
#ifndef CHASSISD_PRIVILEGES_H
#define CHASSISD_PRIVILEGES_H

#include <sys/types.h>

/* Becomes uid/gid with no supplementary groups and no capabilities.
 * -1 when that did not fully happen: the caller must not keep running. */
int privileges_drop(const char *user, uid_t uid, gid_t gid);
/* Programs the daemon runs get no capability and no_new_privs (the
 * daemon keeps what it has). -1 when that could not be done. */
int privileges_confine_children(void);

#endif
