/* serve.h: the entry point of `phi3c serve` for the CLI's command table. */
#ifndef P3_SERVE_H
#define P3_SERVE_H

/* argv[0] is "serve"; returns the exit code (0 after a SIGINT/SIGTERM stop). */
int serve_main(int argc, char **argv);

#endif /* P3_SERVE_H */
