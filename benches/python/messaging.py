"""Python's multiprocessing.Queue and Pipe on the workloads of
benches/messaging.rs.

Payloads: an int (the u64 of the Rust side), bytes of 1 KiB and bytes of
1 MiB.

* `python_queue_<payload> <messages per second>`: a producer process puts
  messages on a `multiprocessing.Queue`, a consumer process gets them; the
  time from the producer's start to the consumer's last `get`.
* `python_pipe_rt_<payload> <seconds per round trip>`: the parent sends a
  message over a duplex `multiprocessing.Pipe` and blocks in `recv` for
  the echo of a child that blocks in `recv` (u64 and 1 KiB only).

Run with `python3 benches/python/messaging.py [messages]`: that many u64
messages one way, half as many of 1 KiB, a two-hundredth of 1 MiB, and a
tenth as many round trips.
"""

import multiprocessing as mp
import sys
import time

PAYLOADS = {
    "u64": 0x0123_4567_89AB_CDEF,
    "1KiB": bytes(range(256)) * 4,
    "1MiB": bytes(range(256)) * 4096,
}
# The queue's maxsize for each payload, as on the Rust side.
CAPACITY = {"u64": 4096, "1KiB": 4096, "1MiB": 16}


def producer(queue, payload, count):
    for _ in range(count):
        queue.put(payload)


def consumer(queue, count, done):
    for _ in range(count):
        queue.get()
    done.put(True)


def queue_rate(name, count):
    queue = mp.Queue(CAPACITY[name])
    done = mp.Queue()
    consumer_process = mp.Process(target=consumer, args=(queue, count, done))
    consumer_process.start()
    producer_process = mp.Process(target=producer, args=(queue, PAYLOADS[name], count))
    start = time.perf_counter()
    producer_process.start()
    done.get()
    elapsed = time.perf_counter() - start
    producer_process.join()
    consumer_process.join()
    return count / elapsed


def echo(conn):
    while True:
        message = conn.recv()
        if message is None:
            return
        conn.send(message)


def round_trip(name, count):
    here, there = mp.Pipe()
    child = mp.Process(target=echo, args=(there,))
    child.start()
    payload = PAYLOADS[name]
    for _ in range(min(count, 1000)):
        here.send(payload)
        here.recv()
    start = time.perf_counter()
    for _ in range(count):
        here.send(payload)
        here.recv()
    elapsed = time.perf_counter() - start
    here.send(None)
    child.join()
    return elapsed / count


def main():
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    mp.set_start_method("fork")
    for name, count in (("u64", messages), ("1KiB", messages // 2), ("1MiB", messages // 200)):
        print(f"python_queue_{name} {queue_rate(name, max(count, 1)):.0f}", flush=True)
    for name in ("u64", "1KiB"):
        print(f"python_pipe_rt_{name} {round_trip(name, max(messages // 10, 1)):.9f}", flush=True)


if __name__ == "__main__":
    main()
