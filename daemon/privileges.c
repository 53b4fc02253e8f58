#include "daemon/privileges.h"

#include <errno.h>
#include <stdbool.h>
#include <grp.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon/log.h"

int privileges_drop(const char *user, uid_t uid, gid_t gid)
{
	if (geteuid() != 0) {
		if (geteuid() == uid)
			return 0;
		log_err("cannot become user %s: started as uid %u, not root, and only root can change user; "
			"under systemd the unit chooses the user (User=, DynamicUser=): remove \"user\" and "
			"\"group\" from the config", user, (unsigned)geteuid());
		return -1;
	}
	/* Groups first: once the uid is gone, so is the right to change them.
	 * A change of uid from 0 clears every capability (no KEEP_CAPS). */
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		log_err("cannot become user %s: %s", user, strerror(errno));
		return -1;
	}
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		log_err("still able to regain root after becoming %s: refusing to run", user);
		return -1;
	}
	log_info("running as user %s (uid %u, gid %u)", user, (unsigned)uid, (unsigned)gid);
	return 0;
}

/* False (and the capability logged) when one is still ambient. A kernel
 * without ambient capabilities (before 4.3) answers EINVAL: none there. */
static bool ambient_is_empty(void)
{
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
		int set = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
		if (set == 1) {
			log_err("capability %d is still in the ambient set", cap);
			return false;
		}
	}
	return true;
}

/* Programs are exec'd as the daemon's user: with an empty inheritable set
 * (which empties the ambient set too) they start with no capability, as
 * a non-root exec gains none from a file without file capabilities. The
 * daemon keeps its own effective and permitted sets, which a reload
 * needs to bind a port below 1024. Without CAP_SETPCAP the bounding set
 * stays as it is; no_new_privs keeps a set-uid program from widening it. */
int privileges_confine_children(void)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		log_err("cannot set no_new_privs for programs: %s", strerror(errno));
		return -1;
	}
	if (syscall(SYS_capget, &header, data) < 0) {
		log_err("cannot read capabilities: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		data[i].inheritable = 0;
	/* Lowering a set is always allowed: EPERM is a system-call filter
	 * (the shipped unit's SystemCallFilter=~@privileged holds capset).
	 * Then the ambient set, cleared below, is all a program could
	 * inherit: under no_new_privs file capabilities are ignored, so the
	 * inheritable set left alone grants nothing. */
	if (syscall(SYS_capset, &header, data) < 0 && errno != EPERM) {
		log_err("cannot clear the inheritable capabilities: %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		log_err("cannot clear the ambient capabilities: %s", strerror(errno));
		return -1;
	}
	return ambient_is_empty() ? 0 : -1;
}
