"""Python's multiprocessing on the workloads of examples/showdown.

Prints one JSON object: workload key -> seconds per operation (a message,
a round trip, a lock + unlock, a spawn + join, a pool item, an
`apply_async` round trip, a managed dict insert + get or list append made
by a child), with the keys the showdown uses. Run with
`python3 benches/python/showdown.py [--scale S]`: S (default 1.0) scales
the number of operations of every workload.
"""

import json
import multiprocessing as mp
import sys
import time

PAYLOADS = {
    "u64": 0x0123_4567_89AB_CDEF,
    "1KiB": bytes(range(256)) * 4,
    "1MiB": bytes(range(256)) * 4096,
}
CAPACITY = {"u64": 4096, "1KiB": 4096, "1MiB": 16}
MESSAGES = {"u64": 20_000, "1KiB": 10_000, "1MiB": 100}


def producer(queue, payload, count):
    for _ in range(count):
        queue.put(payload)


def consumer(queue, count, done):
    for _ in range(count):
        queue.get()
    done.put(True)


def stream(name, pairs, messages):
    queue = mp.Queue(CAPACITY[name])
    done = mp.Queue()
    share = max(messages // pairs, 1)
    consumers = [mp.Process(target=consumer, args=(queue, share, done)) for _ in range(pairs)]
    producers = [
        mp.Process(target=producer, args=(queue, PAYLOADS[name], share)) for _ in range(pairs)
    ]
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
    return elapsed / (share * pairs)


def echo(conn):
    while True:
        message = conn.recv()
        if message is None:
            return
        conn.send(message)


def round_trip(count):
    here, there = mp.Pipe()
    child = mp.Process(target=echo, args=(there,))
    child.start()
    payload = PAYLOADS["u64"]
    for _ in range(200):
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


def lock_loop(lock, count, go):
    go.wait()
    for _ in range(count):
        lock.acquire()
        lock.release()


def uncontended(obj, count):
    for _ in range(count // 8):
        obj.acquire()
        obj.release()
    start = time.perf_counter()
    for _ in range(count):
        obj.acquire()
        obj.release()
    return (time.perf_counter() - start) / count


def contended(obj, workers, count):
    go = mp.Event()
    share = max(count // workers, 1)
    procs = [mp.Process(target=lock_loop, args=(obj, share, go)) for _ in range(workers)]
    for p in procs:
        p.start()
    start = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    return (time.perf_counter() - start) / (share * workers)


def nothing():
    pass


def spawn_join(method, count):
    ctx = mp.get_context(method)
    p = ctx.Process(target=nothing)
    p.start()
    p.join()
    start = time.perf_counter()
    for _ in range(count):
        p = ctx.Process(target=nothing)
        p.start()
        p.join()
    return (time.perf_counter() - start) / count


def square(n):
    return n * n


def pool_workloads(scale):
    out = {}
    with mp.Pool(mp.cpu_count()) as pool:
        pool.map(square, range(1000))
        items = range(1_000_000)
        start = time.perf_counter()
        pool.map(square, items)
        out["pool/map_1m"] = (time.perf_counter() - start) / len(items)
        small = range(10_000)
        start = time.perf_counter()
        pool.map(square, small, chunksize=1)
        out["pool/map_chunk1_10k"] = (time.perf_counter() - start) / len(small)
        rounds = max(int(2000 * scale), 50)
        for _ in range(50):
            pool.apply_async(square, (3,)).get()
        start = time.perf_counter()
        for _ in range(rounds):
            pool.apply_async(square, (3,)).get()
        out["pool/apply_async"] = (time.perf_counter() - start) / rounds
    return out


def dict_work(d, count, out):
    d[0] = 0  # connects, outside the measurement
    start = time.perf_counter()
    for i in range(count):
        d[i & 1023] = i
        assert d[i & 1023] == i
    out.put((time.perf_counter() - start) / count)


def list_work(lst, count, out):
    lst.append(0)  # connects, outside the measurement
    start = time.perf_counter()
    for i in range(count):
        lst.append(i)
    out.put((time.perf_counter() - start) / count)


def in_child(target, proxy, count):
    """Runs `target` in a child process; returns the child's own time."""
    out = mp.Queue()
    p = mp.Process(target=target, args=(proxy, count, out))
    p.start()
    seconds = out.get()
    p.join()
    return seconds


def manager_workloads(n):
    with mp.Manager() as manager:
        return {
            "manager/dict_roundtrip": in_child(dict_work, manager.dict(), n(2000)),
            "manager/list_push": in_child(list_work, manager.list(), n(4000)),
        }


def main():
    scale = 1.0
    if "--scale" in sys.argv:
        scale = float(sys.argv[sys.argv.index("--scale") + 1])
    mp.set_start_method("fork")
    n = lambda count: max(int(count * scale), 1)
    out = {}
    for name in ("u64", "1KiB", "1MiB"):
        for pairs in (1, 2, 4):
            out[f"stream/{name}/{pairs}p{pairs}c"] = stream(name, pairs, n(MESSAGES[name]))
    out["roundtrip/u64"] = round_trip(n(5000))
    out["lock/uncontended"] = uncontended(mp.Lock(), n(200_000))
    out["lock/contended"] = contended(mp.Lock(), 2, n(50_000))
    out["semaphore/uncontended"] = uncontended(mp.Semaphore(1), n(200_000))
    out["semaphore/contended"] = contended(mp.Semaphore(2), 4, n(50_000))
    out["spawn/join"] = spawn_join("fork", n(100))
    out.update(pool_workloads(scale))
    out.update(manager_workloads(n))
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
