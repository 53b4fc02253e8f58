/* The config loader, from a buffer: libconfuse, comment stripping, every
 * module's configure(); and the client's conf_control_socket(), which reads
 * a file as far as it parses. The bytes go through a memfd so that both
 * run exactly as they do on a file. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/log.h"
#include "protocols/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct conf_errors errors = { 0 };
	struct conf *conf;
	char path[64];
	char *control;

	if (fd < 0) {
		log_set_level(-1);	/* errors are the point: keep stderr quiet */
		fd = memfd_create("chassisd.conf", MFD_CLOEXEC);
	}
	if (fd < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	conf = conf_load(path, protocol_config_table(), &errors);
	if (conf != NULL)
		conf_free(conf);
	conf_errors_clear(&errors);
	control = conf_control_socket(path, protocol_config_table());
	free(control);
	return 0;
}
