#!/usr/bin/env python3
"""The LangGraph side of Convergio's agent benchmark (issue 15).

One agent turn: LangGraph's prebuilt ReAct agent
(`langgraph.prebuilt.create_react_agent`) with a fake chat model that
answers the conversation's first request with one call of the tool `greet`
and the request that carries the tool's result with a final text answer,
so a turn is model call -> tool call -> model call -> answer, as in
`benches/agent.rs`.

One measurement per invocation, so a Rust harness can alternate it with
Convergio's own measurement in the same run:

    agent_bench.py --mode none|memory|sqlite|sqlite-sync --reps 200 [--warmup 20]
                   [--db-dir DIR] [--json]

Run it with the venv's python made by setup.sh beside this file. See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from importlib.metadata import version
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool

MODES = ("none", "memory", "sqlite", "sqlite-sync")

# The same conversation as benches/agent.rs.
INSTRUCTIONS = "You greet people. Use the tools."
TASK = "Greet Ada."
FINAL = "Ada has been greeted."
STEPS = 3  # model call, tool call, model call (LangGraph: agent, tools, agent)


@tool
def greet(name: str) -> str:
    """Greets someone by name"""
    # hello-tool's `greet`: JSON text with the greeting.
    return json.dumps({"greeting": f"Hello, {name}!"})


class FakeToolModel(BaseChatModel):
    """An instant chat model with tool calling.

    It decides from the conversation, as the Rust side's fake upstream
    does: a conversation that ends with a tool result gets the final text
    answer, any other gets one call of `greet`. `bind_tools` converts the
    tools to OpenAI's schema and binds them, as ChatOpenAI does.
    """

    @property
    def _llm_type(self) -> str:
        return "fake-tool-model"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        if messages and isinstance(messages[-1], ToolMessage):
            message = AIMessage(content=FINAL)
        else:
            message = AIMessage(
                content="",
                tool_calls=[
                    {"name": "greet", "args": {"name": "Ada"}, "id": "call_1", "type": "tool_call"}
                ],
            )
        message.usage_metadata = {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(self, tools, **kwargs: Any):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def pct(xs: list[float]) -> tuple[float, float, float]:
    """median, p10, p90 (linear interpolation between order statistics)."""
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=10, method="inclusive")
    return statistics.median(xs), q[0], q[-1]


def build(checkpointer):
    with warnings.catch_warnings():
        # create_react_agent is deprecated in favour of langchain's
        # create_agent (a separate package); it is still LangGraph's prebuilt agent.
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(
            FakeToolModel(), [greet], prompt=INSTRUCTIONS, checkpointer=checkpointer
        )


def check(out: dict) -> None:
    messages = out["messages"]
    kinds = [type(m).__name__ for m in messages]
    if kinds != ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]:
        raise SystemExit(f"unexpected conversation: {kinds}")
    if messages[-1].content != FINAL:
        raise SystemExit(f"unexpected answer: {messages[-1].content!r}")
    if json.loads(messages[2].content) != {"greeting": "Hello, Ada!"}:
        raise SystemExit(f"unexpected tool result: {messages[2].content!r}")


def run(args) -> dict:
    mode, reps = args.mode, args.reps
    tmp = (
        tempfile.TemporaryDirectory(prefix="lg-agent-", dir=args.db_dir)
        if mode.startswith("sqlite")
        else None
    )
    conn = None
    try:
        if mode == "none":
            checkpointer = None
        elif mode == "memory":
            from langgraph.checkpoint.memory import InMemorySaver

            checkpointer = InMemorySaver()
        else:
            from langgraph.checkpoint.sqlite import SqliteSaver

            # One database file for the measurement (as Convergio's journal
            # is one file for all runs); a fresh thread per turn.
            conn = sqlite3.connect(os.path.join(tmp.name, "agent.sqlite"), check_same_thread=False)
            checkpointer = SqliteSaver(conn)
            checkpointer.setup()
        agent = build(checkpointer)  # compiled once; each turn only invokes
        invoke_kwargs: dict = {}
        if mode == "sqlite-sync":
            invoke_kwargs["durability"] = "sync"

        def config() -> dict:
            if checkpointer is None:
                return {}
            return {"configurable": {"thread_id": uuid.uuid4().hex}}

        def turn_input() -> dict:
            return {"messages": [{"role": "user", "content": TASK}]}

        # Warm-up turns, untimed; the first is checked.
        for i in range(max(args.warmup, 1)):
            out = agent.invoke(turn_input(), config(), **invoke_kwargs)
            if i == 0:
                check(out)

        totals_ns: list[int] = []
        for _ in range(reps):
            cfg, inp = config(), turn_input()
            t0 = time.perf_counter_ns()
            agent.invoke(inp, cfg, **invoke_kwargs)
            totals_ns.append(time.perf_counter_ns() - t0)
    finally:
        if conn is not None:
            conn.close()
        if tmp is not None:
            tmp.cleanup()

    per_turn = [t / 1000 for t in totals_ns]
    med, p10, p90 = pct(per_turn)
    return {
        "engine": "langgraph",
        "version": version("langgraph"),
        "prebuilt_version": version("langgraph-prebuilt"),
        "langchain_core_version": version("langchain-core"),
        "mode": mode,
        "reps": reps,
        "us_per_turn_median": round(med, 1),
        "p10": round(p10, 1),
        "p90": round(p90, 1),
        "us_per_step_median": round(med / STEPS, 1),
        "durability": "sync" if mode == "sqlite-sync" else ("async" if mode != "none" else None),
        "python": sys.version.split()[0],
        "db_dir": (args.db_dir or tempfile.gettempdir()) if mode.startswith("sqlite") else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=MODES, default="none")
    ap.add_argument("--reps", type=int, default=200, help="timed turns")
    ap.add_argument("--warmup", type=int, default=20, help="untimed turns first")
    ap.add_argument("--json", action="store_true", help="print one JSON object on one line")
    ap.add_argument(
        "--db-dir",
        default=None,
        help="where the sqlite modes make their temp dir (default: the system's temp dir)",
    )
    args = ap.parse_args()
    if args.reps < 1 or args.warmup < 0:
        ap.error("--reps must be >= 1 and --warmup >= 0")
    r = run(args)
    if args.json:
        print(json.dumps(r), flush=True)
    else:
        print(
            f"langgraph {r['version']} (prebuilt {r['prebuilt_version']}) react agent, {r['mode']}, "
            f"{r['reps']} turns: {r['us_per_turn_median']:.1f} us/turn median "
            f"(p10 {r['p10']:.1f}, p90 {r['p90']:.1f}); {r['us_per_step_median']:.1f} us/step"
        )


if __name__ == "__main__":
    main()
