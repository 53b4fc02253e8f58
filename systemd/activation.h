/* Socket activation: listening sockets passed by systemd, each taken by the
 * listener whose name equals its FileDescriptorName=. */
#ifndef CHASSISD_ACTIVATION_H
#define CHASSISD_ACTIVATION_H

#include <stddef.h>

struct conf_listener;

/* Collects the passed sockets (LISTEN_FDS); call once, before binding.
 * Returns how many were passed. */
size_t activation_init(void);
/* 1 and *fd when a socket was passed for this listener and matches it;
 * 0 when none was passed (bind one); -1 with err when it does not match. */
int activation_take(const struct conf_listener *conf, int *fd, char *err, size_t errlen);
/* Closes every passed socket no listener took, naming each to `unclaimed`
 * first. */
void activation_release_unclaimed(void (*unclaimed)(const char *name));

#endif
