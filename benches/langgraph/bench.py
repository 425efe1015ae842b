#!/usr/bin/env python3
"""The LangGraph side of Convergio's orchestrator benchmark.

One measurement per invocation, so a Rust harness can alternate it with
Convergio's own measurement in the same run:

    bench.py --shape chain|fanout --nodes 100 --mode none|memory|sqlite|sqlite-sync|fake-model \
             --reps 20 [--json]
    bench.py --bytes --steps 1000 [--json]

Run it with the venv's python made by setup.sh beside this file. See README.md.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph

SHAPES = ("chain", "fanout")
MODES = ("none", "memory", "sqlite", "sqlite-sync", "fake-model")


class State(TypedDict):
    # Every node writes {"count": 1}; the add reducer sums them, so after a
    # run `count` is the number of nodes that ran (checked after the warm-up).
    count: Annotated[int, operator.add]


def make_node(model=None):
    """A no-op node: it returns the tiny update {"count": 1} and nothing else.

    With a model (mode fake-model) it first calls the fake chat model once
    and drops the answer.
    """
    if model is None:

        def node(state: State) -> dict:
            return {"count": 1}

    else:

        def node(state: State) -> dict:
            model.invoke("ping")
            return {"count": 1}

    return node


def build(shape: str, n: int, model=None) -> StateGraph:
    g = StateGraph(State)
    if shape == "chain":
        # START -> n0 -> n1 -> ... -> n{N-1} -> END: N nodes, N supersteps.
        prev = START
        for i in range(n):
            name = f"n{i}"
            g.add_node(name, make_node(model))
            g.add_edge(prev, name)
            prev = name
        g.add_edge(prev, END)
    elif shape == "fanout":
        # START -> start -> {b0 .. b{N-1}} in parallel -> join -> END.
        # N edges b_i -> join: the b_i all run in one superstep, so LangGraph
        # triggers the join once, in the superstep after it (3 supersteps in all).
        g.add_node("start", make_node(model))
        g.add_node("join", make_node(model))
        g.add_edge(START, "start")
        for i in range(n):
            name = f"b{i}"
            g.add_node(name, make_node(model))
            g.add_edge("start", name)
            g.add_edge(name, "join")
        g.add_edge("join", END)
    else:
        raise ValueError(shape)
    return g


def expected_count(shape: str, n: int) -> int:
    return n if shape == "chain" else n + 2


def pct(xs: list[float]) -> tuple[float, float, float]:
    """median, p10, p90 (linear interpolation between order statistics)."""
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=10, method="inclusive")
    return statistics.median(xs), q[0], q[-1]


def run_nodes(args) -> dict:
    shape, n, mode, reps = args.shape, args.nodes, args.mode, args.reps
    model = None
    if mode == "fake-model":
        from langchain_core.language_models.fake_chat_models import FakeListChatModel

        # One shared fake model; it answers "pong" without sleeping.
        model = FakeListChatModel(responses=["pong"])

    compiled = build(shape, n, model).compile()  # compiled once; each rep only invokes

    base_config = {"recursion_limit": n + 10}  # chain needs N supersteps (default limit 25)
    invoke_kwargs: dict = {}
    if mode == "sqlite-sync":
        invoke_kwargs["durability"] = "sync"

    tmp = (
        tempfile.TemporaryDirectory(prefix="lg-bench-", dir=args.db_dir)
        if mode.startswith("sqlite")
        else None
    )
    conns: list[sqlite3.Connection] = []

    def prepare(i: int):
        """Untimed per-rep setup: the graph bound to its checkpointer, and a config."""
        config = dict(base_config)
        if mode in ("none", "fake-model"):
            return compiled, config
        config["configurable"] = {"thread_id": uuid.uuid4().hex}  # fresh thread per invoke
        if mode == "memory":
            return memory_graph, config
        # sqlite / sqlite-sync: a fresh database file per rep, tables created up front.
        conn = sqlite3.connect(
            os.path.join(tmp.name, f"rep{i}.sqlite"), check_same_thread=False
        )
        conns.append(conn)
        saver = SqliteSaver(conn)
        saver.setup()
        return compiled.copy(update={"checkpointer": saver}), config

    if mode == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        memory_graph = compiled.copy(update={"checkpointer": InMemorySaver()})
    if mode.startswith("sqlite"):
        from langgraph.checkpoint.sqlite import SqliteSaver

    try:
        # Warm-up, untimed; also checks that every node ran exactly once.
        graph, config = prepare(-1)
        out = graph.invoke({"count": 0}, config, **invoke_kwargs)
        if out["count"] != expected_count(shape, n):
            raise SystemExit(f"warm-up ran {out['count']} nodes, expected {expected_count(shape, n)}")

        totals_ns: list[int] = []
        for i in range(reps):
            graph, config = prepare(i)
            t0 = time.perf_counter_ns()
            graph.invoke({"count": 0}, config, **invoke_kwargs)
            totals_ns.append(time.perf_counter_ns() - t0)
    finally:
        for c in conns:
            c.close()
        if tmp is not None:
            tmp.cleanup()

    per_node_us = [t / 1000 / n for t in totals_ns]
    total_us = [t / 1000 for t in totals_ns]
    med, p10, p90 = pct(per_node_us)
    tmed, tp10, tp90 = pct(total_us)
    return {
        "engine": "langgraph",
        "version": version("langgraph"),
        "shape": shape,
        "mode": mode,
        "nodes": n,
        "reps": reps,
        "us_per_node_median": round(med, 3),
        "p10": round(p10, 3),
        "p90": round(p90, 3),
        "total_us_median": round(tmed, 1),
        "total_us_p10": round(tp10, 1),
        "total_us_p90": round(tp90, 1),
        "durability": "sync" if mode == "sqlite-sync" else ("async" if mode in ("memory", "sqlite") else None),
        "python": sys.version.split()[0],
        "db_dir": (args.db_dir or tempfile.gettempdir()) if mode.startswith("sqlite") else None,
    }


class LoopState(TypedDict):
    items: Annotated[list[str], operator.add]


ITEM = "x" * 32  # the one 32-byte item each step appends


def run_bytes(args) -> dict:
    from langgraph.checkpoint.sqlite import SqliteSaver

    steps = args.steps

    def append(state: LoopState) -> dict:
        return {"items": [ITEM]}

    def again(state: LoopState) -> str:
        return "append" if len(state["items"]) < steps else END

    g = StateGraph(LoopState)
    g.add_node("append", append)
    g.add_edge(START, "append")
    g.add_conditional_edges("append", again, ["append", END])

    with tempfile.TemporaryDirectory(prefix="lg-bytes-", dir=args.db_dir) as d:
        path = os.path.join(d, "checkpoints.sqlite")
        conn = sqlite3.connect(path, check_same_thread=False)
        saver = SqliteSaver(conn)
        saver.setup()
        graph = g.compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "bytes"}, "recursion_limit": steps + 10}
        t0 = time.perf_counter_ns()
        out = graph.invoke({"items": []}, config)
        elapsed_s = (time.perf_counter_ns() - t0) / 1e9
        if len(out["items"]) != steps:
            raise SystemExit(f"ran {len(out['items'])} steps, expected {steps}")

        q = lambda sql: conn.execute(sql).fetchone()  # noqa: E731
        n_ckpt, ckpt_bytes, meta_bytes, max_ckpt = q(
            "SELECT count(*), coalesce(sum(length(checkpoint)),0),"
            " coalesce(sum(length(metadata)),0), coalesce(max(length(checkpoint)),0) FROM checkpoints"
        )
        n_writes, write_bytes = q("SELECT count(*), coalesce(sum(length(value)),0) FROM writes")
        # SqliteSaver.setup() puts the database in WAL mode: right after the run
        # part of the data is still in the -wal file. Fold it in, then VACUUM.
        size = lambda p: os.path.getsize(p) if os.path.exists(p) else 0  # noqa: E731
        conn.commit()
        journal_mode = q("PRAGMA journal_mode")[0]
        db_before, wal_before = size(path), size(path + "-wal")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size_checkpointed = size(path)
        page_size, freelist = q("PRAGMA page_size")[0], q("PRAGMA freelist_count")[0]
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        size_after = size(path)

    blob_bytes = ckpt_bytes + meta_bytes + write_bytes
    return {
        "engine": "langgraph",
        "version": version("langgraph"),
        "checkpoint_sqlite_version": version("langgraph-checkpoint-sqlite"),
        "bench": "bytes",
        "steps": steps,
        "item_bytes": len(ITEM),
        "checkpoints": n_ckpt,
        "checkpoint_blob_bytes": ckpt_bytes,
        "metadata_blob_bytes": meta_bytes,
        "writes": n_writes,
        "writes_blob_bytes": write_bytes,
        "blob_bytes_total": blob_bytes,
        "blob_bytes_per_step": round(blob_bytes / steps, 1),
        "largest_checkpoint_blob": max_ckpt,
        "journal_mode": journal_mode,
        "page_size": page_size,
        "db_file_bytes_after_run": db_before,
        "wal_file_bytes_after_run": wal_before,
        "file_bytes_after_wal_checkpoint": size_checkpointed,
        "freelist_pages_before_vacuum": freelist,
        "file_bytes_after_vacuum": size_after,
        "file_bytes_per_step": round(size_after / steps, 1),
        "elapsed_s": round(elapsed_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=SHAPES, default="chain")
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--mode", choices=MODES, default="none")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="print one JSON object on one line")
    ap.add_argument(
        "--db-dir",
        default=None,
        help="where the sqlite modes make their temp dir (default: the system's temp dir);"
        " give the same disk as the other engine's journal, or a tmpfs to leave fsync out",
    )
    ap.add_argument("--bytes", action="store_true", help="checkpoint growth of a looping graph instead")
    ap.add_argument("--steps", type=int, default=1000, help="loop steps for --bytes")
    args = ap.parse_args()
    if args.nodes < 1 or args.reps < 1 or args.steps < 1:
        ap.error("--nodes, --reps and --steps must be >= 1")

    if args.bytes:
        r = run_bytes(args)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(
                f"langgraph {r['version']} bytes: {r['steps']} steps, {r['checkpoints']} checkpoints, "
                f"{r['writes']} writes: blobs {r['blob_bytes_total']} B ({r['blob_bytes_per_step']} B/step), "
                f"file {r['file_bytes_after_vacuum']} B after VACUUM ({r['file_bytes_per_step']} B/step), "
                f"{r['elapsed_s']} s"
            )
        return

    r = run_nodes(args)
    if args.json:
        print(json.dumps(r), flush=True)
    else:
        print(
            f"langgraph {r['version']} {r['shape']}/{r['mode']} N={r['nodes']} reps={r['reps']}: "
            f"{r['us_per_node_median']:.1f} us/node median (p10 {r['p10']:.1f}, p90 {r['p90']:.1f}); "
            f"total {r['total_us_median'] / 1000:.2f} ms median"
        )


if __name__ == "__main__":
    main()
