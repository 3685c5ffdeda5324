"""Python's multiprocessing.Pool on the workload of benches/pool.rs.

Prints `<name> <value>` lines:

* `python_pool_map_default <tasks per second>`: `pool.map` of a trivial
  function over N items (default chunking);
* `python_pool_map_chunk1 <tasks per second>`: the same over 10,000 items
  with `chunksize=1`;
* `python_pool_apply_async <seconds per round trip>`:
  `pool.apply_async(f, (x,)).get()`, one at a time.

Run with `python3 benches/python/pool.py [N]` (default 1,000,000). The pool
has as many workers as the Rust bench: `os.cpu_count()`, with the default
start method of this Python.
"""

import multiprocessing as mp
import sys
import time


def square(n):
    return n * n


def rate(f, count, rounds=3):
    best = None
    for _ in range(rounds):
        start = time.perf_counter()
        f()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return count / best


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with mp.Pool() as pool:
        pool.map(square, range(1000))  # warm up
        items = list(range(n))
        print(f"python_pool_map_default {rate(lambda: pool.map(square, items), n):.1f}", flush=True)
        small = list(range(10_000))
        print(
            f"python_pool_map_chunk1 {rate(lambda: pool.map(square, small, chunksize=1), len(small)):.1f}",
            flush=True,
        )
        rounds = 2000
        for _ in range(100):
            pool.apply_async(square, (3,)).get()
        start = time.perf_counter()
        for i in range(rounds):
            pool.apply_async(square, (i,)).get()
        print(f"python_pool_apply_async {(time.perf_counter() - start) / rounds:.9f}", flush=True)


if __name__ == "__main__":
    main()
