"""Python's multiprocessing.Process on the workload of benches/spawn.rs:
start a child that runs an empty function, then join it.

Prints one line per start method: `python_process_<method> <seconds per
start + join>`. Run with `python3 benches/python/process_spawn.py [spawns]`
(that many with fork, a quarter with forkserver, a tenth with spawn: the
slower methods get fewer rounds).
"""

import multiprocessing as mp
import sys
import time


def f():
    pass


def per_spawn(method, count):
    ctx = mp.get_context(method)
    # Warm up: the first forkserver start launches the server.
    p = ctx.Process(target=f)
    p.start()
    p.join()
    start = time.perf_counter()
    for _ in range(count):
        p = ctx.Process(target=f)
        p.start()
        p.join()
    return (time.perf_counter() - start) / count


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    for method, n in (("fork", count), ("forkserver", count // 4), ("spawn", count // 10)):
        print(f"python_process_{method} {per_spawn(method, max(n, 1)):.9f}", flush=True)


if __name__ == "__main__":
    main()
