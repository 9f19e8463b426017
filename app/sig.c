/* sig.c -- how a process handles its signals: flags set, waits let them in
 *
 * Every reqstats process (master, worker, runner) follows one pattern, the
 * one nginx's master loop uses: a handler only sets a volatile sig_atomic_t
 * flag; the signals it handles stay blocked while the process works and are
 * let through only inside the call it waits in (ppoll or epoll_pwait with
 * the mask sig_setup() returns). So a signal never interrupts a request, a
 * Redis write or a libcurl call halfway, and it is never lost between the
 * check of the flag and the wait: the wait unblocks and sleeps atomically.
 *
 * SIGPIPE is ignored everywhere: a peer that closes a socket shows up as
 * EPIPE on that write, not as the death of the process.
 *
 * A forked child starts with its parent's handlers and mask; sig_reset()
 * puts the signals the parent handled back to their defaults before the
 * child installs its own.
 */

#include "sig.h"

#include <string.h>

int sig_setup(void (*handler)(int), const int *handled, const int *ignored, sigset_t *waitmask)
{
    struct sigaction sa;
    sigset_t block;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    sa.sa_handler = handler;
    for (const int *s = handled; *s != 0; s++) {
        if (sigaction(*s, &sa, NULL) != 0) {
            return -1;
        }
        sigaddset(&block, *s);
    }
    sa.sa_handler = SIG_IGN;
    for (const int *s = ignored; *s != 0; s++) {
        if (sigaction(*s, &sa, NULL) != 0) {
            return -1;
        }
    }
    if (sigprocmask(SIG_BLOCK, &block, waitmask) != 0) {
        return -1;
    }
    for (const int *s = handled; *s != 0; s++) {
        sigdelset(waitmask, *s);
    }
    return 0;
}

int sig_reset(const int *sigs)
{
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_DFL;
    for (const int *s = sigs; *s != 0; s++) {
        if (sigaction(*s, &sa, NULL) != 0) {
            return -1;
        }
    }
    sigemptyset(&none);
    return sigprocmask(SIG_SETMASK, &none, NULL);
}
