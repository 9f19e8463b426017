/* failfork.c -- an LD_PRELOAD shim for test_spawn.py: fork() fails
 *
 * Loaded into the app with LD_PRELOAD, it makes the first
 * REQSTATS_TEST_FAIL_FORKS calls to fork() in each process fail with
 * EAGAIN, as the kernel does when a process limit is reached, and passes
 * every later call to the real fork(). Only the master forks, so this
 * lets a test start the real release binary with a pool that begins short.
 * It is built by the test into its temporary directory, never into the
 * app.
 */

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

pid_t fork(void);

pid_t fork(void)
{
    static long left = -1;
    pid_t (*real_fork)(void);

    if (left < 0) {
        const char *v = getenv("REQSTATS_TEST_FAIL_FORKS");
        char *end = NULL;

        left = v != NULL ? strtol(v, &end, 10) : 0;
        if (v == NULL || end == v || *end != '\0' || left < 0) {
            left = 0;
        }
    }
    if (left > 0) {
        left--;
        errno = EAGAIN;
        return -1;
    }
    *(void **)&real_fork = dlsym(RTLD_NEXT, "fork");
    if (real_fork == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real_fork();
}
