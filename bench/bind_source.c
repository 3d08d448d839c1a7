/* bind_source.c - LD_PRELOAD shim for the benchmark's load generator.
 *
 * What it does: when BENCH_SOURCE_ADDR is set to an IPv4 address, every
 * IPv4 connect(2) of the process first binds the socket to that address
 * (port 0), so that smtp-source, which has no option for it, connects from
 * e.g. 127.0.0.2: a client outside the MTA's mynetworks that SPF records
 * can authorise. Without the variable, or for other families, connect(2)
 * is passed through untouched.
 * Guarantees: never changes the destination; a failed bind is ignored (the
 * MTA then sees 127.0.0.1, and the bench's A-R check shows it).
 * Build (bench.py does it): gcc -O2 -shared -fPIC -o bind_source.so bind_source.c -ldl
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    static int (*real_connect)(int, const struct sockaddr *, socklen_t);
    const char *src = getenv("BENCH_SOURCE_ADDR");

    if (real_connect == NULL)
        real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    if (src != NULL && sa != NULL && sa->sa_family == AF_INET) {
        struct sockaddr_in b;
        memset(&b, 0, sizeof b);
        b.sin_family = AF_INET;
        if (inet_pton(AF_INET, src, &b.sin_addr) == 1)
            (void)bind(fd, (const struct sockaddr *)&b, sizeof b);
    }
    return real_connect(fd, sa, len);
}
