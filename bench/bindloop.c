// SPDX-License-Identifier: GPL-2.0
/*
 * bench/bindloop: time bind(2) alone, N times, and check every outcome.
 *
 *   bindloop tcp|udp PORT ITERATIONS EXPECT [WARMUP]
 *
 * Each iteration: socket(); t0; bind(0.0.0.0:PORT); t1; close(). Only t1-t0
 * is kept (socket() and close() cost far more than bind() and would hide
 * it). EXPECT is "ok" or an errno name (EACCES...): any other outcome exits
 * 2 at once, so a benchmark never times the wrong path. A bound-only socket
 * frees its port on close(), TCP or UDP, so one port serves every round.
 *
 * bind() goes through libc's dynamic symbol, so authbind's LD_PRELOAD
 * library sees it. Prints one line of key=value: per-bind times in ns,
 * mean, median and 10% trimmed mean, after subtracting the cost of the
 * timer pair itself (timer_ns, measured here the same way).
 *
 * The timer is the TSC (rdtsc, fenced), converted to ns against
 * CLOCK_MONOTONIC over the whole loop: under QEMU TCG the guest's clocksource
 * is often the HPET, whose clock_gettime() is a system call and an emulated
 * MMIO read costing about as much as the bind itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

static const struct { const char *name; int err; } errnames[] = {
	{ "EACCES", EACCES }, { "EPERM", EPERM }, { "EADDRINUSE", EADDRINUSE },
	{ "EADDRNOTAVAIL", EADDRNOTAVAIL }, { "EINVAL", EINVAL },
};

static const char *errname(int err)
{
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].err == err)
			return errnames[i].name;
	return strerror(err);
}

static int64_t ns(const struct timespec *a, const struct timespec *b)
{
	return (int64_t)(b->tv_sec - a->tv_sec) * 1000000000 + (b->tv_nsec - a->tv_nsec);
}

static inline uint64_t tsc(void)
{
	uint64_t t;

	_mm_lfence();
	t = __rdtsc();
	_mm_lfence();
	return t;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

struct summary { double mean, median, trimmed; };

static struct summary summarize(int64_t *v, long n)
{
	struct summary s = { 0, 0, 0 };
	long cut = n / 10, i;
	double sum = 0;

	qsort(v, n, sizeof(*v), cmp64);
	for (i = 0; i < n; i++)
		sum += v[i];
	s.mean = sum / n;
	s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
	sum = 0;
	for (i = cut; i < n - cut; i++)
		sum += v[i];
	s.trimmed = sum / (n - 2 * cut);
	return s;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timespec m0, m1;
	uint64_t t0, t1, c0 = 0, c1;
	double ns_per_tick;
	int type, expect_err = -1;
	long iters, warmup, i;
	int64_t *samples;
	struct summary bind_s, timer_s;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: %s tcp|udp PORT ITERATIONS ok|ERRNO [WARMUP]\n", argv[0]);
		return 2;
	}
	if (!strcmp(argv[1], "tcp"))
		type = SOCK_STREAM;
	else if (!strcmp(argv[1], "udp"))
		type = SOCK_DGRAM;
	else {
		fprintf(stderr, "bindloop: unknown protocol %s\n", argv[1]);
		return 2;
	}
	sin.sin_port = htons(atoi(argv[2]));
	sin.sin_addr.s_addr = htonl(INADDR_ANY);
	iters = atol(argv[3]);
	warmup = argc > 5 ? atol(argv[5]) : iters / 10;
	if (strcmp(argv[4], "ok")) {
		for (size_t k = 0; k < sizeof(errnames) / sizeof(errnames[0]); k++)
			if (!strcmp(errnames[k].name, argv[4]))
				expect_err = errnames[k].err;
		if (expect_err < 0) {
			fprintf(stderr, "bindloop: unknown errno name %s\n", argv[4]);
			return 2;
		}
	}
	if (iters < 1 || !(samples = calloc(iters, sizeof(*samples))))
		return 2;

	for (i = -warmup; i < iters; i++) {
		if (i == 0) {
			clock_gettime(CLOCK_MONOTONIC, &m0);
			c0 = tsc();
		}
		int fd = socket(AF_INET, type, 0), rc, err;

		if (fd < 0) {
			perror("bindloop: socket");
			return 2;
		}
		t0 = tsc();
		rc = bind(fd, (struct sockaddr *)&sin, sizeof(sin));
		t1 = tsc();
		err = errno;
		close(fd);
		if (rc == 0 ? expect_err >= 0 : err != expect_err) {
			fprintf(stderr, "bindloop: FAILED: uid %d bind %s/%s gave %s, expected %s\n",
				(int)geteuid(), argv[1], argv[2], rc == 0 ? "ok" : errname(err), argv[4]);
			return 2;
		}
		if (i >= 0)
			samples[i] = t1 - t0;
	}
	c1 = tsc();
	clock_gettime(CLOCK_MONOTONIC, &m1);
	ns_per_tick = (double)ns(&m0, &m1) / (double)(c1 - c0);
	bind_s = summarize(samples, iters);

	/* The timer pair alone. */
	for (i = 0; i < iters; i++) {
		t0 = tsc();
		t1 = tsc();
		samples[i] = t1 - t0;
	}
	timer_s = summarize(samples, iters);

	printf("binds=%ld mean_ns=%.1f median_ns=%.1f trimmed_ns=%.1f timer_ns=%.1f\n",
	       iters, (bind_s.mean - timer_s.median) * ns_per_tick,
	       (bind_s.median - timer_s.median) * ns_per_tick,
	       (bind_s.trimmed - timer_s.median) * ns_per_tick,
	       timer_s.median * ns_per_tick);
	return 0;
}
