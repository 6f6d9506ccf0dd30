/* A yardstick for `tools/cpu-ab.py`, not part of tandem: the least a paced UDP sender can do
 * per datagram -- one absolute clock_nanosleep and one send() of 1316 bytes read in
 * 336 KiB chunks, on a socket whose source is bound to 127.0.0.1 (TTL 1), at a fixed
 * spacing. No PCR, no catch-up rule, no loop rewriting: its CPU per second of stream is the
 * floor that the kernel's sleep/wake and loopback send set on this machine.
 *
 *   cc -O2 -o minimal-pacer tools/minimal-pacer.c
 *   minimal-pacer FILE GROUP:PORT SPACING_NS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: minimal-pacer FILE GROUP:PORT SPACING_NS\n");
    return 2;
  }
  int fd = open(argv[1], O_RDONLY);
  char *colon = strchr(argv[2], ':');
  long spacing = atol(argv[3]);
  if (fd < 0 || !colon || spacing <= 0) {
    fprintf(stderr, "minimal-pacer: bad file, group or spacing\n");
    return 2;
  }
  *colon = 0;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int ttl = 1;
  setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
  struct sockaddr_in src = {.sin_family = AF_INET};
  inet_aton("127.0.0.1", &src.sin_addr);
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
  if (!inet_aton(argv[2], &dst.sin_addr) || bind(s, (void *)&src, sizeof src) ||
      connect(s, (void *)&dst, sizeof dst)) {
    perror("minimal-pacer: socket");
    return 1;
  }
  prctl(PR_SET_TIMERSLACK, 1);
  static char buf[1316 * 256];
  long have = 0, pos = 0;
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  for (;;) {
    if (pos >= have) {
      have = read(fd, buf, sizeof buf);
      if (have < 1316) {
        lseek(fd, 0, SEEK_SET);
        have = read(fd, buf, sizeof buf);
      }
      have -= have % 1316;
      pos = 0;
      if (have <= 0)
        return 1;
    }
    t.tv_nsec += spacing;
    while (t.tv_nsec >= 1000000000) {
      t.tv_nsec -= 1000000000;
      t.tv_sec++;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, 0);
    send(s, buf + pos, 1316, 0);
    pos += 1316;
  }
}
