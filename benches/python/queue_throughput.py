"""Python's multiprocessing.Queue on the workloads of benches/queue.rs.

Prints one line per workload: `<name> <messages per second>`. Run with
`python3 benches/python/queue_throughput.py [messages]`.
"""

import multiprocessing as mp
import sys
import time


def producer(queue, count):
    for n in range(count):
        queue.put(n)


def consumer(queue, count, done):
    for _ in range(count):
        queue.get()
    done.put(True)


def throughput(pairs, messages):
    queue = mp.Queue(4096)
    done = mp.Queue()
    share = messages // pairs
    consumers = [mp.Process(target=consumer, args=(queue, share, done)) for _ in range(pairs)]
    producers = [mp.Process(target=producer, args=(queue, share)) for _ in range(pairs)]
    for p in consumers:
        p.start()
    start = time.perf_counter()
    for p in producers:
        p.start()
    for _ in range(pairs):
        done.get()
    elapsed = time.perf_counter() - start
    for p in producers + consumers:
        p.join()
    return share * pairs / elapsed


def main():
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    mp.set_start_method("fork")
    for pairs in (1, 2, 4):
        print(f"python_queue_{pairs}p{pairs}c {throughput(pairs, messages):.0f}", flush=True)


if __name__ == "__main__":
    main()
