/* A test shim, LD_PRELOADed into chassisd: openat2 answers ENOSYS, as on a
 * kernel older than 5.6 or under a seccomp filter that lacks it, so that
 * the static handler's fallback (openat, then a /proc/self/fd check) runs
 * against real requests. It says so once on stderr, for the test to see. */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

long syscall(long number, ...)
{
	static long (*real)(long, ...);
	static int announced;
	long arg[6];
	va_list ap;

	if (number == SYS_openat2) {
		if (!announced++)
			fputs("no_openat2: openat2 refused with ENOSYS\n", stderr);
		errno = ENOSYS;
		return -1;
	}
	/* The kernel takes at most six arguments; unused ones are ignored. */
	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		arg[i] = va_arg(ap, long);
	va_end(ap);
	if (real == NULL)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return real(number, arg[0], arg[1], arg[2], arg[3], arg[4], arg[5]);
}
