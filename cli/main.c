/* The `weir` binary: the command itself lives in libweir.so (cli/cli.c, weir_cli_main) so that the
 * plugins it loads bind to the same runtime as everywhere else. SIGPIPE is ignored, as in both
 * daemons: a write to a connection the peer closed (REST over TLS, S3 through libcurl in
 * `weir validate`) is an error to report, not a reason to die. */
#include <signal.h>

#include "weir/host.h"

int main(int argc, char **argv, char **envp) {
    signal(SIGPIPE, SIG_IGN);
    return weir_cli_main(argc, argv, envp);
}
