/* The srm module as a stream: sends its source as objects of DATA
 * datagrams, keeps them for repair, answers NAKs (sender.c). */
#ifndef CHASSISD_SRM_SENDER_H
#define CHASSISD_SRM_SENDER_H

#include <stddef.h>

struct srm_sender;
struct srm_settings;
struct unit_env;

/* NULL (logged) when it cannot start. */
struct srm_sender *srm_sender_start(const struct srm_settings *settings, const struct unit_env *env);
void srm_sender_free(struct srm_sender *st);
/* A reload kept the stream: with a directory, what is new or changed in it
 * since the last look is sent. */
void srm_sender_reloaded(struct srm_sender *st);
void srm_sender_status(const struct srm_sender *st, char *buf, size_t len);
void srm_sender_status_rows(const struct srm_sender *st, char *buf, size_t len);
void srm_sender_status_text(const struct srm_sender *st, char *buf, size_t len);

#endif
