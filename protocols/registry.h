/* The one table of protocol modules. */
#ifndef CHASSISD_REGISTRY_H
#define CHASSISD_REGISTRY_H

#include <stddef.h>

#include <confuse.h>

struct protocol;

/* The option tables of the modules an HTTP route can embed
 * (route "/x" { handler = "fortune"  fortune { ... } }). */
extern cfg_opt_t fortune_options[];
extern cfg_opt_t audio_cookie_options[];
extern cfg_opt_t video_cookie_options[];

const struct protocol *protocol_find(const char *name);
/* NULL-terminated, in a stable order. */
const struct protocol *const *protocol_all(void);

#endif
