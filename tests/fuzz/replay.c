/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * A plain main() for a fuzz target, so the targets run everywhere (gcc, no
 * libFuzzer) as regression tests:
 *
 *   fuzz-<target>-replay [-n N] [-t SECONDS] [-s SEED] PATH...
 *
 * Runs the target over every file named (a directory: its files), then over
 * N inputs derived from them by a fixed-seed generator (byte flips, random
 * bytes, splices, truncation, extension) and some purely random ones, until
 * N are done or SECONDS have passed. A crash or a failed invariant aborts,
 * and the input that caused it is in <target>-crash.bin (cwd) first.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

#define REPLAY_MAX_LEN   4096
#define REPLAY_MAX_SEEDS   1024

struct seed {
    uint8_t *data;
    size_t   len;
};

static struct seed seeds[REPLAY_MAX_SEEDS];
static unsigned nseeds;
static const char *crash_path = "fuzz-crash.bin";

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64*: reproducible across machines and libcs. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Saved before each run so that an abort leaves the input behind. */
static void run_one(const uint8_t *data, size_t len)
{
    FILE *f = fopen(crash_path, "wb");

    if (f) {
        if (len) {
            fwrite(data, 1, len, f);
        }
        fclose(f);
    }
    LLVMFuzzerTestOneInput(data, len);
}

static int load_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    size_t n;

    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -errno;
    }
    buf = malloc(REPLAY_MAX_LEN);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    n = fread(buf, 1, REPLAY_MAX_LEN, f);
    fclose(f);
    if (nseeds < REPLAY_MAX_SEEDS) {
        seeds[nseeds++] = (struct seed) { buf, n };
    } else {
        free(buf);
    }
    return 0;
}

static int load_path(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    int r = 0;

    if (stat(path, &st) < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        return load_file(path);
    }
    d = opendir(path);
    if (!d) {
        return -errno;
    }
    while ((e = readdir(d)) && r == 0) {
        char p[4096];

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        r = load_file(p);
    }
    closedir(d);
    return r;
}

static size_t mutate(uint8_t *buf, size_t len)
{
    unsigned rounds = 1 + rng() % 8;

    for (unsigned i = 0; i < rounds; i++) {
        switch (rng() % 6) {
        case 0: /* flip a bit */
            if (len) {
                buf[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
            }
            break;
        case 1: /* a random byte */
            if (len) {
                buf[rng() % len] = (uint8_t)rng();
            }
            break;
        case 2: { /* an interesting 32-bit value at a random offset */
            static const uint32_t vals[] = { 0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff,
                                             0x10000, 0x7fffffff, 0x80000000u, 0xffffffffu };
            uint32_t v = vals[rng() % (sizeof(vals) / sizeof(vals[0]))];

            if (len >= 4) {
                memcpy(buf + rng() % (len - 3), &v, 4);
            }
            break;
        }
        case 3: /* truncate */
            if (len) {
                len = rng() % len;
            }
            break;
        case 4: /* extend with random bytes */
            while (len < REPLAY_MAX_LEN && rng() % 16) {
                buf[len++] = (uint8_t)rng();
            }
            break;
        case 5: /* splice in a piece of another seed */
            if (nseeds) {
                const struct seed *o = &seeds[rng() % nseeds];
                if (o->len && len) {
                    size_t from = rng() % o->len, to = rng() % len;
                    size_t n = 1 + rng() % (o->len - from);
                    if (n > len - to) {
                        n = len - to;
                    }
                    memcpy(buf + to, o->data + from, n);
                }
            }
            break;
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    unsigned long n = 20000, done = 0;
    double seconds = 5, start;
    uint64_t seed = 0x76677075; /* "vgpu" */
    uint8_t *buf;
    int c;

    while ((c = getopt(argc, argv, "n:t:s:c:")) != -1) {
        switch (c) {
        case 'n': n = strtoul(optarg, NULL, 0); break;
        case 't': seconds = strtod(optarg, NULL); break;
        case 's': seed = strtoull(optarg, NULL, 0); break;
        case 'c': crash_path = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-n N] [-t SECONDS] [-s SEED] [-c CRASHFILE] PATH...\n",
                    argv[0]);
            return 2;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (load_path(argv[i]) < 0) {
            return 1;
        }
    }
    if (!nseeds) {
        fprintf(stderr, "no seed inputs\n");
        return 1;
    }
    buf = malloc(REPLAY_MAX_LEN);
    if (!buf) {
        return 1;
    }
    rng_state = seed ? seed : 1;
    start = now_s();
    for (unsigned i = 0; i < nseeds; i++) {
        run_one(seeds[i].data, seeds[i].len);
    }
    while (done < n && now_s() - start < seconds) {
        size_t len;

        if (rng() % 8 == 0) {
            len = rng() % 512;
            for (size_t i = 0; i < len; i++) {
                buf[i] = (uint8_t)rng();
            }
        } else {
            const struct seed *s = &seeds[rng() % nseeds];
            memcpy(buf, s->data, s->len);
            len = mutate(buf, s->len);
        }
        run_one(buf, len);
        done++;
    }
    unlink(crash_path);
    printf("%u seed inputs and %lu generated inputs in %.2f s: no failure\n", nseeds, done,
           now_s() - start);
    for (unsigned i = 0; i < nseeds; i++) {
        free(seeds[i].data);
    }
    free(buf);
    return 0;
}
