"""The debug hook: every named tensor of each computed graph (`attn_norm-3`, `result_output`,
`v_out-0`, ...), handed to a callable as (name, numpy array) or written as .npy files, to compare
any layer with a reference.

Names are the ones graph code gives with .named(); ggml's own (`node_12`, `x (view)`) are left
out. Before a graph is allocated its named tensors are marked as graph outputs, so ggml keeps
their memory instead of reusing it; a named view keeps nothing by itself (its memory is its
source's) and may not be contiguous (a transpose), so a copy of it is added to the graph and read
instead. Marking outputs can stop ggml fusing a named tensor into the next op, so a dumped run may
differ from a plain one in the last bits; within the run, the dump holds what the graph computed
(the dumped `result_output` is the logits it returned).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import GGSightError
from ..ggml import Scheduler

ENV = "GGSIGHT_DUMP"   # a folder: every computed graph's named tensors as <folder>/<graph>/<name>.npy
_GGML_NAME = re.compile(r"(node|leaf)_\d+")


def named(name: str) -> bool:
    """A name graph code gave (not ggml's numbering, nor the derived names of views and copies)."""
    return bool(name) and " (" not in name and not _GGML_NAME.fullmatch(name)


class FolderDump:
    """(name, array) -> <folder>/<graph index, 4 digits>/<name>.npy; a new graph index per computed graph."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.graph = -1

    def next_graph(self) -> None:
        self.graph += 1

    def __call__(self, name: str, array: np.ndarray) -> None:
        where = self.folder / f"{self.graph:04d}"
        where.mkdir(parents=True, exist_ok=True)
        np.save(where / (re.sub(r"[^\w.+-]", "_", name) + ".npy"), array)


def dump_target(dump: Callable | None) -> Callable | None:
    """The callable load() was given; else a FolderDump of $GGSIGHT_DUMP when it is set."""
    if dump is not None:
        if not callable(dump):
            raise TypeError(f"dump must be a callable taking (name, array), not {type(dump).__name__}")
        return dump
    folder = os.environ.get(ENV)
    return FolderDump(folder) if folder else None


class DumpScheduler(Scheduler):
    """A Scheduler that hands every named tensor of each graph it computes to `dump`."""

    def __init__(self, backends, dump: Callable, **kwargs):
        super().__init__(backends, **kwargs)
        self.dump = dump

    @staticmethod
    def _watch(graph) -> list:
        """[(name, tensor to read)] of a graph, its named tensors kept as outputs (once per graph)."""
        watched = getattr(graph, "dump_watched", None)
        if watched is not None:
            return watched
        watched = []
        for node in graph.nodes():
            name = node.name
            if not named(name):
                continue
            read = node
            if node.describe().is_view:   # its memory is its source's, which ggml frees after the last reader
                try:
                    with graph.ctx:
                        read = node.cont()
                    graph.add(read)
                except GGSightError:   # no room left in the graph's context: leave it out
                    continue
            else:
                read.mark_output()
            watched.append((name, read))
        graph.dump_watched = watched
        return watched

    def alloc(self, graph) -> None:
        self._watch(graph)   # outputs are marked before ggml places the graph
        super().alloc(graph)

    def compute(self, graph) -> None:
        super().compute(graph)
        if hasattr(self.dump, "next_graph"):
            self.dump.next_graph()
        for name, tensor in getattr(graph, "dump_watched", ()):
            if tensor.is_contiguous:
                self.dump(name, tensor.read())
