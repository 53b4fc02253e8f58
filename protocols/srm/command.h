/* srm, a listener's deliveries to a command (command.c): each complete,
 * verified object, spooled to an unnamed file, waits in order in a
 * bounded queue and is then piped to a fresh run of the program through
 * the chassis's child runner (daemon/child.h): no shell, its own process
 * group, a deadline, the daemon-wide cap on children. One run at a time,
 * so that the program sees the objects in the order they came. */
#ifndef CHASSISD_SRM_COMMAND_H
#define CHASSISD_SRM_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct child_spec;
struct srm_command;
struct unit_env;

struct srm_command_counters {
	uint64_t delivered;		/* runs that exited 0 */
	uint64_t failed;		/* exited non-zero, killed, timed out, or could not start */
	uint64_t dropped;		/* objects refused because the queue was full */
};

/* Runs spec (copied) for the listener env->unit; at most `queue` objects
 * wait besides the one being delivered. NULL when out of memory. */
struct srm_command *srm_command_new(const struct unit_env *env, const struct child_spec *spec, size_t queue);

/* A complete, verified object: fd (read from its start, whatever its
 * offset) is taken either way. name: a name srm_name_refusal() took, or
 * NULL. False when the queue is full: the object is dropped, counted and
 * logged. */
bool srm_command_add(struct srm_command *cmd, int fd, uint64_t size, uint32_t session, uint32_t object,
		     const uint8_t *name, size_t name_len);

/* The listener stops (a reload that changed it, or the daemon's stop):
 * the object being delivered and those waiting go on, holding the daemon;
 * once the daemon stops they get its shutdown-grace, then the program is
 * killed and what still waits is logged as not delivered. Frees itself
 * when done; cmd is not to be used again. */
void srm_command_detach(struct srm_command *cmd);

const struct srm_command_counters *srm_command_counters(const struct srm_command *cmd);
/* Objects waiting now, not counting the one being delivered. */
size_t srm_command_waiting(const struct srm_command *cmd);

#endif
