/*
 * fake_broker.c - the fake server of fake_server.c as a program, for the
 * CLI test (check_cli.sh): prints its port on stdout, then serves on
 * 127.0.0.1 until SIGTERM/SIGINT or its lifetime (seconds, argv[1],
 * default 60) runs out, so a crashed test never leaves it behind.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fake_server.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    int lifetime = argc > 1 ? atoi(argv[1]) : 60;
    struct fake_server *fs = fake_start(NULL);
    struct sigaction sa = {.sa_handler = on_signal};

    if (fs == NULL) {
        fprintf(stderr, "fake_broker: cannot listen on 127.0.0.1\n");
        return 1;
    }
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("%u\n", (unsigned)fake_port(fs));
    fflush(stdout);
    for (int i = 0; i < lifetime * 10 && !stop; i++)
        usleep(100000);
    fake_stop(fs);
    return 0;
}
