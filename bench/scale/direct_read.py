#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Random-read bandwidth of a file at a given block size: O_DIRECT reads at random
block-aligned offsets into a 2 MiB-aligned, MADV_HUGEPAGE, prefaulted buffer (how the expert
cache reads), optionally also into a plain 4 KiB-page buffer and through the page cache.
Prints one JSON object with GB/s per mode.

  python3 bench/scale/direct_read.py FILE --block 9437184 [--seconds 8] [--inflight 2]
"""
import argparse
import json
import mmap
import os
import random
import sys
import threading
import time

HUGE = 2 << 20


def aligned_buffer(nbytes, huge):
    import ctypes
    raw = mmap.mmap(-1, nbytes + HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    c = ctypes.c_char.from_buffer(raw)
    ptr = ctypes.addressof(c)
    del c  # release the export so the mapping can be closed later
    base = (-ptr) % HUGE if huge else 0
    if huge and hasattr(mmap, "MADV_HUGEPAGE"):
        raw.madvise(mmap.MADV_HUGEPAGE, 0, len(raw))
    view = memoryview(raw)[base:base + nbytes]
    for i in range(0, nbytes, 4096):  # prefault (first touch is slow on this VM)
        view[i] = 1
    return raw, view


def run(path, block, seconds, inflight, direct, huge):
    flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags)
    size = os.fstat(fd).st_size
    n_blocks = size // block
    if n_blocks < 2:
        sys.exit(f"{path}: smaller than two blocks of {block}")
    total = [0]
    lock = threading.Lock()
    stop = time.time() + seconds

    def worker(seed):
        rng = random.Random(seed)
        raw, view = aligned_buffer(block, huge)
        got = 0
        while time.time() < stop:
            off = rng.randrange(n_blocks) * block
            got += os.preadv(fd, [view], off)
        with lock:
            total[0] += got
        del view
        raw.close()

    if not direct:  # drop this file's cached pages so buffered reads hit the device
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    t0 = time.time()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(inflight)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    os.close(fd)
    return total[0] / dt / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--block", type=int, required=True, help="bytes per read (rounded up to 4 KiB)")
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--inflight", type=int, default=2)
    ap.add_argument("--all-modes", action="store_true", help="also 4 KiB-page and buffered")
    a = ap.parse_args()
    block = (a.block + 4095) // 4096 * 4096
    res = {"file": a.file, "block": block, "inflight": a.inflight,
           "direct_hugepage_gb_s": round(run(a.file, block, a.seconds, a.inflight, True, True), 3)}
    if a.all_modes:
        res["direct_4k_gb_s"] = round(run(a.file, block, a.seconds, a.inflight, True, False), 3)
        res["buffered_gb_s"] = round(run(a.file, block, a.seconds, a.inflight, False, False), 3)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
