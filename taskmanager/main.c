/* weir-taskmanager: signal handling around weir_taskmanager_main (taskmanager/launch.c, in
 * libweir.so). SIGTERM and SIGINT set the stop flag the task manager's loop polls; SIGPIPE is
 * ignored. */
#include <signal.h>
#include <string.h>

#include "weir/host.h"

static volatile sig_atomic_t g_stop; /* written by the signal handler only */

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

int main(int argc, char **argv, char **envp) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return weir_taskmanager_main(argc, argv, envp, &g_stop);
}
