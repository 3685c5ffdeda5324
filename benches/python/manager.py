"""Python's multiprocessing.Manager on the workload of benches/manager.rs.

Prints `<name> <value>` lines, requests per second made by a child
process:

* `python_manager_dict_insert_get <requests per second>`: `d[k] = n`
  then `d[k]`, two requests per iteration, on a `Manager().dict()`;
* `python_manager_list_append <requests per second>`:
  `Manager().list().append(n)`.

Run with `python3 benches/python/manager.py [N]` (iterations, default
20,000), with the default start method of this Python.
"""

import multiprocessing as mp
import sys
import time


def dict_work(d, n, out):
    d[0] = 0  # connect first
    start = time.perf_counter()
    for i in range(n):
        d[i & 1023] = i
        assert d[i & 1023] == i
    out.put(2 * n / (time.perf_counter() - start))


def list_work(lst, n, out):
    lst.append(0)  # connect first
    start = time.perf_counter()
    for i in range(n):
        lst.append(i)
    out.put(n / (time.perf_counter() - start))


def measure(target, proxy, n, rounds=3):
    out = mp.Queue()
    best = 0.0
    for _ in range(rounds):
        p = mp.Process(target=target, args=(proxy, n, out))
        p.start()
        best = max(best, out.get())
        p.join()
    return best


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with mp.Manager() as manager:
        print("python_manager_dict_insert_get", measure(dict_work, manager.dict(), n))
        print("python_manager_list_append", measure(list_work, manager.list(), n))


if __name__ == "__main__":
    main()
