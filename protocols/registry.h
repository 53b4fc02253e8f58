/* The one table of protocol modules. */
#ifndef CHASSISD_REGISTRY_H
#define CHASSISD_REGISTRY_H

struct conf_module;
struct protocol;

const struct protocol *protocol_find(const char *name);
/* NULL-terminated, in a stable order. */
const struct protocol *const *protocol_all(void);
/* The same table as the config loader sees it (conf_load()). */
const struct conf_module *const *protocol_config_table(void);

#endif
