/* The lab guest's workload: proof that a VM keeps running, and runs once.
 *
 *   workload MIB RATE [PORT]
 *
 * - Dirties MIB MiB of memory at RATE MiB/s (0 = as fast as it can), over a
 *   buffer filled with pseudo-random bytes so neither zero-page detection nor
 *   compression makes migration look better than it is.
 * - Checks itself: word 0 of every page holds the pass that last wrote it; a
 *   page found holding anything but the previous pass went back in time (lost
 *   in a migration) and is counted in bad=.
 * - Every 100 ms prints a heartbeat line to the console and to PORT (the
 *   virtio-serial heartbeat channel):
 *     HB <n> up=<s> dirtied=<MiB> pass=<p> bad=<b> disk=<seq> writer=<id>
 * - With /dev/vda present, a child writes a record "WSEQ <seq> <writer>" to
 *   sector (seq % 64) every second, continuing from the highest sequence found
 *   on the disk at boot.  Two guests writing one disk show up as two writer ids
 *   interleaved: the proof that a VM never ran twice.
 * - Another child powers the guest off on an ACPI power-button press, so a
 *   graceful shutdown request is honoured.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/input.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define SLOTS 64
#define SECTOR 512

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void nap_ms(long ms) {
    struct timespec s = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&s, NULL);
}

static void power_button_watcher(void) {
    int fds[16], n = 0;
    DIR *d = opendir("/dev/input");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 16) {
        if (strncmp(e->d_name, "event", 5) != 0) continue;
        char path[64];
        snprintf(path, sizeof path, "/dev/input/%s", e->d_name);
        int fd = open(path, O_RDONLY | O_NONBLOCK);
        if (fd >= 0) fds[n++] = fd;
    }
    if (d) closedir(d);
    if (n == 0) _exit(0);
    for (;;) {
        struct input_event ev;
        for (int i = 0; i < n; i++) {
            while (read(fds[i], &ev, sizeof ev) == (ssize_t)sizeof ev) {
                if (ev.type == EV_KEY && ev.code == KEY_POWER && ev.value == 1) {
                    printf("WORKLOAD power button: powering off\n");
                    sync();
                    reboot(RB_POWER_OFF);
                }
            }
        }
        nap_ms(100);
    }
}

static long disk_resume_seq(int fd) {
    char buf[SECTOR];
    long best = 0;
    for (int i = 0; i < SLOTS; i++) {
        if (pread(fd, buf, SECTOR, (off_t)i * SECTOR) != SECTOR) break;
        long seq;
        if (sscanf(buf, "WSEQ %ld", &seq) == 1 && seq > best) best = seq;
    }
    return best;
}

static void disk_writer(volatile long *shared_seq, const char *writer) {
    int fd = open("/dev/vda", O_RDWR | O_SYNC);
    if (fd < 0) _exit(0);
    long seq = disk_resume_seq(fd);
    for (;;) {
        char buf[SECTOR];
        memset(buf, 0, sizeof buf);
        seq++;
        snprintf(buf, sizeof buf, "WSEQ %ld %s\n", seq, writer);
        if (pwrite(fd, buf, SECTOR, (off_t)(seq % SLOTS) * SECTOR) == SECTOR) {
            fdatasync(fd);
            *shared_seq = seq;
        }
        nap_ms(1000);
    }
}

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 16;
    double rate = argc > 2 ? atof(argv[2]) : 4;
    int port = argc > 3 ? open(argv[3], O_WRONLY | O_NOCTTY | O_NONBLOCK) : -1;
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);

    char writer[17];
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(now() * 1e9);
    int rnd = open("/dev/urandom", O_RDONLY);
    if (rnd >= 0) {
        if (read(rnd, &seed, sizeof seed) < 0) { /* keep the time-based seed */ }
        close(rnd);
    }
    snprintf(writer, sizeof writer, "%016llx", (unsigned long long)seed);

    volatile long *disk_seq = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    *disk_seq = -1;
    if (access("/dev/vda", F_OK) == 0 && fork() == 0) disk_writer(disk_seq, writer);
    if (fork() == 0) power_button_watcher();

    size_t size = (size_t)mib << 20, pages = size / PAGE;
    uint8_t *buf = mmap(NULL, size ? size : PAGE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (buf == MAP_FAILED) { perror("mmap"); return 1; }
    uint64_t x = seed | 1;
    for (size_t i = 0; i < size / 8; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; ((uint64_t *)buf)[i] = x; }
    for (size_t i = 0; i < pages; i++) ((uint64_t *)(buf + i * PAGE))[0] = 0;
    printf("WORKLOAD start mib=%ld rate=%.1f writer=%s\n", mib, rate, writer);

    unsigned long long pass = 1, bad = 0, hb = 0, dirtied = 0;
    size_t p = 0;
    double t0 = now(), next_hb = t0 + 0.1, last = t0, credit = 0;
    double pages_per_s = rate * 256.0;
    char line[200];
    for (;;) {
        double t = now();
        if (pages) {
            long todo = 4096;
            if (rate > 0) {
                credit += (t - last) * pages_per_s;
                if (credit > pages_per_s) credit = pages_per_s;
                todo = (long)credit;
                credit -= todo;
            }
            last = t;
            for (long k = 0; k < todo; k++) {
                volatile uint64_t *w = (volatile uint64_t *)(buf + p * PAGE);
                if (w[0] != pass - 1) {
                    if (bad < 5) printf("WORKLOAD BAD page=%zu pass=%llu found=%llu\n", p, pass,
                                        (unsigned long long)w[0]);
                    bad++;
                }
                w[0] = pass;
                w[1 + dirtied % 511] = dirtied;
                dirtied++;
                if (++p == pages) { p = 0; pass++; }
            }
        }
        if (t >= next_hb) {
            hb++;
            int n = snprintf(line, sizeof line, "HB %llu up=%.1f dirtied=%llu pass=%llu bad=%llu disk=%ld writer=%s\n",
                             hb, t - t0, dirtied / 256, pass, bad, *disk_seq, writer);
            next_hb += 0.1;
            if (next_hb < t) next_hb = t + 0.1;
            if (hb % 10 == 0) fputs(line, stdout);  /* console: once a second is enough */
            if (port >= 0 && write(port, line, n) < 0) { /* nobody listening: fine */ }
        }
        if (rate > 0 || !pages) nap_ms(1);
    }
}
