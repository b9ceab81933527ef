/* The `weir` binary: the command itself lives in libweir.so (cli/cli.c, weir_cli_main) so that the
 * plugins it loads bind to the same runtime as everywhere else. */
#include "weir/host.h"

int main(int argc, char **argv, char **envp) {
    return weir_cli_main(argc, argv, envp);
}
