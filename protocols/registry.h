/* The one table of protocol modules. */
#ifndef CHASSISD_REGISTRY_H
#define CHASSISD_REGISTRY_H

#include <stddef.h>

struct protocol;

const struct protocol *protocol_find(const char *name);
/* NULL-terminated, in a stable order. */
const struct protocol *const *protocol_all(void);

#endif
