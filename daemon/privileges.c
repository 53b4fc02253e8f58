#include "daemon/privileges.h"

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"

int privileges_drop(const char *user, uid_t uid, gid_t gid)
{
	if (geteuid() != 0) {
		if (geteuid() == uid)
			return 0;
		log_err("cannot become user %s: not started as root", user);
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
