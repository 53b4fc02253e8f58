/* The srm module as a multicast listener: follows sessions, NAKs what it
 * lacks, delivers verified objects to a directory (receive.c). */
#ifndef CHASSISD_SRM_RECEIVE_H
#define CHASSISD_SRM_RECEIVE_H

#include <stddef.h>

struct datagram;
struct srm_receiver;
struct srm_settings;
struct unit_env;

/* NULL (logged) when it cannot start. */
struct srm_receiver *srm_receiver_start(const struct srm_settings *settings, const struct unit_env *env);
void srm_receiver_free(struct srm_receiver *rx);
void srm_receiver_datagram(struct srm_receiver *rx, struct datagram *dgram);
void srm_receiver_status(const struct srm_receiver *rx, char *buf, size_t len);
void srm_receiver_status_rows(const struct srm_receiver *rx, char *buf, size_t len);

#endif
