/* The modules whose body() can answer an HTTP route (fortune and the
 * cookies): their descriptors and option tables, for protocols/http. */
#ifndef CHASSISD_BODIES_H
#define CHASSISD_BODIES_H

#include <confuse.h>

struct protocol;

extern const struct protocol protocol_fortune;
extern const struct protocol protocol_audio_cookie;
extern const struct protocol protocol_video_cookie;

extern cfg_opt_t fortune_options[];
extern cfg_opt_t audio_cookie_options[];
extern cfg_opt_t video_cookie_options[];

#endif
